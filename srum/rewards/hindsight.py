"""Hindsight relabelling (`reward.hindsight`): each image is trained on the variant of its prompt it fits best.

Why: a unified model's failures are often one wrong attribute in an otherwise fine picture. On ShapesWorld the shape
drawn barely depends on the shape asked: 6% of a round's own images meet their prompt, 25% meet the same prompt with
other shapes and 32% with other shapes or another relation of its family. Relabelled, a square drawn for "a circle"
is a correct example of "a square", so most images can teach what their words mean, not only the few lucky ones (the
idea of hindsight experience replay, Andrychowicz et al. 2017, arXiv 1707.01495). The judge chooses the label, so
under `reward.source=self` the model itself does and the loop stays self-rewarding. The prompt world supplies the
variants (`prompt_variants`); this module names none.
"""

from __future__ import annotations

import math
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
