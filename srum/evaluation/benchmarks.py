"""Prompt sources for evaluation: ShapesWorld splits (generated from a seed) and T2I-CompBench files (read from a path).

Every item carries its category and its index within the category, so image seeds and file names
are the same for every checkpoint evaluated on the same benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from srum.worlds.shapes.grammar import CATEGORIES as SHAPES_CATEGORIES

# T2I-CompBench's categories in the order of the SRUM paper's table.
COMPBENCH_CATEGORIES: tuple[str, ...] = (
    "color", "shape", "texture", "spatial", "3d_spatial", "numeracy", "non_spatial", "complex",
)


@dataclass(frozen=True)
class PromptItem:
    category: str
    index: int  # position within its category's list
    prompt: str


def shapes_prompts(split: str, seed: int = 0, limit: int | None = None,
                   categories: tuple[str, ...] = SHAPES_CATEGORIES) -> list[PromptItem]:
    """ShapesWorld prompts of a split (train / val / test), `limit` per category."""
    from srum.worlds.shapes.splits import make_splits

    splits = make_splits(seed)
    return [PromptItem(c, i, p) for c in categories for i, p in enumerate(splits[c][split][:limit])]


def compbench_prompts(directory: str | Path, split: str = "val", limit: int | None = None,
                      categories: tuple[str, ...] = COMPBENCH_CATEGORIES) -> list[PromptItem]:
    """T2I-CompBench prompt files `<category>_<split>.txt` (one prompt per line) from a local folder."""
    directory = Path(directory)
    items = []
    for c in categories:
        path = directory / f"{c}_{split}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: --prompts must be a folder of T2I-CompBench prompt files "
                                    f"(<category>_<split>.txt, e.g. color_val.txt)")
        lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        items += [PromptItem(c, i, p) for i, p in enumerate(lines[:limit])]
    return items
