"""Procedural worlds: small synthetic domains with exact, pixel-only judges.

A world gives prompts in T2I-CompBench's categories, ground-truth renders for pretraining a tiny model, and an oracle
that scores any image against a prompt, so the SRUM loop can be run and measured on a CPU.
"""
