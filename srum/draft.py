"""DRaFT: the model's own judge, differentiated through its sampler, is the training signal (objective.kind=draft).

A unified model can differentiate its judge: `UnifiedModel.latent_answer_log_odds` gives the log-odds that the image
some clean latents decode to shows its prompt, differentiable in the latents. DRaFT (Clark et al. 2023, "Directly
Fine-Tuning Diffusion Models on Differentiable Rewards", arXiv 2309.17400) draws fresh images with gradients kept
through the sampler's last K steps and ascends the reward of what comes out; K = every step is AlignProp's full
backpropagation (Prabhudesai et al. 2023, arXiv 2310.03739). Unlike judge_distill, which regresses the velocity on
the judge's step at re-noised points of old samples (and learns about 1% of it on ShapesWorld), this credits any
change of the weights that raises the judge's verdict on the finished picture, the early steps that choose the
layout included. It is self-rewarding: the judge is the frozen understanding side of the model being trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from srum.models.interface import UnifiedModel
from srum.objectives import velocity_kl


@dataclass
class DraftRollout:
    """One differentiable rollout: the clean latent tokens (B, N, C), differentiable through the last steps, and
    the mean velocity KL to the reference over those steps (None without a reference)."""

    tokens: torch.Tensor
    kl: torch.Tensor | None


def draft_rollout(model: UnifiedModel, prompts: Sequence[str], noise: torch.Tensor, grid: tuple[int, int],
                  timesteps: torch.Tensor, dts: torch.Tensor, grad_steps: int,
                  reference: UnifiedModel | None = None) -> DraftRollout:
    """Euler steps of the sampler's own (guided) velocity from `noise` (B, N, C) over the schedule (`timesteps`,
    `dts`: srum.flow.euler_schedule), the last `grad_steps` of them with gradients to the weights. The velocity is
    `guided_velocity`, the one the sampler steps with, so with no gradient the result is the sampler's image. With
    a `reference`, its velocity at the same x_t of every differentiated step gives the KL proxy (velocity_kl)."""
    if not 1 <= grad_steps <= len(timesteps):
        raise ValueError(f"grad_steps={grad_steps}: the schedule has {len(timesteps)} steps")
    x = noise.float()
    kls = []
    first_grad = len(timesteps) - grad_steps
    for j, (t, dt) in enumerate(zip(timesteps.tolist(), dts.tolist())):
        tt = torch.full((len(prompts),), t, device=x.device)
        with torch.set_grad_enabled(j >= first_grad):
            v = model.guided_velocity(list(prompts), x, tt, grid)
        if j >= first_grad and reference is not None:
            with torch.no_grad():
                v_ref = reference.guided_velocity(list(prompts), x.detach(), tt, grid)
            kls.append(velocity_kl(v, v_ref))
        x = x - v.float() * dt
    return DraftRollout(x, torch.stack(kls).mean() if kls else None)


def draft_loss(log_odds: torch.Tensor, kl: torch.Tensor | None,
               kl_weight: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """−mean(log-odds) [+ kl_weight · kl]: ascend the judge's verdict, held near the reference when asked. Its
    parts are detached metrics named as srum_loss names them (reward_term, constraint_term, kl)."""
    reward_term = -log_odds.float().mean()
    constraint = kl_weight * kl if kl is not None else torch.zeros((), device=reward_term.device)
    loss = reward_term + constraint
    metrics = {"loss": loss.detach(), "reward_term": reward_term.detach(), "constraint_term": constraint.detach(),
               "judge_log_odds": log_odds.detach().float().mean()}
    if kl is not None:
        metrics["kl"] = kl.detach()
    return loss, metrics
