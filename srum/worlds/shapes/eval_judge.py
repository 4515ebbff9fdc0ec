"""The ShapesWorld oracle as an evaluation judge (`eval.judge=shapes`, `--judge shapes`)."""

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

    def judge(self, images: Sequence[Image.Image], prompts: Sequence[str], categories: Sequence[str]) -> list[dict]:
        """Scores with the reason: each requirement of the prompt as [what, met], and the objects parsed."""
        from srum.worlds.shapes.oracle import explain

        out = []
        for image, prompt in zip(images, prompts, strict=True):
            e = explain(image, prompt)
            out.append({"score": float(e.score),
                        "requirements": [[f"{req.kind}: {req.text}", ok] for req, ok in e.results],
                        "seen": [f"{o.size} {o.texture or '?'} {o.color} {o.shape}" for o in e.objects]})
        return out
