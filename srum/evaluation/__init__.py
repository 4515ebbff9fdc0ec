"""Checkpoint evaluation: prompt sources, judges, reports (stage 7 of the pipeline)."""
