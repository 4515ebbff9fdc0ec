"""Prompt worlds by the name a recipe gives as its prompt source (`generate.prompts=shapes`).

A world module offers `truth(images, prompts) -> scores in [0, 1]`, `oracle_scorer()` (a scorer with the
self-judge's `judge` method) and `render_truth(prompts, seeds, size)`; the loop asks for them by name only, so a new
world is a folder plus a line here. Prompt files (T2I-CompBench) have no world: no oracle, no renders.
"""

from __future__ import annotations

import importlib
from types import ModuleType

WORLDS: dict[str, str] = {"shapes": "srum.worlds.shapes.world"}


def world_for(prompt_source: str | None) -> ModuleType | None:
    """The world module behind a prompt source, or None for prompt files."""
    name = WORLDS.get(prompt_source or "")
    return importlib.import_module(name) if name else None
