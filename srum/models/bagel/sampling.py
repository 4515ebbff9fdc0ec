"""Text-to-image sampling: contexts prefilled once, CFG branches batched, Euler steps with a shift.

Each context (conditional, text-unconditional, image-unconditional) is a `KVCache` built once;
every step runs one query block `[<|vision_start|>, latents, <|vision_end|>]` per branch on top of
its cache without writing to it. All branches go through the decoder as one batch. Guidance is
BAGEL's: text CFG, optional image CFG, renormalised to the conditional velocity's norm, and only
inside `cfg_interval` (compared with the shifted t).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from srum import flow
from srum.models.bagel.cache import KVCache
from srum.models.bagel.model import Bagel
from srum.models.bagel.sequence import Latent, build_batch
from srum.models.interface import Guide


@dataclass
class GuidanceParams:
    """Sampler settings; defaults are BAGEL's text-to-image recommendation."""

    num_timesteps: int = 50  # grid points; the model runs num_timesteps − 1 times
    timestep_shift: float = 3.0
    cfg_text_scale: float = 4.0
    cfg_img_scale: float = 1.0
    cfg_interval: tuple[float, float] = (0.4, 1.0)
    cfg_renorm_type: str = "global"  # global | channel | text_channel
    cfg_renorm_min: float = 0.0

    def __post_init__(self) -> None:
        if self.num_timesteps < 2:
            raise ValueError(f"num_timesteps={self.num_timesteps}: need at least 2 (one Euler step)")
        if self.cfg_renorm_type not in ("global", "channel", "text_channel"):
            raise ValueError(f"cfg_renorm_type={self.cfg_renorm_type!r}: expected global, channel or text_channel")


def _renorm(v_cond: torch.Tensor, v: torch.Tensor, dims: tuple[int, ...], minimum: float) -> torch.Tensor:
    scale = v_cond.norm(dim=dims, keepdim=True) / (v.norm(dim=dims, keepdim=True) + 1e-8)
    return v * scale.clamp(min=minimum, max=1.0)


def combine_guidance(
    v_cond: torch.Tensor,
    v_text_uncond: torch.Tensor | None,
    v_img_uncond: torch.Tensor | None,
    params: GuidanceParams,
) -> torch.Tensor:
    """BAGEL's CFG combination for velocities (B, n, C); a branch is None when its scale is ≤ 1.

    global/channel: u = v_t + s_T(v_c − v_t); [u = v_i + s_I(u − v_i)]; then rescale u to at most
    ‖v_c‖ (norm over each sample's whole tensor, or per token). text_channel: the per-token rescale
    happens after the text step only, before image guidance.
    """
    v = v_cond
    if v_text_uncond is not None:
        v = v_text_uncond + params.cfg_text_scale * (v_cond - v_text_uncond)
    if params.cfg_renorm_type == "text_channel":
        if v_text_uncond is not None:
            v = _renorm(v_cond, v, (-1,), params.cfg_renorm_min)
        if v_img_uncond is not None:
            v = v_img_uncond + params.cfg_img_scale * (v - v_img_uncond)
        return v
    if v_img_uncond is not None:
        v = v_img_uncond + params.cfg_img_scale * (v - v_img_uncond)
    if v_text_uncond is None and v_img_uncond is None:
        return v
    dims = (-2, -1) if params.cfg_renorm_type == "global" else (-1,)
    return _renorm(v_cond, v, dims, params.cfg_renorm_min)


