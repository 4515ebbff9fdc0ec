"""Paired bootstrap over prompts: is a difference between two evaluations of the same prompts and seeds real?

Both evaluations drew images with the same seeds for the same prompts, so the difference is taken per prompt (the
mean over its images) and prompts are resampled with replacement, keeping every pair together.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def per_prompt(records: Sequence[dict]) -> dict[tuple[str, int], float]:
    """Mean score per (category, index) over the records that have a score."""
    sums: dict[tuple[str, int], list[float]] = {}
    for r in records:
        if r.get("score") is not None:
            sums.setdefault((r["category"], int(r["index"])), []).append(float(r["score"]))
    return {k: sum(v) / len(v) for k, v in sums.items()}


def paired_bootstrap(base: Sequence[dict], other: Sequence[dict], samples: int = 2000,
                     seed: int = 0) -> dict[str, float | int]:
    """Mean per-prompt difference (other − base), its 95% interval, and the share of resamples ≤ 0."""
    a, b = per_prompt(base), per_prompt(other)
    keys = sorted(set(a) & set(b))
    if not keys:
        raise ValueError("the two evaluations share no prompt: compare evaluations of the same prompt set")
    diff = np.array([b[k] - a[k] for k in keys])
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(samples, len(diff)))].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return {"prompts": len(keys), "delta": float(diff.mean()), "lo": float(lo), "hi": float(hi),
            "p_not_better": float((means <= 0).mean())}
