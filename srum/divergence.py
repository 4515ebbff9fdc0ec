"""Divergence guard: count optimiser steps whose gradient norm is non-finite or explodes, and stop the run after a
few, naming the checkpoint saved before the first bad one and the likely cause.

DeepSpeed skips a step whose gradients overflow and says nothing, so without this a run with a far too large
learning rate trains for hours without moving, or moves into huge weights, and exits 0.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path


class TrainingDiverged(RuntimeError):
    """Raised when the run has had `max_bad_steps` bad steps; the message says what was seen and what to do."""


class DivergenceGuard:
    """Feed it every step's gradient norm; it raises TrainingDiverged after `max_bad_steps` bad ones."""

    def __init__(self, max_bad_steps: int, explode_factor: float, window: int = 50) -> None:
        self.max_bad_steps, self.explode_factor, self.window = max_bad_steps, explode_factor, window
        self.good: list[float] = []
        self.bad: list[tuple[int, float]] = []

    def is_bad(self, grad_norm: float) -> bool:
        if not math.isfinite(grad_norm):
            return True
        recent = self.good[-self.window:]
        return len(recent) >= 2 and grad_norm > self.explode_factor * statistics.median(recent)

    def check(self, step: int, grad_norm: float) -> bool:
        """Record `step`; True when it was bad. Raises TrainingDiverged at the `max_bad_steps`-th bad step."""
        if not self.is_bad(grad_norm):
            self.good.append(grad_norm)
            return False
        self.bad.append((step, grad_norm))
        if len(self.bad) >= self.max_bad_steps:
            raise TrainingDiverged(self.describe())
        return True

    @property
    def first_bad_step(self) -> int | None:
        return self.bad[0][0] if self.bad else None

    def describe(self) -> str:
        seen = ", ".join(f"step {s}: {g:.3g}" for s, g in self.bad[:5])
        median = f"{statistics.median(self.good[-self.window:]):.3g}" if self.good else "none yet"
        return f"{len(self.bad)} bad steps (grad norm {seen}; median of good steps {median})"


def good_checkpoint(folder: Path, first_bad_step: int) -> str | None:
    """The newest `stepNNNNNNN` checkpoint in `folder` whose weights predate the update made just before the first
    bad step (a bad norm at step b is measured on weights step b − 1 already changed), or None. Checkpoint `stepS`
    holds the weights after steps 0 … S − 1, so it qualifies when S < b."""
    steps = sorted(int(p.name[4:]) for p in folder.glob("step*") if p.is_dir() and p.name[4:].isdigit())
    good = [s for s in steps if s < first_bad_step]
    return f"step{good[-1]:07d}" if good else None


def likely_cause(weights_finite: bool, inputs_finite: bool, lr: float) -> str:
    """What the guard saw, in words: broken training weights or inputs before the learning rate. (Reward files are
    range-checked when read, so a map out of range stops the run before training.)"""
    if not weights_finite:
        return "non-finite training weights (reward maps): check the score stage's reward files"
    if not inputs_finite:
        return "non-finite latents in the generate stage's chunks: delete that round's generate folder and rerun"
    return f"the learning rate (train.lr={lr:g}): lower it"