@torch.no_grad()
def denoise(
    model: Bagel,
    noise: torch.Tensor,
    grid: tuple[int, int],
    cond: KVCache,
    params: GuidanceParams,
    text_uncond: KVCache | None = None,
    img_uncond: KVCache | None = None,
    trace: dict[str, list[torch.Tensor]] | None = None,
    step_noise: torch.Tensor | None = None,
    noise_level: float = 0.0,
    path: list[torch.Tensor] | None = None,
    guide: Guide | None = None,
) -> torch.Tensor:
    """Run the Euler sampler from `noise` (B, h·w, C) to clean latent tokens (B, h·w, C), in float32.

    With `step_noise` (B, steps, h·w, C) every step is instead the SDE step of `flow.sde_step` at `noise_level`,
    taking its Gaussian part from `step_noise` (Flow-GRPO's rollouts). `path`, when given, receives x at every grid
    point (the noise first, the clean latents last). `trace`, when given, collects per-step tensors (t, dt, x_t,
    v_cond, v_text_uncond, v). `guide(x0_hat, t)`, when given, may return a shift (B, h·w, C) of each step's clean
    estimate x0_hat = x − t·v; the step then takes the velocity that points from the same x to x0_hat + shift,
    v − shift/t (`srum.guidance`: the self-judge's gradient).
    """
    B = noise.shape[0]
    use_text = params.cfg_text_scale > 1.0 and text_uncond is not None
    use_img = params.cfg_img_scale > 1.0 and img_uncond is not None
    branches = [cond] + ([text_uncond] if use_text else []) + ([img_uncond] if use_img else [])
    # One stacked cache for all guided steps, and the conditional rows alone for unguided ones.
    stacked = KVCache.concat(branches) if len(branches) > 1 else cond
    n_rows = B * len(branches)
    placeholder = torch.zeros(noise.shape[1], noise.shape[2])
    layout = build_batch([[Latent(placeholder, grid, 0.0, noisy=True)]] * n_rows, model.config)

    timesteps, dts = flow.euler_schedule(params.num_timesteps, params.timestep_shift)
    lo, hi = params.cfg_interval
    x = noise.float()
    if path is not None:
        path.append(x.cpu())
    for j, (t, dt) in enumerate(zip(timesteps.tolist(), dts.tolist())):
        guided = len(branches) > 1 and lo < t <= hi
        rows = n_rows if guided else B
        x_in = x.repeat(rows // B, 1, 1)  # every branch sees the same x_t
        step = dataclasses.replace(
            _select_rows(layout, rows),
            latent_tokens=x_in.reshape(-1, x.shape[-1]),
            latent_t=torch.full((x_in.shape[0] * x_in.shape[1],), t),
        )
        out = model(step, past=stacked if guided else cond)
        v_all = model.velocity(out.hidden[step.noisy.to(out.hidden.device)]).reshape(rows, *x.shape[1:])
        v_all = v_all.to(x.device)
        v_cond = v_all[:B]
        v_text = v_all[B:2 * B] if guided and use_text else None
        v_img = v_all[(2 if use_text else 1) * B:] if guided and use_img else None
        v = combine_guidance(v_cond, v_text, v_img, params)
        if guide is not None:
            shift = guide(x - t * v, t)
            if shift is not None:
                v = v - shift.to(v) / t
        if trace is not None:
            for key, val in (("t", torch.tensor(t)), ("dt", torch.tensor(dt)), ("x_t", x), ("v_cond", v_cond),
                             ("v_text_uncond", v_text if v_text is not None else torch.zeros_like(v_cond)),
                             ("v", v)):
                trace.setdefault(key, []).append(val.clone())
        if step_noise is None:
            x = x - v * dt
        else:
            mean, std = flow.sde_step(x, v, t, dt, noise_level, float(dts[0]))
            x = mean + std * step_noise[:, j].to(x.device)
        if path is not None:
            path.append(x.cpu())
    return x


def _select_rows(layout, rows: int):
    """The first `rows` rows of a layout whose rows are all alike."""
    if rows == layout.kind.shape[0]:
        return layout
    n_tok = int(layout.noisy[0].sum())
    return dataclasses.replace(
        layout, kind=layout.kind[:rows], token_ids=layout.token_ids[:rows], position_ids=layout.position_ids[:rows],
        attention_mask=layout.attention_mask[:rows], labels=layout.labels[:rows], noisy=layout.noisy[:rows],
        next_position=layout.next_position[:rows], latent_position_ids=layout.latent_position_ids[:rows * n_tok],
    )


@torch.no_grad()
def denoise_recompute(
    model: Bagel,
    noise: torch.Tensor,
    grid: tuple[int, int],
    cond_context: list[list],
    params: GuidanceParams,
    text_uncond_context: list[list] | None = None,
) -> torch.Tensor:
    """The same sampler without caches or batching: every step re-runs each context in full, branch by branch.

    This is the reference `denoise` must equal (tests) and the baseline it is timed against (benchmarks).
    """
    timesteps, dts = flow.euler_schedule(params.num_timesteps, params.timestep_shift)
    lo, hi = params.cfg_interval
    x = noise.float()
    use_text = params.cfg_text_scale > 1.0 and text_uncond_context is not None

    def branch(context: list[list], t: float) -> torch.Tensor:
        batch = build_batch([[*ctx, Latent(xi, grid, t, noisy=True)] for ctx, xi in zip(context, x)], model.config)
        out = model(batch)
        return model.velocity(out.hidden[batch.noisy.to(out.hidden.device)]).reshape(x.shape).to(x.device)

    for t, dt in zip(timesteps.tolist(), dts.tolist()):
        v_cond = branch(cond_context, t)
        v_text = branch(text_uncond_context, t) if use_text and lo < t <= hi else None
        x = x - combine_guidance(v_cond, v_text, None, params) * dt
    return x
