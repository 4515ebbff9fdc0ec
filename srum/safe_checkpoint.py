"""Resume checkpoints are read without running code from them.

DeepSpeed's loader calls `torch.load(weights_only=False)`, i.e. full unpickling: a `.pt` file planted in a run
folder would run its own code on the next resume. This loader reads DeepSpeed's files with
`torch.load(weights_only=True)`, which rebuilds only tensors, containers and plain values, plus the few DeepSpeed
types its ZeRO optimizer states hold, allowed here by name.
"""

from __future__ import annotations

import importlib
import pickle
import zipfile
from pathlib import Path

import torch

# (module, name) of the classes DeepSpeed's ZeRO-2/3 checkpoints hold besides tensors and plain data
ALLOWED_GLOBALS = (
    ("deepspeed.runtime.fp16.loss_scaler", "LossScaler"),
    ("deepspeed.runtime.fp16.loss_scaler", "DynamicLossScaler"),
    ("deepspeed.runtime.zero.config", "ZeroStageEnum"),
    ("deepspeed.utils.tensor_fragment", "fragment_address"),
)


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint file holds something other than tensors, plain data and the allowed DeepSpeed types."""


def allowed_globals() -> list:
    found = []
    for module, name in ALLOWED_GLOBALS:
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):  # another DeepSpeed version: that type cannot occur either
            continue
    return found


def safe_load(path: str, map_location=None):
    """torch.load with weights_only=True and the DeepSpeed allow-list; UnsafeCheckpointError names the file."""
    try:
        with torch.serialization.safe_globals(allowed_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UnsafeCheckpointError(
            f"{path}: refused to load — it holds more than tensors and plain data ({first}); srum never unpickles "
            "code from a run folder: delete the file (or its checkpoint folder) if this run did not write it") from None


def damage(tag_dir: Path, rank: int) -> str | None:
    """What is wrong with the files of checkpoint `tag_dir` that `rank` reads (the shared model states and its own
    ZeRO shards), or None: each must exist and be an intact zip archive (torch's format; CRCs checked)."""
    if not tag_dir.is_dir():
        return f"{tag_dir} is missing"
    mine = [p for p in sorted(tag_dir.glob("*.pt"))
            if p.name.startswith("mp_rank_") or f"zero_pp_rank_{rank}_" in p.name]
    if not any(f"zero_pp_rank_{rank}_" in p.name and "optim_states" in p.name for p in mine):
        return f"{tag_dir} has no optimizer shard for rank {rank}"
    for p in mine:
        try:
            with zipfile.ZipFile(p) as archive:
                bad = archive.testzip()
        except (OSError, zipfile.BadZipFile) as e:
            return f"{p.name}: {e}"
        if bad is not None:
            return f"{p.name}: {bad} fails its CRC"
    return None


def install(engine) -> None:
    """Make a DeepSpeed engine read its checkpoints with `safe_load` (its own writer is unchanged)."""
    checkpoint_engine = engine.checkpoint_engine
    checkpoint_engine.load = lambda path, map_location=None: safe_load(path, map_location)
