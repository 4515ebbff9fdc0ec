"""Scorers of (image, prompt) pairs behind one signature: images, prompts → scores in [0, 1]."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from PIL import Image


class Judge(Protocol):
    name: str

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> np.ndarray:
        """(N,) scores in [0, 1]."""


class ShapesOracleJudge:
    """The ShapesWorld oracle: parses pixels, scores the fraction of the prompt's requirements met."""

    name = "shapes"

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> np.ndarray:
        from srum.worlds.shapes.oracle import score_batch

        return score_batch(images, prompts)


JUDGES = {"shapes": ShapesOracleJudge}


def build_judge(name: str) -> Judge:
    if name not in JUDGES:
        raise ValueError(f"unknown judge {name!r}; expected one of {sorted(JUDGES)}")
    return JUDGES[name]()
