from __future__ import annotations

import pytest
import torch

from srum.models.registry import backend_class
from srum.utils.device import resolve_device, resolve_dtype


def test_cpu_defaults_and_errors():
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu) is torch.float32
    assert resolve_dtype("bfloat16", cpu) is torch.bfloat16
    with pytest.raises(ValueError, match="float16"):
        resolve_dtype("float16", cpu)
    if not torch.cuda.is_available():
        assert resolve_device("auto") == cpu
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            resolve_device("cuda:0")


def test_backend_registry():
    assert backend_class("bagel").__name__ == "BagelUnified"
    with pytest.raises(ValueError, match="expected one of \\['bagel'\\]"):
        backend_class("janus")
