"""Judge guidance: the sampler hook by hand, the differentiable judge against the judge the loop uses, the guide's
step raising the judge's log-odds, and the settings that cannot combine with it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from srum.config import ConfigError, GenerateConfig, ObjectiveConfig, load_config
from srum.guidance import guide_answers, guide_factory, guided_velocity_shift, judge_guide
from srum.models.bagel.config import BagelConfig
from srum.models.bagel.model import Bagel
from srum.models.bagel.sampling import GuidanceParams, denoise
from srum.models.bagel.unified import BagelUnified
from srum.models.bagel.vae import BagelVAE
from srum.pipeline import plan
from srum.rewards.judge import templates_for
from srum.worlds.shapes.model import shapes_tokenizer

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "shapes.yaml"
PROMPTS = ["a red circle", "a blue square left of a green circle"]


@pytest.fixture
def unified() -> BagelUnified:
    torch.manual_seed(0)
    config = BagelConfig.tiny()
    return BagelUnified(Bagel(config).eval(), BagelVAE(config.vae_config).eval(), shapes_tokenizer(config))


def test_a_guided_step_heads_for_the_shifted_clean_estimate(unified):
    """Grid t = 1, 0.5, 0 (two Euler steps of 0.5). A guide shifting x0_hat by s at t = 0.5 only: the last step
    takes v − s/0.5 instead of v, so the sample ends exactly s·0.5/0.5 = s away from the unguided one, and the guide
    saw x0_hat = x − t·v of that step."""
    m = unified
    params = GuidanceParams(num_timesteps=3, timestep_shift=1.0, cfg_text_scale=3.0, cfg_interval=(0.0, 1.0))
    noise = torch.randn(2, 4, 64, generator=torch.Generator().manual_seed(1))
    shift = torch.randn(2, 4, 64, generator=torch.Generator().manual_seed(2))
    cond, unc = m.prefill([[m.text(p)] for p in PROMPTS]), m.model.empty_cache(2)
    trace: dict[str, list[torch.Tensor]] = {}
    plain = denoise(m.model, noise, (2, 2), cond, params, text_uncond=unc, trace=trace)
    seen: list[tuple[float, torch.Tensor]] = []

    def guide(x0, t):
        seen.append((t, x0.clone()))
        return shift if t == 0.5 else None

    guided = denoise(m.model, noise, (2, 2), cond, params, text_uncond=unc, guide=guide)
    assert [t for t, _ in seen] == [1.0, 0.5]
    assert torch.allclose(seen[0][1], trace["x_t"][0] - 1.0 * trace["v"][0], atol=1e-6)
    assert torch.allclose(seen[1][1], trace["x_t"][1] - 0.5 * trace["v"][1], atol=1e-6)  # same path until then
    assert torch.allclose(guided - plain, shift, atol=1e-5)


def test_latent_log_odds_is_the_judges_answer_distribution(unified):
    """On images the ViT takes at their own size (112 px), the differentiable log-odds equal log(p_yes/p_no) of
    `answer_distribution` on the saved picture, up to its rounding to 8 bits; gradients reach the latents only."""
    m = unified
    m.guidance = GuidanceParams(num_timesteps=3)
    latents, _, _, _ = m.sample_latents(PROMPTS, [0, 1], 112, 112)
    grid = m.latent_grid(112, 112)
    tokens = m.latents_to_tokens(latents).requires_grad_(True)
    questions = [f"does this image show {p}?" for p in PROMPTS]
    log_odds = m.latent_answer_log_odds(tokens, grid, questions, ("yes", "no"))
    probs = m.answer_distribution(m.decode(latents), questions, ["yes", "no"])
    assert torch.allclose(log_odds.detach(), (probs[:, 0] / probs[:, 1]).log(), atol=2e-3)
    log_odds.sum().backward()
    assert tokens.grad is not None and tokens.grad.abs().sum() > 0
    # 32 px is resized to the ViT's minimum (28) by the differentiable bicubic: it runs and differentiates too
    small = m.latents_to_tokens(m.sample_latents(PROMPTS, [0, 1], 32, 32)[0]).requires_grad_(True)
    m.latent_answer_log_odds(small, m.latent_grid(32, 32), questions, ("yes", "no")).sum().backward()
    assert small.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="2 latents but 1 questions"):
        m.latent_answer_log_odds(tokens, grid, questions[:1], ("yes", "no"))


def test_the_guide_takes_unit_rms_steps_up_the_judges_log_odds(unified):
    m = unified
    grid = m.latent_grid(32, 32)
    x0 = torch.randn(2, 4, 64, generator=torch.Generator().manual_seed(3))
    guide = judge_guide(m, PROMPTS, templates_for("shapes"), grid, strength=0.5, until=0.5)
    assert guide(x0, 0.5) is None  # at or below `until`: the plain step
    shift = guide(x0, 0.8)
    assert torch.allclose(shift.pow(2).mean(dim=(1, 2)).sqrt(), torch.tensor([0.5, 0.5]), atol=1e-5)
    assert all(p.grad is None for p in m.model.parameters())  # the weights' gradients stay untouched
    questions = [f"does this image show {p}?" for p in PROMPTS]  # the shapes templates' global question
    with torch.no_grad():
        before = m.latent_answer_log_odds(x0, grid, questions, ("yes", "no"))
        after = m.latent_answer_log_odds(x0 + 1e-3 * shift, grid, questions, ("yes", "no"))
    assert (after > before).all()


def test_guided_samples_differ_from_plain_ones_by_the_guide_alone(unified):
    m = unified
    m.guidance = GuidanceParams(num_timesteps=4, timestep_shift=1.0)
    plain = m.sample_images(PROMPTS, [5, 6], 32, 32)
    factory = guide_factory(m, templates_for("shapes"), m.latent_grid(32, 32), strength=0.3, until=0.0)
    guided = m.sample_images(PROMPTS, [5, 6], 32, 32, guide=factory(PROMPTS))
    assert (guided.latents - plain.latents).abs().max() > 1e-3
    idle = guide_factory(m, templates_for("shapes"), m.latent_grid(32, 32), strength=0.0, until=0.0)
    assert torch.equal(m.sample_images(PROMPTS, [5, 6], 32, 32, guide=idle(PROMPTS)).latents, plain.latents)


def test_answers_and_settings_that_cannot_guide():
    assert guide_answers(templates_for("shapes")) == ("yes", "no")
    assert guide_answers(templates_for("digits")) == ("9", "0")
    with pytest.raises(ConfigError, match="these have none"):
        guide_answers(templates_for("official"))
    with pytest.raises(ConfigError, match="generate.judge_guidance=-0.1"):
        GenerateConfig(prompts="shapes", judge_guidance=-0.1)
    with pytest.raises(ConfigError, match="generate.judge_guidance_until=1.0"):
        GenerateConfig(prompts="shapes", judge_guidance_until=1.0)
    for extra in ("generate.sde_noise=0.7", "generate.source=world"):
        with pytest.raises(ConfigError, match="steers the model's deterministic sampler"):
            load_config(RECIPE, ["generate.judge_guidance=0.1", extra])
    with pytest.raises(ConfigError, match="judge.templates=official asks for free text"):
        load_config(RECIPE, ["generate.judge_guidance=0.1", "judge.mode=text", "judge.templates=official"])
    assert load_config(RECIPE, ["generate.judge_guidance=0.1"]).generate.judge_guidance == 0.1


def test_the_generate_stage_asks_a_guide_for_each_batch(tiny_checkpoint, tmp_path):
    from srum.evaluation.benchmarks import PromptItem
    from srum.generate import generate_stage
    from srum.records import GenerateFolder
    from srum.utils.dist import DistInfo

    model = BagelUnified.from_pretrained(tiny_checkpoint)
    model.set_sampling(num_timesteps=3)
    items = [PromptItem("color", i, p) for i, p in enumerate(["a red circle", "a blue square", "a green triangle"])]
    cfg = GenerateConfig(prompts="shapes", resolution=32, batch_size=2, seed=3, think=False)
    factory = guide_factory(model, templates_for("shapes"), model.latent_grid(32, 32), strength=0.5, until=0.0)
    asked: list[list[str]] = []

    def guide_for(prompts):
        asked.append(list(prompts))
        return factory(prompts)

    latents = {}
    for name, hook in (("plain", None), ("guided", guide_for)):
        generate_stage(model, items, cfg, tmp_path / name, DistInfo(0, 1, 0, None), progress=False, guide_for=hook)
        latents[name] = GenerateFolder(tmp_path / name).all_rows_and_latents()[1]
    assert asked == [["a red circle", "a blue square"], ["a green triangle"]]
    assert (latents["guided"] - latents["plain"]).abs().amax(dim=(1, 2, 3)).min() > 1e-4  # every image steered


def test_distillation_offsets_are_the_guided_step_on_guided_rows_only(unified):
    """Rows with a prompt and t above `until` get −shift/t with shift the guide's at x0_hat = x_t − t·v; a dropped
    prompt (None) or t ≤ until gets 0; the log-odds come back for the guided rows alone."""
    m = unified
    grid, templates = m.latent_grid(32, 32), templates_for("shapes")
    g = torch.Generator().manual_seed(4)
    x_t, v = torch.randn(4, 4, 64, generator=g), torch.randn(4, 4, 64, generator=g)
    t = torch.tensor([0.9, 0.4, 0.7, 0.8])
    prompts = [PROMPTS[0], PROMPTS[1], None, PROMPTS[1]]
    offset, log_odds = guided_velocity_shift(m, x_t, t, v, prompts, templates, grid, strength=0.3, until=0.5)
    assert log_odds.shape == (2,)
    assert torch.equal(offset[1], torch.zeros_like(offset[1])) and torch.equal(offset[2], torch.zeros_like(offset[2]))
    for i in (0, 3):
        shift = judge_guide(m, [prompts[i]], templates, grid, 0.3, 0.5)(x_t[i:i + 1] - t[i] * v[i:i + 1], float(t[i]))
        assert torch.allclose(offset[i], -shift[0] / t[i], atol=1e-5)


def test_a_distillation_step_moves_the_velocity_towards_the_guided_step(unified):
    """One SGD step on judge_distill's loss, the trained model starting equal to its frozen reference: the
    velocity's change on the batch points along the guidance offset (to first order Δv = 2·lr/numel·J·Jᵀ·offset,
    whose inner product with the offset is ≥ 0), and the loss falls."""
    import copy

    from srum.config import ObjectiveKind
    from srum.objectives import srum_loss

    m, reference = unified, copy.deepcopy(unified)
    grid = m.latent_grid(32, 32)
    g = torch.Generator().manual_seed(5)
    x_t, t = torch.randn(2, 4, 64, generator=g), torch.tensor([0.9, 0.7])
    cfg = ObjectiveConfig(kind=ObjectiveKind.judge_distill, constraint="none")
    with torch.no_grad():
        v_ref = reference.velocity(PROMPTS, x_t, t, grid)
    offset, _ = guided_velocity_shift(reference, x_t, t, v_ref, PROMPTS, templates_for("shapes"), grid, 0.3, 0.5)
    v = m.velocity(PROMPTS, x_t, t, grid)
    loss, parts = srum_loss(v, None, torch.ones(2, 4), cfg, v_ref=v_ref, offset=offset)
    assert torch.allclose(loss, offset.pow(2).mean(), atol=1e-6) and float(parts["kl"]) < 1e-10
    loss.backward()
    with torch.no_grad():
        for p in m.model.parameters():
            if p.grad is not None:
                p -= 1.0 * p.grad
        change = m.velocity(PROMPTS, x_t, t, grid) - v.detach()
    cosine = torch.nn.functional.cosine_similarity(change.flatten(), offset.flatten(), dim=0)
    assert cosine > 0.1, cosine
    assert (m.velocity(PROMPTS, x_t, t, grid) - (v_ref + offset)).pow(2).mean() < loss


def test_settings_judge_distill_cannot_train_with():
    flags = ["objective.kind=judge_distill", "objective.constraint=none"]
    cfg = load_config(RECIPE, flags + ["objective.judge_strength=0.3"])
    assert cfg.objective.judge_strength == 0.3 and cfg.generate.images_per_prompt == 2
    assert ("objective: judge_distill (the round's start's velocity moved by its own judge's guidance, strength 0.3 "
            "above t=0.5; no reward map read), constraint=none") in plan(cfg, 2)
    with pytest.raises(ConfigError, match="judge.templates=official, train.zero_stage=2"):
        load_config(RECIPE, flags + ["judge.mode=text", "judge.templates=official"])
    with pytest.raises(ConfigError, match="judge.templates=shapes, train.zero_stage=3"):
        load_config(RECIPE, flags + ["train.zero_stage=3"])
    with pytest.raises(ConfigError, match="objective.judge_strength=0.3 is read by objective.kind=judge_distill only"):
        load_config(RECIPE, ["objective.judge_strength=0.3"])
    with pytest.raises(ConfigError, match="train.start_from=base trains model.path"):
        load_config(RECIPE, flags + ["train.start_from=base"])
