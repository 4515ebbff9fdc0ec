"""SRUM losses against hand numbers and their invariants (srum.md §3.3-3.4)."""

import pytest
import torch
import torch.nn.functional as F

from srum.config import Constraint, ObjectiveConfig
from srum.objectives import anchor_loss, reward_weighted_flow_loss, srum_loss, velocity_kl

# B=1, N=2 tokens, C=2 channels. Squared errors e: token 0 → (1, 4), token 1 → (1, 1).
V = torch.tensor([[[1.0, 2.0], [0.0, 0.0]]])
T = torch.tensor([[[0.0, 0.0], [1.0, 1.0]]])
W = torch.tensor([[0.5, 2.0]])


def test_reward_term_hand_value():
    # (0.5·1 + 0.5·4 + 2·1 + 2·1) / 4 = 6.5 / 4
    assert reward_weighted_flow_loss(V, T, W).item() == pytest.approx(1.625)


def test_all_ones_weights_is_plain_flow_matching():
    g = torch.Generator().manual_seed(0)
    v, t = torch.randn(3, 5, 4, generator=g), torch.randn(3, 5, 4, generator=g)
    loss = reward_weighted_flow_loss(v, t, torch.ones(3, 5))
    torch.testing.assert_close(loss, F.mse_loss(v, t))


def test_official_loss_with_good_equal_bad():
    # anchor λ=0.5: λ·mean(e) = 0.5·7/4 = 0.875; total 1.625 + 0.875 = 2.5
    # = mean((R+λ)·e) = (1·1 + 1·4 + 2.5·1 + 2.5·1)/4 = 10/4.
    cfg = ObjectiveConfig(constraint=Constraint.anchor, anchor_weight=0.5)
    loss, m = srum_loss(V, T, W, cfg)
    assert loss.item() == pytest.approx(2.5)
    assert m["reward_term"].item() == pytest.approx(1.625)
    assert m["constraint_term"].item() == pytest.approx(0.875)
    assert "kl" not in m
    g = torch.Generator().manual_seed(1)
    v, t, w = torch.randn(2, 6, 3, generator=g), torch.randn(2, 6, 3, generator=g), torch.rand(2, 6, generator=g)
    loss, _ = srum_loss(v, t, w, cfg)
    torch.testing.assert_close(loss, ((w + 0.5).unsqueeze(-1) * (v - t).pow(2)).mean())


def test_anchor_uses_target_good_when_given():
    good = torch.zeros_like(T)  # e_good: token 0 → (1, 4), token 1 → (0, 0); mean 5/4
    cfg = ObjectiveConfig(constraint=Constraint.anchor, anchor_weight=0.5)
    _, m = srum_loss(V, T, W, cfg, target_good=good)
    assert m["constraint_term"].item() == pytest.approx(0.5 * 1.25)
    assert anchor_loss(V, good).item() == pytest.approx(1.25)


def test_kl_zero_when_unchanged_and_quadratic_in_drift():
    g = torch.Generator().manual_seed(2)
    v_ref, d = torch.randn(2, 4, 3, generator=g), torch.randn(2, 4, 3, generator=g)
    assert velocity_kl(v_ref.clone(), v_ref).item() == 0.0
    k1, k2 = velocity_kl(v_ref + 0.1 * d, v_ref), velocity_kl(v_ref + 0.2 * d, v_ref)
    assert k2.item() == pytest.approx(4 * k1.item(), rel=1e-5)  # doubling the drift quadruples it
    assert k1.item() == pytest.approx(0.01 * d.pow(2).mean().item(), rel=1e-5)


def test_kl_constraint_weight_metric_and_detach():
    cfg = ObjectiveConfig(constraint=Constraint.kl, kl_weight=0.1)
    v_ref = (V + 1.0).requires_grad_()  # every channel differs by 1 → kl = 1
    v = V.clone().requires_grad_()
    loss, m = srum_loss(v, T, W, cfg, v_ref=v_ref)
    assert m["kl"].item() == pytest.approx(1.0)
    assert m["constraint_term"].item() == pytest.approx(0.1)
    assert loss.item() == pytest.approx(1.625 + 0.1)
    loss.backward()
    assert v.grad is not None and v_ref.grad is None  # the reference is frozen


def test_kl_reported_under_anchor_and_none():
    v_ref = V + 1.0
    _, m = srum_loss(V, T, W, ObjectiveConfig(constraint=Constraint.anchor), v_ref=v_ref)
    assert m["kl"].item() == pytest.approx(1.0)
    loss, m = srum_loss(V, T, W, ObjectiveConfig(constraint=Constraint.none), v_ref=v_ref)
    assert m["constraint_term"].item() == 0.0 and m["kl"].item() == pytest.approx(1.0)
    assert loss.item() == pytest.approx(1.625)


def test_errors():
    with pytest.raises(ValueError, match="v_ref"):
        srum_loss(V, T, W, ObjectiveConfig(constraint=Constraint.kl, kl_weight=0.1))
    with pytest.raises(ValueError, match=r"weights has shape"):
        reward_weighted_flow_loss(V, T, torch.ones(1, 3))
    with pytest.raises(ValueError, match="target has"):
        reward_weighted_flow_loss(V, T[:, :1], W)


# ---- DiffusionNFT and group-relative weights -----------------------------------------------------------------------

