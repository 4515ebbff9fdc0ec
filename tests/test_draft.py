"""objective.kind=draft: the differentiable rollout against the sampler, where its gradient flows, the loss by hand,
one step raising the judge's verdict, and the settings it refuses."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from srum import flow
from srum.config import ConfigError, ObjectiveConfig, load_config
from srum.draft import draft_loss, draft_rollout
from srum.guidance import guide_answers, judge_questions
from srum.models.bagel.config import BagelConfig
from srum.models.bagel.model import Bagel
from srum.models.bagel.sampling import GuidanceParams
from srum.models.bagel.unified import BagelUnified
from srum.models.bagel.vae import BagelVAE
from srum.pipeline import plan
from srum.rewards.judge import templates_for
from srum.worlds.shapes.model import shapes_tokenizer

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "shapes.yaml"
PROMPTS = ["a red circle", "a blue square left of a green circle"]
GRID = (2, 2)


@pytest.fixture
def unified() -> BagelUnified:
    torch.manual_seed(0)
    config = BagelConfig.tiny()
    m = BagelUnified(Bagel(config).eval(), BagelVAE(config.vae_config).eval(), shapes_tokenizer(config))
    m.guidance = GuidanceParams(num_timesteps=4, timestep_shift=2.0, cfg_text_scale=3.0, cfg_interval=(0.4, 1.0))
    return m


def _schedule(m: BagelUnified) -> tuple[torch.Tensor, torch.Tensor]:
    return flow.euler_schedule(m.guidance.num_timesteps, m.guidance.timestep_shift)


def _grad(m: BagelUnified, value: torch.Tensor) -> torch.Tensor:
    m.model.zero_grad(set_to_none=True)
    value.backward()
    return m.model.llm2vae.weight.grad.clone()


def test_rollout_is_the_samplers_image_and_differentiates_only_its_last_steps(unified):
    """The rollout ends where the sampler does from the same noise (guided steps inside cfg_interval, conditional
    outside). With one differentiated step its gradient is that of the last Euler step alone, taken by hand from the
    sampler's x before it; through every step it differs (the earlier steps add theirs)."""
    m = unified
    seeds = [3, 7]
    noise = m.initial_noise(seeds, GRID)
    drawn = m.latents_to_tokens(m.sample_latents(PROMPTS, seeds, 32, 32)[0])
    ts, dts = _schedule(m)
    last = draft_rollout(m, PROMPTS, noise, GRID, ts, dts, grad_steps=1)
    assert last.kl is None
    assert (last.tokens - drawn).abs().max().item() < 1e-4
    g_last = _grad(m, last.tokens.square().sum())

    x = noise
    with torch.no_grad():
        for t, dt in zip(ts[:-1].tolist(), dts[:-1].tolist()):
            x = x - m.guided_velocity(PROMPTS, x, torch.full((2,), t), GRID) * dt
    by_hand = x - m.guided_velocity(PROMPTS, x, ts[-1].repeat(2), GRID) * float(dts[-1])
    g_hand = _grad(m, by_hand.square().sum())
    assert torch.allclose(g_last, g_hand, rtol=1e-4, atol=1e-7) and g_last.abs().sum() > 0

    every = draft_rollout(m, PROMPTS, noise, GRID, ts, dts, grad_steps=3)
    assert torch.allclose(every.tokens, last.tokens)
    assert (_grad(m, every.tokens.square().sum()) - g_last).abs().max() > 1e-3 * g_last.abs().max()
    with pytest.raises(ValueError, match="grad_steps=4: the schedule has 3 steps"):
        draft_rollout(m, PROMPTS, noise, GRID, ts, dts, grad_steps=4)


def test_kl_to_the_reference_is_zero_at_the_start_and_grows_with_drift(unified):
    """The reference's velocity is taken at the trained model's own x_t, so a bias of 0.1 on every velocity (no
    text guidance, whose renorm would rescale it) is a KL proxy of exactly 0.1² on each differentiated step."""
    m = unified
    m.guidance = GuidanceParams(num_timesteps=4, timestep_shift=2.0, cfg_text_scale=1.0)
    reference = copy.deepcopy(m)
    noise = m.initial_noise([1, 2], GRID)
    ts, dts = _schedule(m)
    assert draft_rollout(m, PROMPTS, noise, GRID, ts, dts, 2, reference).kl.item() == 0.0
    with torch.no_grad():
        m.model.llm2vae.bias.add_(0.1)  # every velocity moves by 0.1 in every channel
    drift = draft_rollout(m, PROMPTS, noise, GRID, ts, dts, 2, reference).kl
    assert drift.requires_grad and drift.item() == pytest.approx(0.01, rel=1e-4)


