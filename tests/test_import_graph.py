"""The seams hold, read from the import graph: no module of the loop or of evaluation imports a model backend or a
prompt world. They reach both by name, through `srum.models.registry` and `srum.worlds.registry`, and call them
through `srum.models.interface.UnifiedModel` and `srum.worlds.interface.World`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "srum"
# Entry points of the loop and of evaluation; world tools (pretrain_shapes, tune_sampler, make_shapes_splits) may
# name their world and its backend.
LAUNCHERS = ("srum.py", "evaluate.py", "ablate.py", "sample.py", "curves.py")  # cli wrappers and tools
SEAMS = {
    "srum.models": {"srum.models", "srum.models.interface", "srum.models.registry", "srum.models.tokenizer"},
    "srum.worlds": {"srum.worlds", "srum.worlds.interface", "srum.worlds.registry"},
}


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (imports inside functions count too)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{alias.name}" for alias in node.names}
    return out


def generic_files() -> list[Path]:
    inside = [p for p in PACKAGE.rglob("*.py")
              if not p.relative_to(PACKAGE).parts[0] in ("models", "worlds")]
    return sorted(inside) + [ROOT / "launch" / name for name in LAUNCHERS]


def crossings(path: Path) -> list[str]:
    found = []
    for module in imported_modules(path):
        for seam, allowed in SEAMS.items():
            if module.startswith(seam + ".") and not any(module == a or module.startswith(a + ".") for a in allowed
                                                         if a != seam):
                found.append(module)
    return sorted(found)


@pytest.mark.parametrize("path", generic_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_generic_code_names_no_backend_and_no_world(path):
    assert crossings(path) == [], f"{path.relative_to(ROOT)} reaches past a seam"


def test_the_check_sees_a_crossing(tmp_path):
    """The rule above can fail: an import inside a function of a loop module is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from srum.models.bagel.sampling import GuidanceParams\n"
                   "import srum.worlds.shapes.oracle\nfrom srum.models.registry import backend_class\n")
    assert crossings(bad) == ["srum.models.bagel.sampling", "srum.models.bagel.sampling.GuidanceParams",
                              "srum.worlds.shapes.oracle"]
