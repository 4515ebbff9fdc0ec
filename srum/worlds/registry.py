"""Prompt worlds by the name a recipe or a command gives them (`generate.prompts=shapes`, `--benchmark shapes`).

A world is a module satisfying `srum.worlds.interface.World`; a new world is a folder plus a line here. Names are
plain data, so reading a config imports no world. Prompt files (T2I-CompBench) have no world: no oracle, no renders.
"""

from __future__ import annotations

import importlib

from srum.worlds.interface import World

WORLDS: dict[str, str] = {"shapes": "srum.worlds.shapes.world"}


def is_world(name: str | None) -> bool:
    return (name or "") in WORLDS


def world_for(name: str | None) -> World | None:
    """The world registered under `name`, or None (a prompt file or folder, a built-in judge)."""
    module = WORLDS.get(name or "")
    return importlib.import_module(module) if module else None  # type: ignore[return-value]
