"""The chance level of each ShapesWorld category: what a generator that ignores the prompt scores.

"Above chance" needs a number. A prompt-ignoring generator that still draws well-formed scenes is the honest
floor: for each prompt, a clean render of *another* prompt of the same category (so the scene has that
category's structure: two objects and a relation, a count, …) is scored against the original prompt. Partial
credit makes this floor well above 0, e.g. when the other prompt shares a shape.

    python -m srum.worlds.shapes.chance --split val
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from srum.worlds.shapes.world import prompts as shapes_prompts
from srum.worlds.shapes.grammar import parse_prompt
from srum.worlds.shapes.layout import sample_scene
from srum.worlds.shapes.oracle import category_means, score_batch
from srum.worlds.shapes.render import render
from srum.worlds.shapes.splits import HELD_OUT


def chance_scores(split: str = "val", seed: int = 0, limit: int | None = None) -> dict[str, float]:
    """Mean oracle score per category of renders of a random other prompt of the same category."""
    rng = np.random.default_rng(seed)
    items = shapes_prompts(split, limit=limit)
    by_category: dict[str, list[str]] = {}
    for it in items:
        by_category.setdefault(it.category, []).append(it.prompt)
    images, prompts, categories = [], [], []
    for it in items:
        others = [p for p in by_category[it.category] if p != it.prompt]
        other = others[int(rng.integers(len(others)))]
        images.append(render(sample_scene(parse_prompt(other), rng, avoid=HELD_OUT), 64, rng))
        prompts.append(it.prompt)
        categories.append(it.category)
    return category_means(score_batch(images, prompts), categories)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="val")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    scores = chance_scores(args.split, args.seed)
    print(json.dumps({k: round(v, 3) for k, v in scores.items()}
                     | {"overall": round(float(np.mean(list(scores.values()))), 3)}, indent=1))


if __name__ == "__main__":
    main()
