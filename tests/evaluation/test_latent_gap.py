"""latent_gap: the posterior's spread and the sampler latents' distance from the posterior mean, estimated from two
posterior samples, against an encoder whose posterior is known exactly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from srum.evaluation.latent_gap import latent_gap

ROOT = Path(__file__).resolve().parents[2]


class _KnownPosterior:
    """Image i's posterior is N(μ_i, σ_c²) with σ = (0.5, 1.0) per channel and μ_i of variance 1 per channel."""

    def __init__(self, n: int) -> None:
        self.mu = torch.randn(n, 2, 32, 32, generator=torch.Generator().manual_seed(0))
        self.sigma = torch.tensor([0.5, 1.0]).view(1, 2, 1, 1)

    def encode(self, images: list[int], seeds: list[int]) -> torch.Tensor:
        return torch.stack([self.mu[i] + self.sigma[0] * torch.randn(self.mu[i].shape,
                                                                    generator=torch.Generator().manual_seed(s))
                            for i, s in zip(images, seeds, strict=True)])


def test_estimates_match_the_known_posterior():
    enc = _KnownPosterior(64)
    offset = torch.tensor([0.3, -0.6]).view(1, 2, 1, 1)  # the sampler's latents: μ shifted per channel
    gap = latent_gap(enc.mu + offset, list(range(64)), list(range(64)), enc.encode)
    assert gap.images == 64
    assert gap.posterior_std == pytest.approx([0.5, 1.0], abs=0.01)
    assert gap.mean_variance == pytest.approx(1.0, abs=0.03)
    # E(z − μ)² = (0.09 + 0.36)/2 = 0.225; σ² averaged over the channels = (0.25 + 1)/2 = 0.625
    assert gap.sampled_gap == pytest.approx(0.225, abs=0.02)
    assert gap.encoded_gap == pytest.approx(0.625, abs=0.03)
    # latents that are the encoder's own mean sit at distance zero
    assert latent_gap(enc.mu, list(range(64)), list(range(64)), enc.encode).sampled_gap == pytest.approx(0, abs=0.02)


def test_a_shape_mismatch_is_refused():
    enc = _KnownPosterior(2)
    with pytest.raises(ValueError, match="differ in shape"):
        latent_gap(torch.zeros(2, 2, 16, 16), [0, 1], [0, 1], enc.encode)


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
    rows = [r for k in folder.finished() for r in folder.read_rows(k)]
    latents = torch.cat([folder.read_latents(k, len(folder.read_rows(k))) for k in folder.finished()])
    gap = latent_gap(latents, [read_image(folder.image_path(r)) for r in rows], [r.seed for r in rows],
                     model.encode_images)
    out = subprocess.run([sys.executable, str(ROOT / "launch" / "latent_gap.py"), str(tiny_checkpoint),
                          str(tmp_path), "--threads", "1"], capture_output=True, text=True, check=True).stdout
    assert out.startswith(f"3 images; posterior std per channel {gap.posterior_std[0]:.2f}, ")
    assert f"sampler's latents {gap.sampled_gap:.2f}, a posterior sample {gap.encoded_gap:.2f}" in out
    write_manifest(tmp_path, {"generate": {"reencode": True}}, extra={"stage": "generate"})
    refused = subprocess.run([sys.executable, str(ROOT / "launch" / "latent_gap.py"), str(tiny_checkpoint),
                              str(tmp_path)], capture_output=True, text=True)
    assert refused.returncode != 0 and "encodings already" in refused.stderr