def test_loss_by_hand():
    log_odds = torch.tensor([1.0, -3.0])
    loss, parts = draft_loss(log_odds, None, 0.0)
    assert loss.item() == 1.0 and parts["reward_term"].item() == 1.0 and parts["constraint_term"].item() == 0.0
    assert parts["judge_log_odds"].item() == -1.0 and "kl" not in parts
    loss, parts = draft_loss(log_odds, torch.tensor(0.25), 2.0)
    assert loss.item() == 1.5 and parts["constraint_term"].item() == 0.5 and parts["kl"].item() == 0.25


def test_a_draft_step_raises_the_judges_log_odds_on_the_same_draws(unified):
    """Gradient descent on the loss is ascent on the judge's verdict: one small SGD step on the generation side,
    sized to raise the mean log-odds by 0.01 to first order (lr = 0.01/|g|²), raises those of the same prompts from
    the same noise by about that much; the understanding side, the judge, is untouched."""
    m = unified
    templates = templates_for("shapes")
    questions, answers = judge_questions(templates, PROMPTS), guide_answers(templates)
    noise = m.initial_noise([5, 6], GRID)
    ts, dts = _schedule(m)
    generation = [p for n, p in m.model.named_parameters() if m.is_generation_parameter(n)]
    for n, p in m.model.named_parameters():
        p.requires_grad_(m.is_generation_parameter(n))
    before = m.latent_answer_log_odds(draft_rollout(m, PROMPTS, noise, GRID, ts, dts, 3).tokens, GRID, questions,
                                      answers)
    loss, _ = draft_loss(before, None, 0.0)
    loss.backward()
    understanding = {n: p.clone() for n, p in m.model.named_parameters() if not m.is_generation_parameter(n)}
    lr = 0.01 / sum(float(p.grad.square().sum()) for p in generation if p.grad is not None)
    torch.optim.SGD(generation, lr=lr).step()
    with torch.no_grad():
        after = m.latent_answer_log_odds(draft_rollout(m, PROMPTS, noise, GRID, ts, dts, 3).tokens, GRID,
                                         questions, answers)
    assert 0.005 < float(after.mean() - before.detach().mean()) < 0.02, (before, after)
    assert all(torch.equal(p, understanding[n]) for n, p in m.model.named_parameters() if n in understanding)


DRAFT = ["objective.kind=draft", "objective.constraint=none", "objective.text_dropout=0"]


def test_the_settings_it_refuses_name_the_key():
    cfg = load_config(RECIPE, DRAFT + ["objective.draft_steps=5"])
    assert "gradients through the sampler's last 5 of 30 steps" in plan(cfg, 2)
    assert "last 30 of 30 steps" in plan(load_config(RECIPE, DRAFT), 2)
    with pytest.raises(ConfigError, match="has no flow target for objective.constraint=anchor"):
        load_config(RECIPE, ["objective.kind=draft", "objective.text_dropout=0"])
    with pytest.raises(ConfigError, match="objective.draft_steps=31 exceeds the sampler's 30 steps"):
        load_config(RECIPE, DRAFT + ["objective.draft_steps=31"])
    with pytest.raises(ConfigError, match="would train the judge to approve"):
        load_config(RECIPE, DRAFT + ["train.freeze_und=false"])
    with pytest.raises(ConfigError, match="train.zero_stage=2"):
        load_config(RECIPE, DRAFT + ["train.zero_stage=3"])
    with pytest.raises(ConfigError, match=r"objective.draft_steps=0 must be >= 1"):
        ObjectiveConfig(kind="draft", constraint="none", text_dropout=0.0, draft_steps=0)
    with pytest.raises(ConfigError, match="objective.draft_steps=4 is read by objective.kind=draft only"):
        ObjectiveConfig(draft_steps=4)
