"""Every config field's help, read from the comments beside (or directly above) it in `srum/config.py`, so the
schema's documentation lives in one place; `launch/srum.py --help-config` prints it."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import tokenize
import typing
from typing import Any

from srum import config as config_module


def _comments_by_line(source: str) -> dict[int, str]:
    return {tok.start[0]: tok.string.lstrip("#").strip()
            for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}


def _class_field_help(source: str) -> dict[tuple[str, str], str]:
    """(class name, field name) → its help: the comment on the field's line, after the comment lines just above."""
    comments = _comments_by_line(source)
    lines = source.splitlines()
    out = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef):
            continue
        for stmt in node.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                above, line = [], stmt.lineno - 1
                while line >= 1 and lines[line - 1].strip().startswith("#"):
                    above.insert(0, comments[line])
                    line -= 1
                parts = above + ([comments[stmt.end_lineno]] if stmt.end_lineno in comments else [])
                out[(node.name, stmt.target.id)] = " ".join(parts)
    return out


def schema_fields(schema: type = config_module.RunConfig, prefix: str = "") -> list[tuple[str, Any, Any, type]]:
    """Every leaf field of the schema: (dotted key, type, default, the dataclass that declares it)."""
    hints = typing.get_type_hints(schema)
    out = []
    for f in dataclasses.fields(schema):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            out += schema_fields(kind, f"{prefix}{f.name}.")
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        out.append((prefix + f.name, kind, default, schema))
    return out


def field_help() -> dict[str, str]:
    """Dotted key → help, for every leaf field of RunConfig ('' where a field has no comment)."""
    helps = _class_field_help(inspect.getsource(config_module))
    return {key: helps.get((owner.__name__, key.rsplit(".", 1)[-1]), "") for key, _, _, owner in schema_fields()}


def describe() -> str:
    """One block per field: key, type and default, then its help."""
    helps = field_help()
    rows = []
    for key, kind, default, _ in schema_fields():
        name = getattr(kind, "__name__", None) or str(kind).replace("typing.", "")
        shown = default.value if hasattr(default, "value") else default
        if shown is not None and isinstance(shown, str) and shown == "???":
            shown = "(required)"
        rows.append(f"{key} ({name}, default {shown!r})\n    {helps[key]}")
    return "\n".join(rows)
