"""Activation checkpointing of the decoder layers: the same loss and gradients, and only while training."""

from __future__ import annotations

import torch

from srum.models.bagel.unified import BagelUnified
from srum.worlds.shapes.model import shapes_tokenizer

from .conftest import make_tiny


def _loss_and_grads(on: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model, vae = make_tiny(3)
    model.train().set_activation_checkpointing(on)
    unified = BagelUnified(model, vae, shapes_tokenizer(model.config))
    g = torch.Generator().manual_seed(0)
    x_t = torch.randn(2, 4, model.config.patch_latent_dim, generator=g)
    v = unified.velocity(["a red circle", None], x_t, torch.tensor([0.3, 0.8]), (2, 2))
    loss = (v - torch.randn(v.shape, generator=g)).pow(2).mean()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_same_loss_and_gradients_with_and_without():
    loss_plain, grads_plain = _loss_and_grads(False)
    loss_ckpt, grads_ckpt = _loss_and_grads(True)
    assert torch.allclose(loss_plain, loss_ckpt, atol=1e-6, rtol=0)
    assert grads_plain.keys() == grads_ckpt.keys() and len(grads_plain) > 10
    assert max((grads_plain[k] - grads_ckpt[k]).abs().max().item() for k in grads_plain) <= 1e-6


def test_it_saves_fewer_tensors_for_backward():
    saved = {}
    for on in (False, True):
        model, vae = make_tiny(3)
        model.train().set_activation_checkpointing(on)
        unified = BagelUnified(model, vae, shapes_tokenizer(model.config))
        x_t = torch.randn(2, 16, model.config.patch_latent_dim)
        count = [0]

        def pack(t, count=count):
            count[0] += t.numel()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            unified.velocity(["a red circle", "a blue square"], x_t, torch.tensor([0.3, 0.8]), (4, 4))
        saved[on] = count[0]
    assert saved[True] < 0.5 * saved[False]
