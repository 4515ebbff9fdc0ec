"""The memory plan of `--dry-run`: model states by hand and against DeepSpeed's estimator, BAGEL-7B-MoT's parameter
count from its configuration, and the measured activation cost per token checked on a configuration it was not
fitted on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from srum.config import load_config
from srum.memory_plan import deepspeed_estimate, model_state_bytes, plan_memory

ROOT = Path(__file__).resolve().parents[1]
BAGEL = ["model.path=/nowhere", "regions.sam_path=/nowhere", "eval.judge_path=/nowhere"]


def test_model_states_by_hand_and_as_deepspeed_counts_them():
    # ZeRO-2, bf16, 4 ranks: bf16 weights replicated (2 B), gradients 2 + 4 B and fp32 master + Adam 12 B partitioned
    assert model_state_bytes(1000, 1000, 100, 2, 4, bf16=True) == (2000, 1500, 3000)
    assert sum(model_state_bytes(1000, 1000, 100, 2, 4, bf16=True)) == deepspeed_estimate(1000, 100, 2, 4)
    # ZeRO-3: everything partitioned, plus the largest layer gathered whole
    assert model_state_bytes(1000, 1000, 100, 3, 4, bf16=True) == (900, 1000, 3000)
    assert sum(model_state_bytes(1000, 1000, 100, 3, 4, bf16=True)) == deepspeed_estimate(1000, 100, 3, 4)
    # fp32 (CPU runs): no master copy; frozen parameters cost their weights only
    assert model_state_bytes(1000, 250, 100, 2, 2, bf16=False) == (4000, 500, 1000)


def test_bagel_recipe_plan_uses_the_published_configuration():
    cfg = load_config(ROOT / "recipes" / "bagel.yaml", BAGEL)
    plan = plan_memory(cfg, world=8)
    assert "published configuration" in plan.facts.source
    assert plan.facts.params_total == 14_575_018_464  # every tensor of the release's ema.safetensors (strict names)
    assert plan.facts.layers == 28 and plan.facts.hidden == 3584
    assert plan.facts.tokens_per_image == 64 + 64 * 64 + 2  # a 1024 px image: 64 × 64 latent tokens
    assert abs(plan.model_states - plan.deepspeed_estimate) / plan.deepspeed_estimate < 0.05
    assert plan.activations_checkpointed < plan.activations / 10


def test_measured_layer_cost_extrapolates_to_an_unfitted_configuration():
    from srum.models.bagel.memory import _measured_elements_per_token, layer_elements_per_token

    measured = _measured_elements_per_token(96, 2, 192)
    assert layer_elements_per_token(96, 2 * 24, 192) == pytest.approx(measured, rel=0.02)


def test_dry_run_prints_the_memory_plan_then_the_missing_path():
    out = subprocess.run([sys.executable, str(ROOT / "launch" / "srum.py"), str(ROOT / "recipes" / "bagel.yaml"),
                          *BAGEL, "--dry-run", "--world", "8"], capture_output=True, text=True)
    assert out.returncode != 0 and "model.path='/nowhere' does not exist" in out.stderr
    assert "memory plan per GPU, from BAGEL-7B-MoT's published configuration" in out.stdout
    assert "ZeRO-3 on 8 rank(s), bf16 mixed precision" in out.stdout and "on 8 × 80 GB:" in out.stdout
