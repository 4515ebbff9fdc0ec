"""The ShapesWorld oracle as a judge."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image


class ShapesOracleJudge:
    """The ShapesWorld oracle: parses pixels, scores the fraction of the prompt's requirements met."""

    name = "shapes"

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> np.ndarray:
        from srum.worlds.shapes.oracle import score_batch

        return score_batch(images, prompts)
