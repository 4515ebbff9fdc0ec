"""LoRA on the generation expert: starts as the base model, the adapter-off view is the base, export merges exactly."""

from __future__ import annotations

import torch

from srum.lora import adapters_disabled, add_lora, merged_state_dict
from srum.models.bagel.config import BagelConfig
from srum.models.bagel.model import Bagel
from srum.models.bagel.sequence import Latent, build_batch, text_segment
from srum.models.bagel.unified import BagelUnified


def _velocity(model, batch):
    with torch.no_grad():
        out = model(batch)
        return model.velocity(out.hidden[batch.noisy])


def test_lora_reference_and_merge():
    torch.manual_seed(0)
    cfg = BagelConfig.tiny()
    base = Bagel(cfg)
    batch = build_batch([[text_segment([5, 6, 7], cfg), Latent(torch.randn(4, 64), (2, 2), 0.7, noisy=True)]], cfg)
    v_base = _velocity(base, batch)
    model = Bagel(cfg)
    model.load_state_dict(base.state_dict())
    params = add_lora(model, rank=4, alpha=8.0, targets=BagelUnified.lora_targets)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n and "_moe_gen" in n for n in names)
    assert len(names) == 2 * 7 * cfg.llm_config.num_hidden_layers  # A and B for q, k, v, o, gate, up, down
    assert torch.allclose(_velocity(model, batch), v_base, atol=1e-6)  # B = 0: unchanged, so kl = 0 at start
    for p in params:  # a drift of the adapters
        p.data.normal_(0, 0.05)
    v_adapted = _velocity(model, batch)
    assert (v_adapted - v_base).abs().max() > 1e-3
    with adapters_disabled(model):
        assert torch.allclose(_velocity(model, batch), v_base, atol=1e-6)  # the reference is the base model
    merged = Bagel(cfg)
    merged.load_state_dict(merged_state_dict(model.state_dict(), rank=4, alpha=8.0))  # strict: base names only
    assert torch.allclose(_velocity(merged, batch), v_adapted, atol=1e-5)
