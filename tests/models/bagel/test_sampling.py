"""Sampling: guidance math by hand, cached+batched sampling equals recompute, batching and seeds."""

from __future__ import annotations

import pytest
import torch

from srum import flow
from srum.models.bagel.sampling import GuidanceParams, combine_guidance, denoise, denoise_recompute
from srum.models.bagel.sequence import build_batch, text_segment


def test_euler_schedule_by_hand():
    t, dt = flow.euler_schedule(3, shift=3.0)
    # grid 1, 0.5, 0 → shifted 3·0.5/(1+2·0.5) = 0.75
    assert t.tolist() == pytest.approx([1.0, 0.75])
    assert dt.tolist() == pytest.approx([0.25, 0.75])


def test_combine_guidance_by_hand():
    v_c = torch.tensor([[[3.0, 4.0]]])  # ‖v_c‖ = 5
    v_u = torch.tensor([[[0.0, 0.0]]])
    p = GuidanceParams(cfg_text_scale=2.0, cfg_renorm_min=0.0)
    # u = 0 + 2·(v_c − 0) = (6, 8), ‖u‖ = 10 → rescaled by 5/10 back to v_c
    assert combine_guidance(v_c, v_u, None, p).flatten().tolist() == pytest.approx([3.0, 4.0], abs=1e-6)
    # renorm never scales up: u = (6, 8) + 2·((3, 4) − (6, 8)) = (0, 0) stays (0, 0)
    v_u2 = torch.tensor([[[6.0, 8.0]]])
    assert combine_guidance(v_c, v_u2, None, p).abs().max().item() < 1e-6
    # image guidance: with s_I = 2 and v_i = 0, u doubles before the global renorm: still capped at ‖v_c‖
    p2 = GuidanceParams(cfg_text_scale=1.5, cfg_img_scale=2.0, cfg_renorm_min=0.0)
    out = combine_guidance(v_c, v_u, torch.zeros_like(v_c), p2)
    assert out.norm().item() == pytest.approx(5.0, rel=1e-5)
    # renorm_min lower-bounds the scale: min 0.8 keeps 0.8·(6, 8)
    p3 = GuidanceParams(cfg_text_scale=2.0, cfg_renorm_min=0.8)
    assert combine_guidance(v_c, v_u, None, p3).flatten().tolist() == pytest.approx([4.8, 6.4], abs=1e-5)
    # channel renorm is per token: token 2 is already within its norm
    v_c2 = torch.tensor([[[3.0, 4.0], [1.0, 0.0]]])
    v_u3 = torch.tensor([[[0.0, 0.0], [1.0, 0.0]]])
    p4 = GuidanceParams(cfg_text_scale=2.0, cfg_renorm_type="channel")
    assert combine_guidance(v_c2, v_u3, None, p4).flatten().tolist() == pytest.approx([3, 4, 1, 0], abs=1e-6)


def _contexts(model, prompts):
    cfg = model.config
    return [[text_segment(p, cfg)] for p in prompts]


@pytest.mark.parametrize("interval", [(0.4, 1.0), (0.0, 1.0)])
def test_cached_batched_equals_recompute(tiny, interval):
    """Prefill-once + batched CFG == recomputing every context, every branch, every step."""
    model, _ = tiny
    prompts = [[3, 4, 5, 6, 7], [8, 9]]  # different lengths: padding in the stacked cache
    params = GuidanceParams(num_timesteps=8, cfg_interval=interval)
    noise = torch.randn(2, 4, 64, generator=torch.Generator().manual_seed(1))
    ctx = _contexts(model, prompts)
    with torch.no_grad():
        cond = model.prefill(build_batch(ctx, model.config))
    fast = denoise(model, noise, (2, 2), cond, params, text_uncond=model.empty_cache(2))
    slow = denoise_recompute(model, noise, (2, 2), ctx, params, text_uncond_context=[[]] * 2)
    assert (fast - slow).abs().max().item() < 1e-4
    # and guidance matters: without the unconditional branch the result differs
    plain = denoise(model, noise, (2, 2), cond, params)
    assert (fast - plain).abs().max().item() > 1e-3