from srum.config import ObjectiveKind  # noqa: E402
from srum.objectives import nft_loss  # noqa: E402


def test_nft_loss_hand_value():
    # One token, one channel: v_old = 1, target = 0, v_pred = 2, β = 1 → v⁺ = 2, v⁻ = 0;
    # r = 0.75: 0.75·(2 − 0)² + 0.25·(0 − 0)² = 3.
    v_old, target, v = torch.tensor([[[1.0]]]), torch.tensor([[[0.0]]]), torch.tensor([[[2.0]]])
    assert nft_loss(v, v_old, target, torch.tensor([[0.75]]), beta=1.0).item() == pytest.approx(3.0)
    # β = 0.5: v⁺ = 1.5, v⁻ = 0.5 → 0.75·2.25 + 0.25·0.25 = 1.75
    assert nft_loss(v, v_old, target, torch.tensor([[0.75]]), beta=0.5).item() == pytest.approx(1.75)


def test_nft_gradient_at_start_follows_the_sign_of_the_advantage():
    g = torch.Generator().manual_seed(0)
    v_old, target = torch.randn(2, 3, 4, generator=g), torch.randn(2, 3, 4, generator=g)
    for r, sign in ((0.9, 1.0), (0.1, -1.0), (0.5, 0.0)):
        v = v_old.clone().requires_grad_(True)
        nft_loss(v, v_old, target, torch.full((2, 3), r), beta=0.7).backward()
        # ∂L/∂v at Δ = 0 is 2β(2r − 1)(v_old − target)/numel: a descent step moves v towards the sample's target for
        # r > 1/2, away from it for r < 1/2, not at all for r = 1/2.
        expected = 2 * 0.7 * (2 * r - 1) * (v_old - target) / v_old.numel()
        torch.testing.assert_close(v.grad, expected)
        step = -v.grad
        towards = (step * (target - v_old)).sum().item()
        assert (towards > 0) == (sign > 0) and (abs(towards) < 1e-9) == (sign == 0)


def test_nft_minimum_is_bounded():
    # The minimiser over v is v_old + (2r − 1)(target − v_old)/β: finite even for r = 0 (full repulsion).
    v_old, target = torch.tensor([[[1.0]]]), torch.tensor([[[3.0]]])
    v = torch.zeros(1, 1, 1, requires_grad=True)
    opt = torch.optim.SGD([v], lr=0.5)
    for _ in range(200):
        opt.zero_grad()
        nft_loss(v, v_old, target, torch.tensor([[0.0]]), beta=2.0).backward()
        opt.step()
    assert v.item() == pytest.approx(1.0 + (2 * 0.0 - 1) * (3.0 - 1.0) / 2.0, abs=1e-4)  # = 0


def test_srum_loss_nft_needs_the_reference_and_group_relative_takes_signed_weights():
    cfg = ObjectiveConfig(kind=ObjectiveKind.nft, constraint=Constraint.none)
    with pytest.raises(ValueError, match="kind=nft"):
        srum_loss(V, T, torch.full((1, 2), 0.5), cfg)
    loss, _ = srum_loss(V, T, torch.full((1, 2), 0.5), cfg, v_ref=V)
    assert loss.item() == pytest.approx(F.mse_loss(V, T).item())  # at v = v_old the loss is plain flow matching
    gr = ObjectiveConfig(kind=ObjectiveKind.group_relative, constraint=Constraint.none)
    neg, _ = srum_loss(V, T, torch.tensor([[-1.0, -1.0]]), gr)
    assert neg.item() == pytest.approx(-F.mse_loss(V, T).item())  # a negative advantage rewards error


def test_judge_distill_loss_hand_value_and_gradient_towards_the_offset():
    """Target v_ref + offset: v_ref (1, 2) with offset (0.5, −1) and v_pred (1, 2) give mean(0.25, 1) = 0.625 and
    gradient 2·(v − target)/2 = (−0.5, 1), i.e. descent moves v along the offset; a zero offset is the KL term."""
    from srum.objectives import judge_distill_loss

    v = torch.tensor([[[1.0, 2.0]]], requires_grad=True)
    v_ref, offset = torch.tensor([[[1.0, 2.0]]]), torch.tensor([[[0.5, -1.0]]])
    loss = judge_distill_loss(v, v_ref, offset)
    assert torch.isclose(loss, torch.tensor(0.625))
    loss.backward()
    assert torch.allclose(v.grad, torch.tensor([[[-0.5, 1.0]]]))
    assert torch.isclose(judge_distill_loss(v.detach() + 0.1, v_ref, torch.zeros_like(offset)),
                         velocity_kl(v.detach() + 0.1, v_ref))
    cfg = ObjectiveConfig(kind=ObjectiveKind.judge_distill, constraint=Constraint.none)
    with pytest.raises(ValueError, match="needs the round's starting model's velocity"):
        srum_loss(v, None, torch.ones(1, 1), cfg)
    with pytest.raises(ValueError, match="needs the guidance's velocity offset"):
        srum_loss(v, None, torch.ones(1, 1), cfg, v_ref=v_ref)
    total, parts = srum_loss(v, None, torch.ones(1, 1), cfg, v_ref=v_ref, offset=offset)
    assert torch.isclose(total, torch.tensor(0.625)) and float(parts["kl"]) == 0.0
