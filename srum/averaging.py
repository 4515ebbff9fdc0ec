"""Checkpoint averaging: one model whose weights are the mean of several checkpoints' (Polyak averaging of rounds).

Why: online rounds climb, peak and slip back, and which round peaks is only known afterwards. On ShapesWorld the
mean of the wide hindsight runs' round 4–6 exports kept their round-4 gain where round 6 alone had given part of it
back (docs/reward.md). The checkpoints must share one architecture (a run's rounds, or runs from one base):
names and shapes are checked, and a mismatch stops naming the folder.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from srum.config import ModelConfig
from srum.models.registry import load_unified_model
from srum.utils.io import atomic_folder, write_manifest

logger = logging.getLogger(__name__)


def average_checkpoints(folders: Sequence[Path], out: Path, backend: str = "bagel",
                        dtype: torch.dtype = torch.float32) -> Path:
    """Write to `out` the model whose floating-point weights are the plain mean of `folders`' (summed in float32,
    stored as `dtype`); integer buffers must agree and are kept. Everything else (autoencoder, tokenizer, sampler
    settings) comes from the last folder. `out` appears only when complete (written beside it, then renamed)."""
    folders = [Path(f) for f in folders]
    if len(folders) < 2:
        raise ValueError(f"averaging needs at least two checkpoint folders, got {len(folders)}")
    if out.exists():
        raise FileExistsError(f"{out} already exists: choose another output folder")
    total: dict[str, torch.Tensor] = {}
    unified = None
    for i, folder in enumerate(folders):
        del unified  # one model in memory at a time, besides the running sum
        unified = load_unified_model(ModelConfig(backend=backend, path=str(folder), dtype="float32", device="cpu"))
        state = unified.trainable_module().state_dict()
        if i == 0:
            total = {k: v.detach().clone() for k, v in state.items()}
            continue
        _check_same_tensors(total, state, folders[0], folder)
        for k, v in state.items():
            if v.is_floating_point():
                total[k] += v
            elif not torch.equal(total[k], v):
                raise ValueError(f"{folder}: buffer {k!r} differs from {folders[0]}'s; only checkpoints of one "
                                 "model can be averaged")
    mean = {k: (v / len(folders)).to(dtype) if v.is_floating_point() else v for k, v in total.items()}
    with atomic_folder(out) as tmp:
        unified.save_pretrained(tmp, state_dict=mean)
        write_manifest(tmp, {"average_of": [str(f) for f in folders], "backend": backend, "dtype": str(dtype)},
                       extra={"stage": "average"})
    logger.info("averaged %d checkpoints into %s", len(folders), out)
    return out


def _check_same_tensors(first: dict[str, torch.Tensor], other: dict[str, torch.Tensor], first_folder: Path,
                        folder: Path) -> None:
    missing, extra = sorted(set(first) - set(other)), sorted(set(other) - set(first))
    if missing or extra:
        raise ValueError(f"{folder}: parameter names differ from {first_folder}'s (missing {missing[:3]}, extra "
                         f"{extra[:3]}); only checkpoints of one model can be averaged")
    for k, v in other.items():
        if v.shape != first[k].shape:
            raise ValueError(f"{folder}: {k!r} has shape {tuple(v.shape)}, {first_folder} {tuple(first[k].shape)}; "
                             "only checkpoints of one model can be averaged")
