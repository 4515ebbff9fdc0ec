"""Prompt sources: a prompt world's splits (by its registered name, e.g. `shapes`), T2I-CompBench files (a folder)
and SRUM's prompt JSON (a file).

Every item carries its category and its index within the category, so image seeds and file names
are the same for every checkpoint evaluated on the same benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# T2I-CompBench's categories (the SRUM paper's table orders them alphabetically: srum.evaluation.report.PAPER_ORDER).
COMPBENCH_CATEGORIES: tuple[str, ...] = (
    "color", "shape", "texture", "spatial", "3d_spatial", "numeracy", "non_spatial", "complex",
)


@dataclass(frozen=True)
class PromptItem:
    category: str
    index: int  # position within its category's list
    prompt: str


def compbench_prompts(directory: str | Path, split: str = "val", limit: int | None = None,
                      categories: tuple[str, ...] = COMPBENCH_CATEGORIES) -> list[PromptItem]:
    """T2I-CompBench prompt files `<category>_<split>.txt` (one prompt per line) from a local folder.

    `complex_action` / `complex_spatial` (SRUM's extra groups, srum.md §4.1) read `complex_<split>_action.txt` etc.
    """
    directory = Path(directory)
    items = []
    for c in categories:
        sub = c.removeprefix("complex_") if c in ("complex_action", "complex_spatial") else None
        path = directory / (f"complex_{split}_{sub}.txt" if sub else f"{c}_{split}.txt")
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: --prompts must be a folder of T2I-CompBench prompt files "
                                    f"(<category>_<split>.txt, e.g. color_val.txt)")
        lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        items += [PromptItem(c, i, p) for i, p in enumerate(lines[:limit])]
    return items


def official_json_prompts(path: str | Path, limit: int | None = None) -> list[PromptItem]:
    """SRUM's prompt JSON (`train_comp.json` / `val_comp.json`): a list of {Question, Category, Question_id}."""
    import json

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prompt file {path} not found")
    try:
        rows = json.loads(path.read_text())
        items = [PromptItem(str(r["Category"]), int(r["Question_id"]), str(r["Question"])) for r in rows]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: expected a JSON list of {{Question, Category, Question_id}} ({e})") from e
    if limit is not None:
        per_cat: dict[str, int] = {}
        kept = []
        for it in items:
            per_cat[it.category] = per_cat.get(it.category, 0) + 1
            if per_cat[it.category] <= limit:
                kept.append(it)
        items = kept
    return items


def load_prompt_source(source: str, split: str = "train", limit: int | None = None) -> list[PromptItem]:
    """Prompts from a prompt world (its registered name), a SRUM JSON file, or a folder of T2I-CompBench txt files."""
    from srum.worlds.registry import world_for

    world = world_for(source)
    if world is not None:
        return world.prompts(split, limit)
    path = Path(source)
    if path.is_dir():
        categories = tuple(c for c in COMPBENCH_CATEGORIES if (path / f"{c}_{split}.txt").is_file())
        if not categories:
            raise FileNotFoundError(f"{path} holds no <category>_{split}.txt prompt files")
        return compbench_prompts(path, split, limit, categories)
    return official_json_prompts(path, limit)
