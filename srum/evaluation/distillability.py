"""Which velocity offsets can the generation side learn from a round's samples: the diagnosis of judge_distill.

The model is fitted, from its start, to v_start + offset on re-noised samples, as `objective.kind=judge_distill`
fits it to the guided step, and on every new batch, before that batch's step, we measure the share of the offset
it already takes, ⟨v − v_start, offset⟩ / ‖offset‖² (1: learnt, 0: not at all; fresh batches, so memorising
earlier ones does not count). The offsets: `judge` (judge guidance's step, srum.guidance.guided_velocity_shift);
`cfg` (text CFG's own push on the velocity, v_guided − v_cond, rescaled per image to the judge offset's RMS: a
direction the network computes itself, the positive control); `random` (Gaussian noise of that RMS, which no network
can predict: the negative control). Every offset sees the same samples, timesteps and noise. With `low_pass` K > 1
every offset is first averaged over K × K blocks of the token grid (then rescaled to the judge offset's size): does
a coarser version of the judge's direction, one that says where to change the picture rather than which pixels,
become learnable?
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from srum import flow
from srum.guidance import guided_velocity_shift, per_image_rms
from srum.models.interface import UnifiedModel
from srum.objectives import judge_distill_loss
from srum.rewards.judge import JudgeTemplates

OFFSETS = ("judge", "cfg", "random")


def token_low_pass(x: torch.Tensor, grid: tuple[int, int], k: int) -> torch.Tensor:
    """Each token of x (B, h·w row-major, C) replaced by the mean of its k × k block of the (h, w) token grid.

    Raises:
        ValueError: k does not divide the grid's sides.
    """
    h, w = grid
    if k < 1 or h % k or w % k:
        raise ValueError(f"low_pass={k} must be >= 1 and divide the token grid {h}×{w}")
    if k == 1:
        return x
    b, n, c = x.shape
    blocks = F.avg_pool2d(x.transpose(1, 2).reshape(b, c, h, w), k)
    return blocks.repeat_interleave(k, 2).repeat_interleave(k, 3).reshape(b, c, n).transpose(1, 2)


def offset_uptake(model: UnifiedModel, reference: UnifiedModel, tokens: torch.Tensor, prompts: list[str],
                  grid: tuple[int, int], templates: JudgeTemplates, offset: str, steps: int, lr: float,
                  batch_size: int, strength: float, until: float, seed: int,
                  low_pass: int = 1) -> list[float]:
    """Train `model`'s generation side (AdamW, lr `lr`) towards `reference`'s velocity plus `offset` on batches of
    `tokens` (M, N, C) re-noised at flow times in (until, 1], where guidance acts; returns each step's share of
    the offset taken before its update. `reference` is the frozen start (the same weights as `model` at first);
    `low_pass` as `token_low_pass` takes it."""
    if offset not in OFFSETS:
        raise ValueError(f"offset={offset!r}: expected one of {', '.join(OFFSETS)}")
    token_low_pass(tokens[:1], grid, low_pass)  # refuse a bad block size before any training
    params = []
    for name, p in model.trainable_module().named_parameters():
        p.requires_grad_(model.is_generation_parameter(name))
        if p.requires_grad:
            params.append(p)
    reference.trainable_module().requires_grad_(False)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    draws, noise_draws = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    shares = []
    for _ in range(steps):
        idx = torch.randint(len(tokens), (batch_size,), generator=draws)
        x0, batch = tokens[idx], [prompts[i] for i in idx.tolist()]
        t = until + (1.0 - until) * torch.rand(batch_size, generator=draws).clamp_min(1e-6)
        x_t = flow.interpolate(x0, torch.randn(x0.shape, generator=draws), t)
        with torch.no_grad():
            v_ref = reference.velocity(batch, x_t, t, grid)
        target, _ = guided_velocity_shift(reference, x_t, t, v_ref, batch, templates, grid, strength, until)
        size = per_image_rms(target)
        if offset == "cfg":
            with torch.no_grad():
                target = reference.guided_velocity(batch, x_t, t, grid) - v_ref
        elif offset == "random":
            target = torch.randn(target.shape, generator=noise_draws)
        target = token_low_pass(target, grid, low_pass)
        target = target * size / per_image_rms(target).clamp_min(1e-12)
        v = model.velocity(batch, x_t, t, grid)
        with torch.no_grad():
            shares.append(float(((v - v_ref) * target).sum() / target.pow(2).sum().clamp_min(1e-12)))
        loss = judge_distill_loss(v, v_ref, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return shares
