"""Command-line entry points (`srum`, `srum-eval`, `srum-ablate`; `launch/*.py` are thin wrappers of them)."""
