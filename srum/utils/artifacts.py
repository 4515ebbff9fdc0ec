"""Reading what earlier stages wrote, checked: a damaged file stops the run with one line naming it, what is wrong
and how to fix it, instead of a library traceback (or, worse, a model trained on garbage).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from safetensors.torch import load_file

logger = logging.getLogger(__name__)

REDO = "delete it and rerun the same command: the stage that wrote it redoes that part"


class DamagedArtifact(RuntimeError):
    """A run-folder file that cannot be read, or holds values no stage of ours writes."""


def read_json(path: Path, fix: str = REDO) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DamagedArtifact(f"{path}: unreadable JSON ({_first_line(e)}); {fix}") from None


def read_tensors(path: Path, fix: str = REDO) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors, each finite."""
    try:
        tensors = load_file(str(path))
    except Exception as e:  # safetensors raises its own SafetensorError (and OSError) for a damaged file
        raise DamagedArtifact(f"{path}: unreadable safetensors ({_first_line(e)}); {fix}") from None
    for key, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise DamagedArtifact(f"{path}: tensor {key!r} has non-finite values; {fix}")
    return tensors


def check_range(path: Path, key: str, t: torch.Tensor, low: float, high: float, fix: str = REDO,
                tol: float = 1e-4) -> None:
    """DamagedArtifact unless every value of `t` lies in [low, high] (± `tol` for float rounding)."""
    if t.numel() and (float(t.min()) < low - tol or float(t.max()) > high + tol):
        raise DamagedArtifact(f"{path}: {key!r} has values in [{float(t.min()):.4g}, {float(t.max()):.4g}], "
                              f"outside [{low:g}, {high:g}]; {fix}")


def read_image(path: Path, fix: str = REDO) -> Image.Image:
    """The whole image decoded now (PIL decodes lazily, so a truncated PNG would fail later, elsewhere), as RGB."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, SyntaxError, ValueError) as e:
        raise DamagedArtifact(f"{path}: unreadable image ({_first_line(e)}); {fix}") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def quarantine(folder: Path, files: list[Path], reason: str) -> Path:
    """Move `files` (those present) into `folder/quarantine/` so the stage redoes them; an earlier quarantined file of
    the same name is kept (the new one gets a `.N` suffix). Nothing is deleted."""
    q = Path(folder) / "quarantine"
    q.mkdir(parents=True, exist_ok=True)
    for f in files:
        if f.exists() or f.is_symlink():
            dest, n = q / f.name, 1
            while dest.exists() or dest.is_symlink():
                dest, n = q / f"{f.name}.{n}", n + 1
            f.replace(dest)
    logger.warning("quarantined %s: %s; moved to %s, the stage redoes it", files[0], reason, q)
    return q


def quarantined(folder: Path) -> int:
    """How many chunks of a stage folder were moved aside (their `.json` markers in `quarantine/`)."""
    return len(list((Path(folder) / "quarantine").glob("chunk_*.json*")))
