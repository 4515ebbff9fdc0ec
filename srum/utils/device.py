"""Device and dtype chosen once from the config: fp32 on CPU, bf16 on GPUs that support it."""

from __future__ import annotations

import torch

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def resolve_device(name: str) -> torch.device:
    """'auto' → cuda when available, else cpu; a cuda device that is absent is an error, not a silent CPU run."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available; use device=cpu or auto")
    return device


def rank_device(name: str, local_rank: int) -> torch.device:
    """`resolve_device`, with a GPU named without an index (or found by 'auto') pinned to this rank's own GPU."""
    device = resolve_device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """'auto' → bf16 on CUDA with bf16 support, else float32; bf16 on a GPU without it is refused."""
    if name == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if name not in _DTYPES:
        raise ValueError(f"dtype {name!r}; expected auto, float32 or bfloat16")
    if _DTYPES[name] is torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise RuntimeError(f"{torch.cuda.get_device_name(device)} does not support bfloat16; use dtype=float32")
    return _DTYPES[name]
