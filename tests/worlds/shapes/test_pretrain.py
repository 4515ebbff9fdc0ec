"""Pretraining on a micro budget: both stages run, the checkpoint loads, and a resumed run equals an unbroken one."""

from __future__ import annotations

import dataclasses

import torch
from safetensors.torch import load_file

from srum.models.bagel.weights import load_bagel
from srum.worlds.shapes.pretrain import AutoencoderStage, JointStage, PretrainConfig, pretrain, train_joint


def micro(out_dir, joint_steps: int = 4) -> PretrainConfig:
    return PretrainConfig(out_dir=str(out_dir), threads=1, save_every=2, log_every=1,
                          autoencoder=AutoencoderStage(steps=2, batch_size=2, stats_images=64),
                          joint=JointStage(steps=joint_steps, t2i_batch=2, qa_batch=2, warmup_steps=2,
                                           patch_shape_weight=1.0, patch_batch=2))


def test_micro_pretrain_and_exact_resume(tmp_path):
    cfg_a = micro(tmp_path / "a")
    focus = JointStage(steps=2, t2i_batch=1, qa_batch=4, match_share=0.5, paired_match=True, vit_scale=2,
                       patch_shape_weight=1.0, patch_batch=1)
    folder = pretrain(dataclasses.replace(cfg_a, focus=focus))
    assert (tmp_path / "a" / "focus" / "state" / "state.json").is_file()
    assert not list((tmp_path / "a").rglob("*.pt"))  # resume state is safetensors and JSON: nothing to unpickle
    ck = load_bagel(folder)
    assert ck.tokenizer is not None and ck.config.vae_config.scale_factor != 1.0  # latent scale was measured
    # The focus stage moved the ViT to a 2x finer grid: 128-px views, a 16x16 position table.
    assert ck.config.vit_max_num_patch_per_side == 16 and ck.config.vit_transform.min_size == 128
    assert ck.model.vit_model.vision_model.embeddings.position_embedding.weight.shape[0] == 256
    # Interrupted after 2 joint steps (the saved state), then resumed to 4: identical weights to the unbroken run.
    cfg_b = micro(tmp_path / "b")
    pretrain(dataclasses.replace(cfg_b, joint=dataclasses.replace(cfg_b.joint, steps=2)))
    assert (tmp_path / "b" / "joint" / "state" / "state.json").is_file()
    from srum.worlds.shapes.pretrain import train_autoencoder

    ema, _, head = train_joint(cfg_b, train_autoencoder(cfg_b))
    unbroken = load_file(str(tmp_path / "a" / "joint" / "state" / "ema.safetensors"))
    for k, v in ema.state_dict().items():
        assert torch.allclose(v, unbroken[k], atol=1e-6), k
    # The pretraining-only patch head resumed too.
    unbroken_head = load_file(str(tmp_path / "a" / "joint" / "state" / "patch_head.safetensors"))
    assert all(torch.allclose(v, unbroken_head[k], atol=1e-6) for k, v in head.state_dict().items())
