"""ShapesWorld's hooks for the SRUM loop (found through `srum.worlds.registry`): its exact judge, as a truth score
and as a training reward source, and ground-truth renders of any prompt (the capacity reference)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from srum.worlds.shapes import oracle
from srum.worlds.shapes.grammar import parse_prompt
from srum.worlds.shapes.layout import sample_scene
from srum.worlds.shapes.render import render
from srum.worlds.shapes.reward import OracleScorer


def truth(images: Sequence[Image.Image], prompts: Sequence[str]) -> np.ndarray:
    """The oracle's score in [0, 1] per image: the fraction of the prompt's requirements met."""
    return oracle.score_batch(images, prompts)


def oracle_scorer() -> OracleScorer:
    return OracleScorer()


def render_truth(prompts: Sequence[str], seeds: Sequence[int], size: int) -> list[Image.Image]:
    """A correct image per prompt: a scene that meets every requirement, drawn with the renderer's jitter."""
    out = []
    for prompt, seed in zip(prompts, seeds, strict=True):
        rng = np.random.default_rng(int(seed))
        out.append(render(sample_scene(parse_prompt(prompt), rng), size, rng))
    return out
