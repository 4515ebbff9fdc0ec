"""Every field of the run config is read by some code: a field nothing reads is a setting that silently does
nothing (as `train.activation_checkpointing` once did). Checked on the source's attribute accesses: the field's
name must be read as `<something>.<name>` outside `srum/config.py` (or by config.py's own cross-field logic)."""

from __future__ import annotations

import ast
import dataclasses
import typing
from pathlib import Path

from srum import config as C

ROOT = Path(__file__).resolve().parents[1]


def _leaf_fields(cls, prefix: str = "") -> list[str]:
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out += _leaf_fields(hints[f.name], f"{prefix}{f.name}.")
        else:
            out.append(prefix + f.name)
    return out


def _attributes_read(files) -> set[str]:
    names = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                names.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):  # getattr(cfg, "name") and the like
                names.add(node.value)
    return names


def test_every_config_field_is_read():
    files = [p for p in (ROOT / "srum").rglob("*.py") if p.name != "config.py"] + list((ROOT / "launch").glob("*.py"))
    read = _attributes_read(files)
    unread = [key for key in _leaf_fields(C.RunConfig) if key.rsplit(".", 1)[-1] not in read]
    assert not unread, f"config fields no code reads: {unread}"
