"""LoRA on the generation side via peft: adapters injected in place, a reference that is the same model with
its adapters switched off (so the `kl` constraint needs no second copy), and export by merging into the base names.

Targets are the backend's (`UnifiedModel.lora_targets`; BAGEL: the generation expert's projections).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.tuners.tuners_utils import BaseTunerLayer

def add_lora(model: torch.nn.Module, rank: int, alpha: float, targets: str) -> list[torch.nn.Parameter]:
    """Inject LoRA adapters on the modules `targets` (a regex) matches (B = 0, so the model is unchanged at
    first); only adapter weights stay trainable."""
    inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=targets), model)
    params = []
    for name, p in model.named_parameters():
        p.requires_grad_("lora_" in name)
        if p.requires_grad:
            params.append(p)
    if not params:
        raise ValueError(f"LoRA matched no module for {targets!r}: the backend's lora_targets do not fit this model")
    return params


@contextlib.contextmanager
def adapters_disabled(model: torch.nn.Module) -> Iterator[None]:
    """The base model inside the block: every LoRA layer is bypassed, then switched back on."""
    layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
    for m in layers:
        m.enable_adapters(False)
    try:
        yield
    finally:
        for m in layers:
            m.enable_adapters(True)


def merged_state_dict(state: dict[str, torch.Tensor], rank: int, alpha: float) -> dict[str, torch.Tensor]:
    """A LoRA model's full state dict → the base model's names, with W ← W + (alpha/rank)·B·A folded in."""
    scale = alpha / rank
    out = {}
    for key, value in state.items():
        if "lora_" in key:
            continue
        name = key.replace(".base_layer.", ".")
        if key.endswith(".base_layer.weight"):
            prefix = key[: -len(".base_layer.weight")]
            a, b = state[f"{prefix}.lora_A.default.weight"], state[f"{prefix}.lora_B.default.weight"]
            value = value + scale * (b.float() @ a.float()).to(value.dtype)
        out[name] = value
    return out
