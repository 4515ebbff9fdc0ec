"""Diffusion-DPO's pieces: the best-against-worst pairs of a group, the pair loss (hand value, its gradient at the
start being flow matching towards the winner and away from the loser, saturation), the pairs' shared draws in a
micro-batch and the settings the config refuses."""

from __future__ import annotations

import math

import pytest
import torch

from srum.config import ConfigError, ObjectiveConfig, ObjectiveKind, load_config
from srum.objectives import dpo_loss, srum_loss
from srum.rewards.advantage import best_worst_pairs
from srum.training import TrainSample, draw_batch, group_units, objective_weights
from srum.utils.dist import DistInfo
from tests.test_config_values import RECIPE

DPO = ["objective.kind=dpo", "objective.constraint=none", "reward.source=oracle", "generate.images_per_prompt=4"]


def _cfg(*overrides: str):
    return load_config(RECIPE, ["model.path=unused", *overrides])


def test_pairs_take_the_jth_best_against_the_jth_worst_and_skip_ties():
    # image rewards: group a 0.5, 0.25, 0.75, 0.0; group b all alike; group c 0.1, 0.5, 0.5, 0.3
    maps = [torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.0]), torch.tensor([1.0, 0.5]), torch.tensor([0.0, 0.0]),
            torch.zeros(2), torch.zeros(2),
            torch.tensor([0.2, 0.0]), torch.tensor([0.5, 0.5]), torch.tensor([0.0, 1.0]), torch.tensor([0.6, 0.0])]
    groups = ["a"] * 4 + ["b"] * 2 + ["c"] * 4
    assert best_worst_pairs(maps, groups, 1) == [(2, 3), (7, 6)]  # b: a tie prefers nothing
    assert best_worst_pairs(maps, groups, 2) == [(2, 3), (0, 1), (7, 6), (8, 9)]  # c: 0.5 (the later) over 0.3
    assert best_worst_pairs(maps, groups, 5) == best_worst_pairs(maps, groups, 2)  # at most K/2 per group


def test_loss_hand_value():
    # winner: e = (1² + 0)/2 = 0.5 against the reference's 0.125; loser: e = 0.5 against 2.0
    v = torch.tensor([[[0.0, 0.0]], [[0.0, 1.0]]])
    v_ref = torch.tensor([[[0.5, 0.0]], [[0.0, 0.0]]])
    target = torch.tensor([[[1.0, 0.0]], [[0.0, 2.0]]])
    roles = torch.tensor([[1.0], [-1.0]])
    loss, accuracy = dpo_loss(v, v_ref, target, roles, beta=1.0)
    # inside = −β/2 · ((0.5 − 0.125) − (0.5 − 2.0)) = −0.9375; −log σ(−0.9375) = log(1 + e^0.9375)
    assert loss.item() == pytest.approx(math.log1p(math.exp(0.9375)), rel=1e-6)
    assert accuracy.item() == 0.0
    loss, accuracy = dpo_loss(v, v_ref, target.flip(0), roles, beta=1.0)  # now the model fits the winner better
    assert accuracy.item() == 1.0 and loss.item() < math.log(2)


def test_gradient_at_the_start_pulls_the_winner_pushes_the_loser_and_flips_with_the_roles():
    target = torch.tensor([[[1.0, 0.0]], [[0.0, 2.0]]])
    v = torch.zeros(2, 1, 2, requires_grad=True)
    loss, _ = dpo_loss(v, v.detach().clone(), target, torch.tensor([[1.0], [-1.0]]), beta=4.0)
    assert loss.item() == pytest.approx(math.log(2))  # the model is its reference: no preference yet
    loss.backward()
    # β/4 · ∇(e_w − e_l) with ∇e = 2(v − target)/(N·C): (v − target) for the winner, −(v − target) for the loser
    assert torch.allclose(v.grad, torch.tensor([[[-1.0, 0.0]], [[0.0, 2.0]]]))
    swapped = torch.zeros(2, 1, 2, requires_grad=True)
    dpo_loss(swapped, swapped.detach().clone(), target.flip(0), torch.tensor([[1.0], [-1.0]]), beta=4.0)[0].backward()
    assert torch.allclose(swapped.grad.flip(0), -v.grad)


def test_a_pair_the_model_already_prefers_by_a_wide_margin_stops_pulling():
    target = torch.tensor([[[1.0, 0.0]], [[0.0, 2.0]]])
    roles = torch.tensor([[1.0], [-1.0]])

    def grad(v_start: torch.Tensor) -> torch.Tensor:
        v = v_start.clone().requires_grad_(True)
        dpo_loss(v, torch.zeros(2, 1, 2), target, roles, beta=2000.0)[0].backward()
        return v.grad

    at_start = grad(torch.zeros(2, 1, 2))
    preferred = grad(torch.tensor([[[0.1, 0.0]], [[0.0, -0.1]]]))  # winner fitted better, loser worse by ~0.2
    assert preferred.norm() < 1e-6 * at_start.norm()


