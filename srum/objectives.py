"""Stage 4: the SRUM objective as pure losses: reward-weighted flow matching plus a constraint (srum.md §3.3-3.4).

No model here: callers pass velocities (B, N, C) (N latent tokens, C patch channels, v = ε − x0) and per-token
weights (B, N) from the reward map. Everything is computed in float32 (bf16 squared errors lose the small
differences the constraint terms measure).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from srum import flow
from srum.config import Constraint, ObjectiveConfig, ObjectiveKind


def _check_velocities(v_pred: torch.Tensor, other: torch.Tensor, name: str) -> None:
    if v_pred.shape != other.shape:
        raise ValueError(f"v_pred has shape {tuple(v_pred.shape)} but {name} has {tuple(other.shape)}; "
                         "both are (B, N, C)")


def reward_weighted_flow_loss(v_pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """mean over B·N·C of weights·(v_pred − target)²: the official reward term L_R (srum.md §3.3).

    v_pred, target: (B, N, C); weights: (B, N), one per latent token. The mean runs over every token and channel
    of the batch, with no per-sample normalisation, as official; all-ones weights give plain flow matching.
    """
    _check_velocities(v_pred, target, "target")
    if v_pred.ndim != 3 or weights.shape != v_pred.shape[:2]:
        raise ValueError(
            f"weights has shape {tuple(weights.shape)}; expected (B, N) = {tuple(v_pred.shape[:2])} for velocities "
            f"of shape {tuple(v_pred.shape)} (B, N, C)"
        )
    err = (v_pred.float() - target.float()).pow(2)  # (B, N, C)
    return (weights.float().unsqueeze(-1) * err).mean()


def anchor_loss(v_pred: torch.Tensor, target_good: torch.Tensor) -> torch.Tensor:
    """mean((v_pred − target_good)²): the official constraint, unweighted flow matching to the "good" image."""
    _check_velocities(v_pred, target_good, "target_good")
    return (v_pred.float() - target_good.float()).pow(2).mean()


def velocity_kl(v_pred: torch.Tensor, v_ref: torch.Tensor) -> torch.Tensor:
    """mean((v_pred − v_ref)²) against a frozen reference's velocity: the per-step KL proxy (srum.md §3.4).

    For Gaussian Euler transitions with a shared variance, the KL between the two models' steps is proportional
    to the squared velocity difference, so this is 0 for an unchanged model and grows quadratically with drift.
    v_ref is detached: the reference is frozen.
    """
    _check_velocities(v_pred, v_ref, "v_ref")
    return (v_pred.float() - v_ref.detach().float()).pow(2).mean()


def nft_loss(v_pred: torch.Tensor, v_old: torch.Tensor, target: torch.Tensor, optimality: torch.Tensor,
             beta: float) -> torch.Tensor:
    """DiffusionNFT's negative-aware flow matching (Zheng et al. 2025, "DiffusionNFT: Online Diffusion
    Reinforcement with Forward Process", arXiv 2509.16117), per latent token.

    With the sampling policy's velocity v_old (frozen: this round's starting model) and Δ = v_pred − v_old, the
    implicit positive policy v⁺ = v_old + β·Δ and negative policy v⁻ = v_old − β·Δ are both fitted to the flow target:

        L = mean over B·N·C of r·(v⁺ − target)² + (1 − r)·(v⁻ − target)²,   r ∈ [0, 1] per token (B, N).

    At Δ = 0 its gradient is 2β(2r − 1)(v_old − target): tokens with r > 1/2 are pulled towards their sample,
    tokens with r < 1/2 pushed away, r = 1/2 leaves them alone. Unlike a negative weight on a squared error, the loss
    stays a convex quadratic in v_pred (curvature β² everywhere), minimised at Δ = (2r − 1)(target − v_old)/β, so
    repulsion is bounded by construction and needs no clipping of the loss itself.
    """
    _check_velocities(v_pred, v_old, "v_old")
    _check_velocities(v_pred, target, "target")
    if optimality.shape != v_pred.shape[:2]:
        raise ValueError(f"optimality has shape {tuple(optimality.shape)}; expected (B, N) = {tuple(v_pred.shape[:2])}")
    delta = v_pred.float() - v_old.detach().float()
    v_pos = v_old.detach().float() + beta * delta
    v_neg = v_old.detach().float() - beta * delta
    r = optimality.float().unsqueeze(-1)
    return (r * (v_pos - target.float()).pow(2) + (1.0 - r) * (v_neg - target.float()).pow(2)).mean()


def judge_distill_loss(v_pred: torch.Tensor, v_ref: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """mean((v_pred − (v_ref + offset))²): regress the velocity on the frozen start's velocity moved by `offset`,
    the step judge guidance would add there (srum.guidance.guided_velocity_shift: −shift/t on guided rows, 0
    elsewhere). Like the first stage of guided-diffusion distillation (Meng et al. 2023, "On Distillation of Guided
    Diffusion Models", arXiv 2210.03142), which fits a student to the guided teacher's output, the signal is the
    guidance itself rather than samples drawn with it, so it carries no flow-target noise; rows without an offset
    hold the model at its start (a KL term). At v_pred = v_ref the gradient is −2·offset/numel: the update moves the
    velocity towards the guided step."""
    _check_velocities(v_pred, offset, "offset")
    return velocity_kl(v_pred, v_ref.detach().float() + offset.detach().float())


@dataclass
class SdeStep:
    """One recorded step of an SDE rollout: x_t → x_next over (t, t − dt) at the rollout's noise level."""

    x_t: torch.Tensor  # (B, N, C)
    x_next: torch.Tensor  # (B, N, C)
    t: torch.Tensor  # (B,)
    dt: torch.Tensor  # (B,)
    noise_level: float
    floor: float  # the schedule's first step size (flow.sde_step)


def step_log_ratio(v_pred: torch.Tensor, v_old: torch.Tensor, step: SdeStep) -> torch.Tensor:
    """Per token (B, N): log π_θ(x_next | x_t) − log π_old(x_next | x_t) for the Gaussian SDE step, averaged over
    the token's channels (Flow-GRPO averages its log-likelihoods over dimensions). Both share one std, so the
    normalisers cancel and only the squared distances of x_next to the two means remain."""
    mean, std = flow.sde_step(step.x_t.float(), v_pred.float(), step.t, step.dt, step.noise_level, step.floor)
    mean_old, _ = flow.sde_step(step.x_t.float(), v_old.detach().float(), step.t, step.dt, step.noise_level,
                                step.floor)
    x_next = step.x_next.float()
    return ((x_next - mean_old).pow(2) - (x_next - mean).pow(2)).mean(-1) / (2 * std.pow(2).squeeze(-1))


def policy_gradient_loss(v_pred: torch.Tensor, v_old: torch.Tensor, step: SdeStep, advantages: torch.Tensor,
                         clip: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Flow-GRPO's clipped policy-gradient loss (Liu et al. 2025, "Flow-GRPO: Training Flow Matching Models via
    Online RL", arXiv 2505.05470), per latent token: the rollout's own step is made more likely where the token's
    advantage is positive and less likely where it is negative,

        L = −mean over B·N of min(ρ·A, clip(ρ, 1 − ε, 1 + ε)·A),   ρ = π_θ(x_next | x_t) / π_old(x_next | x_t).

    Unlike flow matching on the final image, the credit goes to the step that was taken, early layout decisions
    included. v_old is the velocity of the policy that drew the rollout (this round's starting model). Returns the
    loss and the fraction of tokens whose ratio was clipped."""
    _check_velocities(v_pred, v_old, "v_old")
    if advantages.shape != v_pred.shape[:2]:
        raise ValueError(f"advantages has shape {tuple(advantages.shape)}; expected (B, N) = {tuple(v_pred.shape[:2])}")
    ratio = step_log_ratio(v_pred, v_old, step).exp()
    a = advantages.float()
    clipped = ratio.clamp(1 - clip, 1 + clip)
    loss = -torch.minimum(ratio * a, clipped * a).mean()
    return loss, ((ratio - clipped).abs() > 0).float().mean()


def dpo_loss(v_pred: torch.Tensor, v_ref: torch.Tensor, target: torch.Tensor, roles: torch.Tensor,
             beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Diffusion-DPO (Wallace et al. 2023, "Diffusion Model Alignment Using Direct Preference Optimization",
    arXiv 2311.12908) for flow matching. Rows alternate each pair's winner and loser (`roles` +1 / −1 on every
    token: the weights objective_weights gives them), which share one timestep and noise. With e the image's
    squared flow error averaged over its tokens and channels, for the trained and the frozen reference model (the
    round's start),

        L = −mean over pairs of log σ(−β/2 · [(e_w − e_w^ref) − (e_l − e_l^ref)]).

    At the start (e = e^ref) its gradient is β/4·∇(e_w − e_l): flow matching towards the winner and away from the
    loser. A pair stops pulling once the model prefers its winner by a margin of a few 2/β over the reference, which
    bounds the update without another term. Returns the loss and the fraction of pairs whose implicit reward already
    prefers the winner."""
    _check_velocities(v_pred, v_ref, "v_ref")
    _check_velocities(v_pred, target, "target")
    if roles.shape != v_pred.shape[:2] or len(roles) % 2:
        raise ValueError(f"roles has shape {tuple(roles.shape)}; expected (B, N) = {tuple(v_pred.shape[:2])} "
                         "with B even")
    sign = roles[:, 0].float()
    if not (bool((sign[0::2] > 0).all()) and bool((sign[1::2] < 0).all())):
        raise ValueError("dpo rows must alternate winner (role > 0) and loser (role < 0): batch whole pairs")
    err = (v_pred.float() - target.float()).pow(2).mean((1, 2))
    err_ref = (v_ref.detach().float() - target.float()).pow(2).mean((1, 2))
    gain = err - err_ref  # (B,): how much worse than the reference the model fits each image
    inside = -0.5 * beta * (gain[0::2] - gain[1::2])
    return -torch.nn.functional.logsigmoid(inside).mean(), (inside > 0).float().mean()


def srum_loss(v_pred: torch.Tensor, target: torch.Tensor | None, weights: torch.Tensor, cfg: ObjectiveConfig,
              v_ref: torch.Tensor | None = None, target_good: torch.Tensor | None = None,
              step: SdeStep | None = None,
              offset: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss = reward term + constraint term, and its parts as detached scalars.

    Reward term by `cfg.kind`: `official` and `group_relative` weight flow matching per token by `weights` (the
    official map, or signed group advantages: srum.rewards.advantage); `nft` reads `weights` as optimality
    probabilities r ∈ [0, 1] and needs v_ref, the round's starting model, as DiffusionNFT's v_old; `flow_grpo` reads
    `weights` as signed advantages of the rollout's recorded `step` (no flow target: `target` is None) and needs
    v_ref as the policy that drew it, and adds the metric `clip_fraction`; `dpo` reads `weights` as pair roles
    (rows alternate winner +1, loser −1), needs v_ref as its reference and adds the metric `pair_accuracy`.

    constraint=anchor: λ·mean((v − target_good)²) with λ = cfg.anchor_weight; target_good defaults to `target`,
    since official good == bad (§3.3), and then the total is exactly mean((R + λ)·e).
    constraint=kl: β·mean((v − v_ref)²) with β = cfg.kl_weight; v_ref is required.
    constraint=none: the reward term alone.
    Metrics: `loss`, `reward_term`, `constraint_term`, and `kl` whenever v_ref is given (even if not trained on),
    so drift from the base can be watched under any constraint. They stay tensors: `.item()` is a device sync,
    left to the caller's logging cadence.
    """
    if cfg.constraint == Constraint.kl and v_ref is None:
        raise ValueError(
            "objective.constraint=kl needs the frozen reference's velocity: pass v_ref (the base model's velocity "
            "on the same x_t, t and prompt), or set objective.constraint=anchor|none"
        )
    extra = {}
    if cfg.kind.needs_start and v_ref is None:
        raise ValueError(f"objective.kind={cfg.kind.value} needs the round's starting model's velocity: pass v_ref")
    if cfg.kind == ObjectiveKind.flow_grpo:
        if step is None:
            raise ValueError("objective.kind=flow_grpo needs the rollout's recorded step: pass step")
        reward_term, extra["clip_fraction"] = policy_gradient_loss(v_pred, v_ref, step, weights, cfg.pg_clip)
    elif cfg.kind == ObjectiveKind.judge_distill:
        if offset is None:
            raise ValueError("objective.kind=judge_distill needs the guidance's velocity offset: pass offset")
        reward_term = judge_distill_loss(v_pred, v_ref, offset)
        extra["offset_ms"] = offset.float().pow(2).mean()  # the loss of a model that has learnt none of the offset
    elif target is None:
        raise ValueError(f"objective.kind={cfg.kind.value} needs the flow target: pass target")
    elif cfg.kind == ObjectiveKind.nft:
        reward_term = nft_loss(v_pred, v_ref, target, weights, cfg.nft_beta)
    elif cfg.kind == ObjectiveKind.dpo:
        reward_term, extra["pair_accuracy"] = dpo_loss(v_pred, v_ref, target, weights, cfg.dpo_beta)
    else:
        reward_term = reward_weighted_flow_loss(v_pred, target, weights)
    kl = velocity_kl(v_pred, v_ref) if v_ref is not None else None
    if cfg.constraint == Constraint.anchor:
        constraint_term = cfg.anchor_weight * anchor_loss(v_pred, target if target_good is None else target_good)
    elif cfg.constraint == Constraint.kl:
        assert kl is not None  # checked above
        constraint_term = cfg.kl_weight * kl
    else:
        constraint_term = torch.zeros((), dtype=reward_term.dtype, device=reward_term.device)
    loss = reward_term + constraint_term
    metrics = {"loss": loss.detach(), "reward_term": reward_term.detach(), "constraint_term": constraint_term.detach(),
               **extra}
    if kl is not None:
        metrics["kl"] = kl.detach()
    return loss, metrics
