"""Checkpoint averaging: the mean of exports, checked against hand-computed means and refused across models."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from srum.averaging import average_checkpoints
from srum.models.bagel.weights import save_bagel
from .conftest import tiny_shapes_bagel


def _perturbed(folder, scale: float, seed: int):
    """A copy of the tiny model with every floating-point weight moved by seeded noise; returns its state."""
    model, vae, tok = tiny_shapes_bagel()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    save_bagel(folder, model, vae, tok)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_mean_of_three_checkpoints(tmp_path):
    states = [_perturbed(tmp_path / f"r{i}", 0.1 * (i + 1), seed=i) for i in range(3)]
    out = average_checkpoints([tmp_path / f"r{i}" for i in range(3)], tmp_path / "avg")
    got = load_file(str(out / "model.safetensors"))
    assert set(got) == set(states[0])
    for k, v in got.items():
        want = (states[0][k] + states[1][k] + states[2][k]) / 3 if v.is_floating_point() else states[0][k]
        torch.testing.assert_close(v, want, rtol=1e-6, atol=1e-7, msg=k)
    # not the mean of two of them, nor one of them: every perturbed weight moved
    k = next(k for k in got if "moe_gen" in k and got[k].is_floating_point())
    assert not torch.allclose(got[k], states[2][k]) and not torch.allclose(got[k], (states[1][k] + states[2][k]) / 2)
    assert json.loads((out / "manifest.json").read_text())["config"]["average_of"] == [str(tmp_path / f"r{i}")
                                                                                      for i in range(3)]
    torch.testing.assert_close(load_file(str(out / "vae.safetensors")),
                               load_file(str(tmp_path / "r2" / "vae.safetensors")))
    assert not list(tmp_path.glob(".avg*")), "the partial folder is renamed, not left behind"


def test_bfloat16_output(tmp_path):
    states = [_perturbed(tmp_path / f"r{i}", 0.1, seed=i) for i in range(2)]
    out = average_checkpoints([tmp_path / "r0", tmp_path / "r1"], tmp_path / "avg", dtype=torch.bfloat16)
    got = load_file(str(out / "model.safetensors"))
    k = next(k for k in got if got[k].is_floating_point())
    assert got[k].dtype == torch.bfloat16
    assert torch.equal(got[k], ((states[0][k] + states[1][k]) / 2).to(torch.bfloat16))


def test_refuses_other_models_and_existing_output(tmp_path, tiny_checkpoint):
    from srum.models.bagel.config import BagelConfig
    from srum.models.bagel.model import Bagel
    from srum.models.bagel.vae import BagelVAE
    from srum.worlds.shapes.model import shapes_tokenizer

    cfg = BagelConfig.tiny(vocab_size=640)
    save_bagel(tmp_path / "wide", Bagel(cfg), BagelVAE(cfg.vae_config), shapes_tokenizer(cfg))
    with pytest.raises(ValueError, match=r"wide: .* has shape"):
        average_checkpoints([tiny_checkpoint, tmp_path / "wide"], tmp_path / "avg")
    assert not (tmp_path / "avg").exists()
    with pytest.raises(ValueError, match="at least two"):
        average_checkpoints([tiny_checkpoint], tmp_path / "avg")
    (tmp_path / "avg").mkdir()
    with pytest.raises(FileExistsError, match="avg already exists"):
        average_checkpoints([tiny_checkpoint, tiny_checkpoint], tmp_path / "avg")