def test_roles_must_alternate_and_srum_loss_needs_the_reference():
    v, target = torch.zeros(2, 3, 1), torch.ones(2, 3, 1)
    with pytest.raises(ValueError, match="alternate winner"):
        dpo_loss(v, v, target, torch.tensor([[-1.0] * 3, [1.0] * 3]), beta=1.0)
    with pytest.raises(ValueError, match="with B even"):
        dpo_loss(v[:1], v[:1], target[:1], torch.ones(1, 3), beta=1.0)
    cfg = ObjectiveConfig(kind=ObjectiveKind.dpo, constraint="none")
    roles = torch.tensor([[1.0] * 3, [-1.0] * 3])
    with pytest.raises(ValueError, match="pass v_ref"):
        srum_loss(v, target, roles, cfg)
    loss, parts = srum_loss(v, target, roles, cfg, v_ref=v)
    assert loss.item() == pytest.approx(math.log(2)) and parts["pair_accuracy"].item() == 0.0
    assert parts["kl"].item() == 0.0


def test_pairs_train_winner_then_loser_and_share_their_draws():
    # 3 prompts × 4 images with image rewards 0, 1/4, 2/4, 3/4 in job order
    samples = [TrainSample(i, f"p{i // 4}", torch.zeros(3, 2), torch.full((3,), (i % 4) / 4), ("color", i // 4))
               for i in range(12)]
    cfg = _cfg(*DPO, "objective.dpo_pairs=2", "train.micro_batch_size=4", "objective.text_dropout=0.5")
    pairs = objective_weights(samples, cfg.objective)
    assert [s.job for s in pairs] == [3, 0, 2, 1, 7, 4, 6, 5, 11, 8, 10, 9]
    assert [s.weights[0].item() for s in pairs] == [1.0, -1.0] * 6 and all(s.weights.unique().numel() == 1
                                                                           for s in pairs)
    units = group_units(pairs, cfg.objective)
    assert units == [[2 * p, 2 * p + 1] for p in range(6)]
    seen = []
    for step in range(3):  # 3 steps × 2 ranks × 2 pairs = two epochs of 6 pairs
        for rank in range(2):
            batch, t, noise, drop = draw_batch(pairs, units, step, 0, cfg, DistInfo(rank, 2, rank, "gloo"))
            assert [s.weights[0].item() for s in batch] == [1.0, -1.0, 1.0, -1.0]
            assert batch[0].group == batch[1].group and batch[2].group == batch[3].group
            for a in (0, 2):  # one draw per pair, each pair its own
                assert t[a] == t[a + 1] and drop[a] == drop[a + 1] and torch.equal(noise[a], noise[a + 1])
            assert t[0] != t[2]
            seen += [(batch[0].job, batch[1].job), (batch[2].job, batch[3].job)]
    assert sorted(seen[:6]) == sorted(seen[6:]) and len(set(seen)) == 6  # every pair once per epoch
    from srum.pipeline import plan

    assert "objective: dpo (2 pair(s) per group of K=4: its j-th best image" in plan(cfg, 2)


@pytest.mark.parametrize("overrides, message", [
    (["objective.constraint=anchor"], "would also imitate each pair's worse image"),
    (["objective.dpo_pairs=3"], "objective.dpo_pairs <= generate.images_per_prompt/2 = 2"),
    (["train.micro_batch_size=3"], "train.micro_batch_size even"),
    (["reward.source=uniform"], "objective.kind=dpo with reward.source=uniform"),
    (["objective.group_noise=true", "train.micro_batch_size=4"], "objective.group_noise=true needs"),
    (["train.explode_factor=10"], "train.explode_factor=10 is not read by objective.kind=dpo"),
])
def test_config_refuses_what_dpo_cannot_train(overrides, message):
    assert _cfg(*DPO).objective.kind == ObjectiveKind.dpo
    with pytest.raises(ConfigError, match=message):
        _cfg(*DPO, *overrides)


@pytest.mark.parametrize("setting", ["objective.dpo_beta=500", "objective.dpo_pairs=2"])
def test_dpo_settings_are_refused_under_other_objectives(setting):
    with pytest.raises(ConfigError, match=f"{setting} is read by objective.kind=dpo only"):
        _cfg(setting)
