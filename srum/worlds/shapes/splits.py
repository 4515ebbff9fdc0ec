"""Train / val / test prompt files in T2I-CompBench's format: `<category>_<split>.txt`, one prompt per line.

The test split measures compositional generalisation: every test prompt binds at least one held-out attribute to a
shape (`HELD_OUT`, e.g. "a red triangle", "a striped circle"), and no train or val prompt does. Images for training
should avoid those pairs too: pass `HELD_OUT` as `avoid` to `layout.sample_scene`, so an unstated colour or texture is
never drawn onto a held-out shape. Prompts are deduplicated within and across splits; small categories (numeracy has
a few hundred distinct prompts in all) get fewer than asked for, with a warning.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from srum.utils.io import atomic_write_text
from srum.worlds.shapes.grammar import CATEGORIES, PromptSpec, sample_spec, to_text

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")
HELD_OUT: frozenset[tuple[str, str]] = frozenset({
    ("red", "triangle"), ("blue", "circle"), ("yellow", "square"),  # colour-shape pairs
    ("striped", "circle"), ("dotted", "triangle"),  # texture-shape pairs
})
DEFAULT_SIZES: dict[str, int] = {"train": 600, "val": 150, "test": 150}


def has_held_out(spec: PromptSpec, held_out: frozenset[tuple[str, str]] = HELD_OUT) -> bool:
    """Whether some group states a held-out (colour, shape) or (texture, shape) pair."""
    return any((g.color, g.shape) in held_out or (g.texture, g.shape) in held_out for g in spec.groups)


def make_splits(seed: int = 0, sizes: dict[str, int] | None = None) -> dict[str, dict[str, list[str]]]:
    """{category: {split: prompts}}; the same seed gives the same files on every machine."""
    sizes = {**DEFAULT_SIZES, **(sizes or {})}
    out: dict[str, dict[str, list[str]]] = {}
    for c_index, category in enumerate(CATEGORIES):
        rng = np.random.default_rng([seed, c_index])
        seen: set[str] = set()
        seen_pool, held_pool = [], []
        want_seen = sizes["train"] + sizes["val"]
        for _ in range(50 * (want_seen + sizes["test"])):
            if len(seen_pool) >= want_seen and len(held_pool) >= sizes["test"]:
                break
            spec = sample_spec(category, rng)
            text = to_text(spec)
            if text in seen:
                continue
            seen.add(text)
            pool, cap = (held_pool, sizes["test"]) if has_held_out(spec) else (seen_pool, want_seen)
            if len(pool) < cap:
                pool.append(text)
        n_val = min(sizes["val"], len(seen_pool) // 5) if len(seen_pool) < want_seen else sizes["val"]
        out[category] = {"train": seen_pool[n_val:], "val": seen_pool[:n_val], "test": held_pool}
        for split, prompts in out[category].items():
            if len(prompts) < sizes[split]:
                logger.debug("category=%s split=%s prompts=%d asked=%d reason=few_distinct_prompts",
                               category, split, len(prompts), sizes[split])
    return out


def write_splits(out_dir: str | Path, seed: int = 0, sizes: dict[str, int] | None = None) -> dict[str, dict[str, int]]:
    """Write `<category>_<split>.txt` for every category and split; returns the number of prompts in each file."""
    out_dir = Path(out_dir)
    counts: dict[str, dict[str, int]] = {}
    for category, splits in make_splits(seed, sizes).items():
        counts[category] = {}
        for split, prompts in splits.items():
            atomic_write_text(out_dir / f"{category}_{split}.txt", "\n".join(prompts) + "\n")
            counts[category][split] = len(prompts)
    logger.info("wrote ShapesWorld splits dir=%s seed=%d counts=%s", out_dir, seed, counts)
    return counts


def load_prompts(directory: str | Path, category: str, split: str) -> list[str]:
    """Prompts of one file, blank lines skipped (the format T2I-CompBench's files use too)."""
    if category not in CATEGORIES or split not in SPLITS:
        raise ValueError(f"category={category!r} split={split!r}: use one of {CATEGORIES} and one of {SPLITS}")
    path = Path(directory) / f"{category}_{split}.txt"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; create the files with "
                                f"srum.worlds.shapes.splits.write_splits({str(directory)!r})")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]