def test_batch_rows_equal_single_runs(tiny):
    model, _ = tiny
    prompts = [[3, 4, 5, 6, 7], [8, 9]]
    params = GuidanceParams(num_timesteps=5)
    noise = torch.randn(2, 4, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        cond = model.prefill(build_batch(_contexts(model, prompts), model.config))
    both = denoise(model, noise, (2, 2), cond, params, text_uncond=model.empty_cache(2))
    for i in range(2):
        with torch.no_grad():
            c = model.prefill(build_batch(_contexts(model, prompts[i:i + 1]), model.config))
        one = denoise(model, noise[i:i + 1], (2, 2), c, params, text_uncond=model.empty_cache(1))
        assert (both[i] - one[0]).abs().max().item() < 1e-4


def test_seed_determinism_and_think_mode(tiny_unified):
    m = tiny_unified
    m.guidance = GuidanceParams(num_timesteps=4)
    m.max_think_tokens = 6
    a = m.sample_images(["a red circle", "a blue square"], seeds=[7, 8], height=32, width=32)
    b = m.sample_images(["a blue square"], seeds=[8], height=32, width=32)
    assert a.images[0].size == (32, 32) and a.latents.shape == (2, 16, 4, 4)
    assert torch.allclose(a.latents[1], b.latents[0], atol=1e-4)  # a row does not depend on its batch
    c = m.sample_images(["a red circle"], seeds=[9], height=32, width=32)
    assert (a.latents[0] - c.latents[0]).abs().max() > 1e-2  # another seed, another image
    t1 = m.sample_images(["a red circle"], seeds=[7], height=32, width=32, think=True)
    t2 = m.sample_images(["a red circle"], seeds=[7], height=32, width=32, think=True)
    assert t1.plans == t2.plans and isinstance(t1.plans[0], str)
    assert torch.equal(t1.latents, t2.latents)
    assert (t1.latents[0] - a.latents[0]).abs().max() > 1e-3  # the plan is part of the context


def test_bad_image_size(tiny_unified):
    with pytest.raises(ValueError, match="multiple of 16"):
        tiny_unified.sample_images(["a red circle"], seeds=[0], height=40, width=32)


def test_guided_velocity_is_the_samplers_step(tiny_unified):
    """The training-side guided velocity equals the velocity each Euler step of the sampler took (guided inside
    cfg_interval, conditional outside), and it carries gradients to the model."""
    m = tiny_unified
    m.guidance = GuidanceParams(num_timesteps=4, timestep_shift=1.0, cfg_text_scale=3.0, cfg_interval=(0.4, 1.0))
    prompts = ["a red circle", "a blue square left of a green circle"]
    noise = torch.randn(2, 4, 64, generator=torch.Generator().manual_seed(3))
    trace: dict[str, list[torch.Tensor]] = {}
    cond = m.prefill([[m.text(p)] for p in prompts])
    denoise(m.model, noise, (2, 2), cond, m.guidance, text_uncond=m.model.empty_cache(2), trace=trace)
    assert [round(float(t), 4) for t in trace["t"]] == [1.0, 0.6667, 0.3333]  # the last step is unguided
    for x_t, t, v, v_cond in zip(trace["x_t"], trace["t"], trace["v"], trace["v_cond"]):
        with torch.no_grad():
            got = m.guided_velocity(prompts, x_t, t.repeat(2), (2, 2))
        assert (got - v).abs().max().item() < 1e-4
        assert ((v - v_cond).abs().max().item() > 1e-3) == (float(t) > 0.4)
    # a dropped prompt is the unconditional velocity, unguided
    x_t, t = trace["x_t"][0], trace["t"][0].repeat(2)
    with torch.no_grad():
        assert torch.allclose(m.guided_velocity([None, None], x_t, t, (2, 2)), m.velocity([None, None], x_t, t, (2, 2)),
                              atol=1e-5)
    m.guided_velocity(prompts, x_t, t, (2, 2)).square().sum().backward()
    assert m.model.llm2vae.weight.grad is not None and m.model.llm2vae.weight.grad.abs().sum() > 0


def test_sde_rollout_steps_are_the_policy_training_recomputes(tiny_unified):
    """Each recorded step of an SDE rollout is the training side's SDE mean (from `guided_velocity` at the recorded
    x_t) plus std times that step's seeded noise, so the policy ratio starts at exactly 1; the rollout starts from
    the ODE sampler's noise, its last point is the returned latents, and the same seed draws the same trajectory."""
    from srum import flow

    m = tiny_unified
    m.guidance = GuidanceParams(num_timesteps=4, timestep_shift=2.0, cfg_text_scale=3.0, cfg_interval=(0.0, 1.0))
    prompts, seeds = ["a red circle", "a blue square"], [5, 9]
    out = m.sample_trajectories(prompts, seeds, 32, 32, noise_level=0.7)
    path = out.trajectory
    assert path.shape == (2, 4, 4, 64)
    assert torch.equal(path[:, 0], m.initial_noise(seeds, (2, 2)))
    assert torch.allclose(path[:, -1], m.latents_to_tokens(out.latents), atol=1e-6)
    ts, dts = flow.euler_schedule(4, 2.0)
    noise = m.step_noise(seeds, (2, 2), 3)
    for j in range(3):
        with torch.no_grad():
            v = m.guided_velocity(prompts, path[:, j], ts[j].repeat(2), (2, 2))
        mean, std = flow.sde_step(path[:, j], v, ts[j].repeat(2), dts[j].repeat(2), 0.7, float(dts[0]))
        assert ((path[:, j + 1] - mean) / std - noise[:, j]).abs().max().item() < 1e-3
    again = m.sample_trajectories(prompts[:1], seeds[:1], 32, 32, noise_level=0.7).trajectory
    assert torch.allclose(again[0], path[0], atol=1e-5)  # one image alone draws what it drew in a batch
    ode = m.sample_images(prompts, seeds, 32, 32)
    assert (ode.latents - out.latents).abs().max() > 1e-2  # the steps' noise changed the image


def test_flow_matching_on_one_latent_makes_the_sampler_draw_it(tiny_unified):
    """Training's velocity target (srum.flow) and the sampler's Euler steps agree in sign: a model fitted by flow
    matching to one prompt's single latent draws that latent from any seed (error 3% of the untrained one's). Fitted
    to the opposite sign, the same steps leave the samples three times further away than they started."""
    torch.manual_seed(0)
    m = tiny_unified
    m.guidance = GuidanceParams(num_timesteps=16, timestep_shift=1.0, cfg_text_scale=1.0)
    prompt, grid = "a red circle", (2, 2)
    target = torch.randn(4, 64, generator=torch.Generator().manual_seed(5))

    def error() -> float:
        with torch.no_grad():
            drawn = m.latents_to_tokens(m.sample_images([prompt] * 3, [1, 2, 3], 32, 32).latents)
        return float((drawn - target).square().mean())

    before = error()
    opt = torch.optim.Adam(m.model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(6)
    for _ in range(500):
        t = flow.sample_training_timesteps(8, generator=g)
        noise = torch.randn(8, 4, 64, generator=g)
        x0 = target.expand(8, 4, 64)
        v = m.velocity([prompt] * 8, flow.interpolate(x0, noise, t), t, grid)
        loss = (v - flow.velocity_target(x0, noise)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = error()
    assert before > 1.5 and after < 0.1 * before, (before, after)
