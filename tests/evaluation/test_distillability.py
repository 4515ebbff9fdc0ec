"""The distillability probe: the share it measures by hand at the start, the controls it rests on, its CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from srum.config import GenerateConfig
from srum.evaluation.benchmarks import PromptItem
from srum.evaluation.distillability import offset_uptake, token_low_pass
from srum.generate import generate_stage
from srum.models.bagel.unified import BagelUnified
from srum.records import GenerateFolder
from srum.rewards.judge import templates_for
from srum.utils.dist import DistInfo

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = ["a red circle", "a blue square", "a green triangle", "a red square left of a blue circle"]


@pytest.fixture(scope="module")
def samples(tiny_checkpoint, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("samples") / "generate"
    model = BagelUnified.from_pretrained(tiny_checkpoint)
    model.set_sampling(num_timesteps=3)
    items = [PromptItem("color", i, p) for i, p in enumerate(PROMPTS)]
    generate_stage(model, items, GenerateConfig(prompts="shapes", resolution=32, batch_size=4, seed=3, think=False),
                   out, DistInfo(0, 1, 0, None), progress=False)
    return out


def _tokens(model, folder: Path) -> tuple[torch.Tensor, list[str]]:
    rows, latents = GenerateFolder(folder).all_rows_and_latents()
    return model.latents_to_tokens(latents), [r.prompt for r in rows]


def test_the_start_takes_none_of_any_offset_and_cfg_is_learnt_where_noise_is_not(tiny_checkpoint, samples):
    """Step 0's share is exactly 0 (the model is its reference). Fitted alike on the same draws, the text-CFG push
    (a function of the network's own outputs) is taken up, random noise of the same size is not."""
    reference = BagelUnified.from_pretrained(tiny_checkpoint)
    tokens, prompts = _tokens(reference, samples)
    grid = reference.latent_grid(32, 32)
    shares = {}
    for offset in ("cfg", "random"):
        shares[offset] = offset_uptake(BagelUnified.from_pretrained(tiny_checkpoint), reference, tokens, prompts,
                                       grid, templates_for("shapes"), offset, steps=12, lr=1e-3, batch_size=4,
                                       strength=0.1, until=0.5, seed=0)
        assert len(shares[offset]) == 12 and shares[offset][0] == 0.0
    assert sum(shares["cfg"][-4:]) / 4 > 0.2 > abs(sum(shares["random"][-4:]) / 4), shares
    with pytest.raises(ValueError, match="offset='nope'"):
        offset_uptake(reference, reference, tokens, prompts, grid, templates_for("shapes"), "nope", 3, 1e-3, 4,
                      0.1, 0.5, 0)


def test_low_pass_averages_each_block_of_the_token_grid():
    """Grid 2 × 4, row-major tokens 0..7 (a second channel negated), blocks of 2 × 2: the left block's mean
    (0 + 1 + 4 + 5)/4 = 2.5 and the right one's 4.5 replace their tokens; K = 1 is the identity."""
    x = torch.stack([torch.arange(8.0), -torch.arange(8.0)], dim=-1)[None]  # (1, 8, 2)
    pooled = token_low_pass(x, (2, 4), 2)
    expected = torch.tensor([2.5, 2.5, 4.5, 4.5, 2.5, 2.5, 4.5, 4.5])
    assert torch.equal(pooled[0, :, 0], expected) and torch.equal(pooled[0, :, 1], -expected)
    assert token_low_pass(x, (2, 4), 1) is x
    with pytest.raises(ValueError, match="low_pass=3 must be >= 1 and divide the token grid 2×4"):
        token_low_pass(x, (2, 4), 3)


def test_cli_writes_the_summary_and_refuses_bad_arguments(tiny_checkpoint, samples, tmp_path):
    script = str(ROOT / "launch" / "distillability.py")
    out = tmp_path / "d.json"
    subprocess.run([sys.executable, script, "--checkpoint", str(tiny_checkpoint), "--samples", str(samples),
                    "--templates", "shapes", "--offsets", "judge", "--steps", "3", "--batch-size", "2",
                    "--low-pass", "2", "--out", str(out)], check=True, capture_output=True, text=True)
    summary = json.loads(out.read_text())
    assert summary["images"] == 4 and list(summary["offsets"]) == ["judge"] and summary["low_pass"] == 2
    assert len(summary["offsets"]["judge"]["shares"]) == 3 and summary["offsets"]["judge"]["shares"][0] == 0.0
    bad = subprocess.run([sys.executable, script, "--checkpoint", str(tiny_checkpoint), "--samples", str(samples),
                          "--templates", "official", "--out", str(out)], capture_output=True, text=True)
    assert bad.returncode != 0 and bad.stderr.strip().splitlines()[-1].startswith(
        "distillability.py: error: --templates: generate.judge_guidance needs judge templates with answer tokens")
