"""Model backends by name. Import paths, not imports, so reading a config never loads torch models."""

from __future__ import annotations

import importlib

# name → "module:Class" of a class with `from_pretrained(path, dtype=, device=, **kwargs)` and `check_folder(path)`
BACKENDS: dict[str, str] = {"bagel": "srum.models.bagel.unified:BagelUnified"}


def backend_class(name: str) -> type:
    if name not in BACKENDS:
        raise ValueError(f"unknown model backend {name!r}; expected one of {sorted(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def load_unified_model(model_cfg, **kwargs):
    """Build the configured backend from its local folder (`model_cfg` is `srum.config.ModelConfig`)."""
    from srum.utils.device import resolve_device, resolve_dtype

    device = resolve_device(model_cfg.device)
    return backend_class(model_cfg.backend).from_pretrained(
        model_cfg.path, dtype=resolve_dtype(model_cfg.dtype, device), device=device, **kwargs)


def check_model_folder(model_cfg) -> None:
    """FileNotFoundError naming what the configured backend's folder lacks; nothing is loaded."""
    backend_class(model_cfg.backend).check_folder(model_cfg.path)
