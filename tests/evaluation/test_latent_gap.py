"""latent_gap: the posterior's spread and the sampler latents' distance from the posterior mean, against posteriors
whose values are hand-set."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from srum.evaluation.latent_gap import latent_gap
from srum.models.interface import Posterior

ROOT = Path(__file__).resolve().parents[2]


def _posterior() -> Posterior:
    """Two images, two channels of 1×2: means ±1 per channel (variance 4/3 with the unbiased estimator over 4 values),
    σ = 0.5 on channel 0 and σ² ∈ {1, 3} on channel 1 (mean 2)."""
    mean = torch.tensor([[[[1.0, -1.0]], [[2.0, -2.0]]], [[[1.0, -1.0]], [[2.0, -2.0]]]])
    std = torch.stack([torch.full((1, 2), 0.5), torch.tensor([[1.0, 3.0 ** 0.5]])])[None].repeat(2, 1, 1, 1)
    return Posterior(mean, std)


def test_values_match_hand_computed_ones():
    post = _posterior()
    # channel 0: means ±1, var 4/3; channel 1: ±2, var 16/3; averaged 10/3
    offset = torch.tensor([0.3, -0.6]).view(1, 2, 1, 1)  # the sampler's latents: μ shifted per channel
    gap = latent_gap(post.mean + offset, post)
    assert gap.images == 2
    assert gap.posterior_std == pytest.approx([0.5, 2 ** 0.5])
    assert gap.mean_variance == pytest.approx(10 / 3)
    # E(z − μ)² = (0.09 + 0.36)/2 = 0.225; E σ² over the channels = (0.25 + 2)/2 = 1.125
    assert gap.sampled_gap == pytest.approx(0.225 / (10 / 3))
    assert gap.encoded_gap == pytest.approx(1.125 / (10 / 3))
    # latents that are the posterior's own mean sit at distance zero
    assert latent_gap(post.mean, post).sampled_gap == 0


def test_a_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        latent_gap(torch.zeros(2, 2, 16, 16), _posterior())


def test_cli_refuses_a_folder_that_is_not_a_finished_generate(tmp_path, tiny_checkpoint):
    out = subprocess.run([sys.executable, str(ROOT / "launch" / "latent_gap.py"), str(tiny_checkpoint), str(tmp_path)],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "no manifest.json" in out.stderr


def test_cli_reports_what_latent_gap_computes_on_a_drawn_folder(tmp_path, tiny_checkpoint):
    from srum.config import GenerateConfig
    from srum.evaluation.benchmarks import PromptItem
    from srum.generate import generate_stage
    from srum.models.bagel.unified import BagelUnified
    from srum.records import GenerateFolder
    from srum.utils.artifacts import read_image
    from srum.utils.dist import DistInfo
    from srum.utils.io import write_manifest

    model = BagelUnified.from_pretrained(tiny_checkpoint)
    model.set_sampling(num_timesteps=3)
    items = [PromptItem("color", i, p) for i, p in enumerate(["a red circle", "a blue square", "a green triangle"])]
    cfg = GenerateConfig(prompts="shapes", resolution=16, batch_size=2, seed=3, think=False)
    generate_stage(model, items, cfg, tmp_path, DistInfo(0, 1, 0, None), progress=False)
    write_manifest(tmp_path, {"generate": {"reencode": False}}, extra={"stage": "generate"})
    folder = GenerateFolder(tmp_path)
    rows, latents = folder.all_rows_and_latents()
    gap = latent_gap(latents, model.encode_posteriors([read_image(folder.image_path(r)) for r in rows]))
    out = subprocess.run([sys.executable, str(ROOT / "launch" / "latent_gap.py"), str(tiny_checkpoint),
                          str(tmp_path), "--threads", "1"], capture_output=True, text=True, check=True).stdout
    assert out.startswith(f"3 images; posterior std per channel {gap.posterior_std[0]:.2f}, ")
    assert f"sampler's latents {gap.sampled_gap:.2f}, a posterior sample {gap.encoded_gap:.2f}" in out
    write_manifest(tmp_path, {"generate": {"reencode": True}}, extra={"stage": "generate"})
    refused = subprocess.run([sys.executable, str(ROOT / "launch" / "latent_gap.py"), str(tiny_checkpoint),
                              str(tmp_path)], capture_output=True, text=True)
    assert refused.returncode != 0 and "encodings already" in refused.stderr
