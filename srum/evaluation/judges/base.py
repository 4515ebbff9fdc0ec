"""What every judge is: images and prompts in, scores in [0, 1] out; and where judge weights come from.

Judges that need the category or give more than a score also have `judge(images, prompts, categories) -> list[dict]`
(each dict has `score` in [0, 1], or None when excluded, plus details); `judge_batch` calls whichever a judge has.
Weights come only from local folders; nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image


class Judge(Protocol):
    name: str

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> np.ndarray:
        """(N,) scores in [0, 1]."""



def judge_batch(judge: Judge, images: Sequence[Image.Image], prompts: Sequence[str],
                categories: Sequence[str]) -> list[dict]:
    """One dict per image with `score` (in [0, 1], or None: excluded from means) and the judge's details."""
    if hasattr(judge, "judge"):
        return judge.judge(images, prompts, categories)
    return [{"score": float(s)} for s in judge.score(images, prompts)]


def local_model_dir(paths: dict[str, str | Path], key: str, judge: str) -> Path:
    """The local folder for `key`, or a FileNotFoundError that names the flag to set."""
    if key not in paths:
        raise FileNotFoundError(f"judge {judge!r} needs a local {key} model folder: pass --judge-paths {key}=DIR "
                                f"(or --tiny-judges DIR for tiny random stand-ins); got keys {sorted(paths)}")
    p = Path(paths[key])
    if not (p / "config.json").is_file():
        raise FileNotFoundError(f"--judge-paths {key}={str(p)!r} has no config.json; point it at a local "
                                f"Hugging Face model folder (weights are never downloaded)")
    return p
