"""Flow-GRPO's pieces: the SDE step (hand values, and that it keeps the flow's marginals), the per-token policy ratio
and the clipped policy-gradient loss (hand-computed gradient, its sign flipping with the advantage, the clip)."""

from __future__ import annotations

import math

import pytest
import torch

from srum import flow
from srum.config import ConfigError, ObjectiveConfig, ObjectiveKind, load_config
from srum.objectives import SdeStep, policy_gradient_loss, srum_loss, step_log_ratio
from tests.test_config_values import RECIPE


def test_sde_step_hand_values_and_the_euler_step_at_zero_noise():
    x, v = torch.tensor([[[1.0]]]), torch.tensor([[[2.0]]])
    # σ = 0.5·√(0.5/0.5) = 0.5; σ²/(2t)·(x + (1 − t)v) = 0.25·2 = 0.5; mean = 1 − (2 + 0.5)·0.1; std = 0.5·√0.1
    mean, std = flow.sde_step(x, v, torch.tensor([0.5]), torch.tensor([0.1]), 0.5, floor=0.1)
    assert mean.item() == pytest.approx(0.75) and std.item() == pytest.approx(0.5 * math.sqrt(0.1))
    # at t = 1 the floor stands in for 1 − t: σ = 0.5·√(1/0.2)
    _, std1 = flow.sde_step(x, v, 1.0, 0.2, 0.5, floor=0.2)
    assert std1.item() == pytest.approx(0.5 * math.sqrt(5) * math.sqrt(0.2))
    mean0, std0 = flow.sde_step(x, v, 0.5, 0.1, 0.0, floor=0.1)
    assert mean0.item() == pytest.approx(1 - 2 * 0.1) and std0.item() == 0.0


def test_sde_rollouts_keep_the_flows_marginals():
    """For Gaussian data x0 ~ N(0, s²) the exact velocity is known; SDE steps that use it must end at the data's
    variance, as the ODE does (a wrong sign or factor in the score term would not)."""
    s2 = 0.25
    ts, dts = flow.euler_schedule(201, shift=1.0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40_000, 1, 1, generator=g)
    for t, dt in zip(ts.tolist(), dts.tolist()):
        var_t = (1 - t) ** 2 * s2 + t ** 2
        v = x * (t - (1 - t) * s2) / var_t  # E[ε − x0 | x_t]
        mean, std = flow.sde_step(x, v, t, dt, 0.7, float(dts[0]))
        x = mean + std * torch.randn(x.shape, generator=g)
    assert x.var().item() == pytest.approx(s2, rel=0.05)


def _step(x_next: float) -> SdeStep:
    return SdeStep(torch.tensor([[[1.0]]]), torch.tensor([[[x_next]]]), torch.tensor([0.5]), torch.tensor([0.1]),
                   0.5, 0.1)


def test_policy_gradient_hand_value_and_its_sign_flips_with_the_advantage():
    # μ_old = 0.75, std² = 0.025; dμ/dv = −(1 + σ²(1 − t)/(2t))·dt = −1.125·0.1; at v = v_old
    # d log ρ / dv = (x_next − μ)/std² · dμ/dv = (0.05/0.025)·(−0.1125) = −0.225, and L = −A·ρ
    for a in (1.0, -2.0):
        v = torch.tensor([[[2.0]]], requires_grad=True)
        loss, clipped = policy_gradient_loss(v, torch.tensor([[[2.0]]]), _step(0.8), torch.tensor([[a]]), 0.2)
        assert loss.item() == pytest.approx(-a) and clipped.item() == 0.0
        loss.backward()
        assert v.grad.item() == pytest.approx(0.225 * a)
    # a step that moved the mean towards x_next raises its likelihood: log ρ = (0.05² − 0.0275²)/(2·0.025)
    v = torch.tensor([[[1.8]]])  # μ = 1 − (1.8 + 0.25·(1 + 0.9))·0.1 = 0.7725
    assert step_log_ratio(v, torch.tensor([[[2.0]]]), _step(0.8)).item() == pytest.approx(
        (0.05 ** 2 - 0.0275 ** 2) / 0.05, rel=1e-5)


def test_the_clip_stops_the_gradient_only_beyond_the_trust_region_in_the_advantages_direction():
    v_old, step = torch.tensor([[[2.0]]]), _step(0.8)
    v = torch.tensor([[[1.8]]], requires_grad=True)  # ρ = exp(0.0349) ≈ 1.0355
    loss, clipped = policy_gradient_loss(v, v_old, step, torch.tensor([[1.0]]), 0.02)
    loss.backward()
    assert clipped.item() == 1.0 and loss.item() == pytest.approx(-1.02) and v.grad.item() == 0.0
    v = torch.tensor([[[1.8]]], requires_grad=True)  # a negative advantage: the unclipped side is the minimum
    loss, _ = policy_gradient_loss(v, v_old, step, torch.tensor([[-1.0]]), 0.02)
    loss.backward()
    rho = math.exp((0.05 ** 2 - 0.0275 ** 2) / 0.05)
    # L = ρ; dρ/dv = ρ·(x_next − μ)/std²·dμ/dv = ρ·(0.0275/0.025)·(−0.1125): a descent step lowers the likelihood
    assert loss.item() == pytest.approx(rho, rel=1e-5) and v.grad.item() == pytest.approx(-rho * 0.12375, rel=1e-4)


def test_srum_loss_flow_grpo_needs_the_step_and_the_reference():
    cfg = ObjectiveConfig(kind=ObjectiveKind.flow_grpo, constraint="none", text_dropout=0.0)
    v, w = torch.zeros(1, 1, 1), torch.ones(1, 1)
    with pytest.raises(ValueError, match="pass v_ref"):
        srum_loss(v, None, w, cfg, step=_step(0.8))
    with pytest.raises(ValueError, match="pass step"):
        srum_loss(v, None, w, cfg, v_ref=v)
    loss, parts = srum_loss(v, None, w, cfg, v_ref=v, step=_step(0.8))
    assert loss.item() == pytest.approx(-1.0) and parts["clip_fraction"].item() == 0.0 and parts["kl"].item() == 0.0


def test_flow_grpo_config_needs_sde_rollouts_of_the_rounds_own_policy():
    def cfg(*o):
        return load_config(RECIPE, ["model.path=unused", "generate.images_per_prompt=4", "reward.source=oracle", *o])

    ok = ["objective.kind=flow_grpo", "objective.constraint=none", "objective.text_dropout=0"]
    assert cfg(*ok, "generate.sde_noise=0.7").objective.kind == ObjectiveKind.flow_grpo
    with pytest.raises(ConfigError, match="set generate.sde_noise > 0"):
        cfg(*ok)
    with pytest.raises(ConfigError, match="train.replay_rounds=1"):
        cfg(*ok, "generate.sde_noise=0.7", "train.replay_rounds=2")
    with pytest.raises(ConfigError, match="objective.constraint=kl\\|none and objective.text_dropout=0"):
        cfg("objective.kind=flow_grpo", "generate.sde_noise=0.7")
    with pytest.raises(ConfigError, match="objective.pg_clip=0.1 is read by objective.kind=flow_grpo only"):
        cfg("objective.pg_clip=0.1")
    with pytest.raises(ConfigError, match="generate.source=world: renders have no sampling trajectory"):
        cfg("generate.source=world", "reward.source=uniform", "generate.sde_noise=0.7")
    from srum.pipeline import plan

    assert "SDE rollouts a=0.7, ratio clip ±0.2" in plan(cfg(*ok, "generate.sde_noise=0.7"), 2)
