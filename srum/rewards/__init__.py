"""Stage 2 of a SRUM round: the model rewards its own images (srum.md §1.3-2).

`regions` proposes class-agnostic regions per image (2a); the judge scores them and the reward map is built from
the scores (2b, 3).
"""
