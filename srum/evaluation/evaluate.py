"""Evaluate a checkpoint's generation: prompts → images (fixed seeds, batched) → judge → records.

Image k of the prompt at index i of category c always gets the same seed, so two checkpoints
evaluated with the same `seed` draw from the same noise and their scores compare like for like.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from srum.evaluation.benchmarks import PromptItem
from srum.evaluation.judges import Judge
from srum.models.interface import UnifiedModel

logger = logging.getLogger(__name__)


def image_seed(base: int, category_index: int, item_index: int, k: int, images_per_prompt: int) -> int:
    return base + (category_index * 100_000 + item_index) * images_per_prompt + k


def generate_and_judge(
    model: UnifiedModel,
    items: Sequence[PromptItem],
    judge: Judge,
    out: Path,
    images_per_prompt: int = 1,
    seed: int = 0,
    size: int = 64,
    batch_size: int = 16,
    think: bool = False,
    progress: bool = True,
) -> list[dict]:
    """Draw, save (`out/images/<category>/<index>_<k>.png`) and score every image; one record per image."""
    categories = list(dict.fromkeys(it.category for it in items))
    jobs = [(it, k, image_seed(seed, categories.index(it.category), it.index, k, images_per_prompt))
            for it in items for k in range(images_per_prompt)]
    records = []
    for start in tqdm(range(0, len(jobs), batch_size), desc="generate", disable=not progress, dynamic_ncols=True):
        chunk = jobs[start:start + batch_size]
        result = model.sample_images([it.prompt for it, _, _ in chunk], [s for _, _, s in chunk], size, size,
                                     think=think)
        scores = judge.score(result.images, [it.prompt for it, _, _ in chunk])
        for (it, k, s), image, score in zip(chunk, result.images, scores):
            rel = Path("images") / it.category / f"{it.index:05d}_{k}.png"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            image.save(out / rel)
            records.append({"category": it.category, "index": it.index, "k": k, "seed": s, "prompt": it.prompt,
                            "score": float(score), "file": str(rel)})
    return records
