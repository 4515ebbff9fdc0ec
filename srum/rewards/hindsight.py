"""Hindsight relabelling (`reward.hindsight`): each image is trained on the variant of its prompt it fits best.

Why: a unified model's failures are often one wrong attribute in an otherwise fine picture. On ShapesWorld the shape
drawn barely depends on the shape asked: 6% of a round's own images meet their prompt, 25% meet the same prompt with
other shapes and 32% with other shapes or another relation of its family. Relabelled, a square drawn for "a circle"
is a correct example of "a square", so most images can teach what their words mean, not only the few lucky ones (the
idea of hindsight experience replay, Andrychowicz et al. 2017, arXiv 1707.01495). The judge chooses the label, so
under `reward.source=self` the model itself does and the loop stays self-rewarding. The prompt world supplies the
variants (`prompt_variants`); this module names none.

Relabelled images follow the model's own habits, not the prompts': on ShapesWorld 8% of the labels' objects are
circles against 29% of those asked, so relabelling alone teaches the shapes the model already draws.
`reward.hindsight_balance` re-weights the images so their labels have the asked prompts' attribute frequencies
(`balance_weights`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from srum.rewards.judge import Judgement
from srum.rewards.regions import Region
from srum.rewards.sources import Scorer


@dataclass(frozen=True)
class Relabel:
    prompt: str | None  # the variant chosen; None: the asked prompt stays
    reward: torch.Tensor | None  # the map the image is trained with (the asked prompt's when not relabelled)


def relabel(scorer: Scorer, images: Sequence[Image.Image], prompts: Sequence[str],
            regions: Sequence[list[Region]], asked_maps: Sequence[torch.Tensor | None],
            variants: Callable[[str], list[str]],
            make_map: Callable[[Judgement, Image.Image], torch.Tensor | None]) -> list[Relabel]:
    """Per image: the asked prompt's map, unless a variant's image reward (its map's mean) is strictly higher; then
    the best variant's (the first of equals, in the world's order). `variants(p)` lists p first, then its variants;
    all variants of all images are judged in one call on the images' own regions, so the scorer batches them."""
    pairs = [(i, v) for i, p in enumerate(prompts) for v in variants(p)[1:]]
    judged = scorer.judge([images[i] for i, _ in pairs], [v for _, v in pairs],
                          [list(regions[i]) for i, _ in pairs]) if pairs else []
    best: list[tuple[str | None, torch.Tensor | None, float]] = [
        (None, m, -math.inf if m is None else float(m.mean())) for m in asked_maps]
    for (i, v), judgement in zip(pairs, judged, strict=True):
        m = make_map(judgement, images[i])
        if m is not None and float(m.mean()) > best[i][2]:
            best[i] = (v, m, float(m.mean()))
    return [Relabel(p, m) for p, m, _ in best]


def balance_weights(asked: Sequence[str], labels: Sequence[str], values: Callable[[str], list[str]],
                    cap: float, iterations: int = 100) -> list[float]:
    """Per-image weights under which the labels' attribute values are as frequent as in the asked prompts.

    `values(p)` lists the attribute values a prompt states (the world's `attribute_values`, e.g. "shape=circle" once
    per group). Raking (iterative proportional fitting, Deming and Stephan 1940): with q(v) a value's share among the
    asked prompts and p_w(v) its weighted share among the labels, each image's weight is multiplied by the geometric
    mean of q(v)/p_w(v) over its label's values; the weights are then scaled and clipped to [1/cap, cap] so that
    their mean is 1 (the loss keeps its scale), until they stop moving. An image stating several values carries all
    of them, so a per-value ratio alone would leave a circle drawn beside a square as rare as before; raking matches
    every marginal at once, as far as the cap allows. An image whose label states no value is moved by the scaling
    only; a value no asked prompt states drives its images to the floor.
    """
    if len(asked) != len(labels):
        raise ValueError(f"{len(asked)} asked prompts but {len(labels)} labels")
    if not cap >= 1.0:
        raise ValueError(f"cap={cap} must be ≥ 1 (1: no re-weighting)")
    if not labels:
        return []
    q = value_shares(asked, values)
    label_values = [values(label) for label in labels]
    w = torch.ones(len(labels), dtype=torch.float64)
    for _ in range(iterations):
        p = _shares(label_values, w.tolist())
        step = torch.tensor([math.exp(sum(math.log(max(q.get(v, 0.0), 1e-12) / p[v]) for v in vs) / len(vs))
                             if vs else 1.0 for vs in label_values], dtype=torch.float64)
        new = _mean_one_within(w * step, cap)
        if torch.allclose(new, w, atol=1e-7, rtol=0.0):
            break
        w = new
    return w.tolist()


def _mean_one_within(w: torch.Tensor, cap: float) -> torch.Tensor:
    """clamp(λ·w, 1/cap, cap) with λ (by bisection on log λ; the mean grows with λ) such that the mean is 1."""
    lo, hi = -60.0, 60.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if float((w * math.exp(mid)).clamp(1.0 / cap, cap).mean()) < 1.0:
            lo = mid
        else:
            hi = mid
    return (w * math.exp((lo + hi) / 2)).clamp(1.0 / cap, cap)


def value_shares(prompts: Sequence[str], values: Callable[[str], list[str]],
                 weights: Sequence[float] | None = None) -> dict[str, float]:
    """Each attribute value's share of all values the prompts state (each prompt's values counted with its weight)."""
    return _shares([values(p) for p in prompts], weights if weights is not None else [1.0] * len(prompts))


def _shares(value_lists: Sequence[list[str]], weights: Sequence[float]) -> dict[str, float]:
    counts: Counter[str] = Counter()
    for vs, w in zip(value_lists, weights, strict=True):
        for v in vs:
            counts[v] += w
    n = sum(counts.values())
    return {v: c / n for v, c in counts.items()} if n > 0 else {}
