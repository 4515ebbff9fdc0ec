"""Judge guidance: the model's own judge steers its sampler, so rollouts explore where the judge looks.

At every sampler step above a time threshold, the clean estimate x0_hat = x_t − t·v is moved along the gradient of the
judge's log-odds — log P(best answer) − log P(worst answer) of the global question about the image x0_hat decodes to
(`UnifiedModel.latent_answer_log_odds`) — and the step heads for the moved estimate. The gradient is taken w.r.t.
x0_hat only (not through the velocity network), as universal guidance does with its "forward" step (Bansal et al.
2023, arXiv 2302.07121), and scaled to unit RMS per image so that `strength` is a distance in latent units whatever
the judge's confidence. No world or oracle is involved: the judge is the model being trained, so this stays
self-rewarding. Guided rollouts are better than the sampler's own (docs/reward.md, *Judge guidance*); the guided
step itself is also a training target (`guided_velocity_shift`, objective.kind=judge_distill), which tests whether
the generation side can learn to take it without the judge (on ShapesWorld it takes about 1% of it).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from srum.config import ConfigError
from srum.models.interface import Guide, UnifiedModel
from srum.rewards.judge import JudgeTemplates, box_text


def guide_answers(templates: JudgeTemplates) -> tuple[str, str]:
    """The answers whose log-odds guidance raises: the best- and the worst-scored of the templates' answer tokens.

    Raises:
        ConfigError: the templates have no answer tokens (free-text templates), so there is nothing to differentiate.
    """
    if len(templates.answers) < 2:
        raise ConfigError("generate.judge_guidance needs judge templates with answer tokens (logits mode: digits or "
                          "a world's templates); these have none")
    ranked = sorted(templates.answers, key=templates.answers.__getitem__)
    return ranked[-1], ranked[0]


def judge_questions(templates: JudgeTemplates, prompts: list[str]) -> list[str]:
    """The judge's global question about each prompt, as the judge stage asks it of a whole image."""
    return [templates.global_question.format(prompt=p, object=p, box=box_text((0, 0, 1, 1), 1, 1)) for p in prompts]


def per_image_rms(x: torch.Tensor) -> torch.Tensor:
    """Root mean square over all but the batch dimension, kept broadcastable against x."""
    return x.pow(2).mean(dim=tuple(range(1, x.dim())), keepdim=True).sqrt()


def log_odds_shift(model: UnifiedModel, x0: torch.Tensor, grid: tuple[int, int], questions: list[str],
                   answers: tuple[str, str], strength: float) -> tuple[torch.Tensor, torch.Tensor]:
    """`strength` times the unit-RMS gradient (per image) of the judge's log-odds w.r.t. the clean latents x0, and
    the log-odds themselves (B,). Only x0's gradient is taken: the weights' stay untouched."""
    with torch.enable_grad():
        x0 = x0.detach().requires_grad_(True)
        log_odds = model.latent_answer_log_odds(x0, grid, questions, answers)
        (grad,) = torch.autograd.grad(log_odds.sum(), x0)
    return strength * grad / per_image_rms(grad).clamp_min(1e-12), log_odds.detach()


def judge_guide(model: UnifiedModel, prompts: list[str], templates: JudgeTemplates, grid: tuple[int, int],
                strength: float, until: float) -> Guide:
    """A `Guide` for one batch of prompts: above time `until`, shift x0_hat by `strength` along the unit-RMS gradient
    of the judge's log-odds that the image shows its prompt; at or below it, no shift."""
    questions = judge_questions(templates, prompts)
    answers = guide_answers(templates)

    def guide(x0: torch.Tensor, t: float) -> torch.Tensor | None:
        if t <= until:
            return None
        return log_odds_shift(model, x0, grid, questions, answers, strength)[0]

    return guide


def guided_velocity_shift(model: UnifiedModel, x_t: torch.Tensor, t: torch.Tensor, v: torch.Tensor,
                          prompts: list[str | None], templates: JudgeTemplates, grid: tuple[int, int],
                          strength: float, until: float) -> tuple[torch.Tensor, torch.Tensor]:
    """How judge guidance would change the velocity v at (x_t, t) of each row: −shift/t where the row has a prompt
    and t > until (shift as `judge_guide` takes it at x0_hat = x_t − t·v), 0 elsewhere; and the judge's log-odds
    on the guided rows. This is the target offset of `objective.kind=judge_distill`, which trains the sampler to
    take the guided step itself, per row since a training batch mixes timesteps."""
    rows = [i for i, (p, ti) in enumerate(zip(prompts, t.tolist())) if p is not None and ti > until]
    offset = torch.zeros_like(v)
    if not rows:
        return offset, v.new_zeros(0)
    idx = torch.tensor(rows, device=v.device)
    t_rows = t.to(v.device)[idx].view(-1, *([1] * (v.dim() - 1)))
    x0 = x_t[idx] - t_rows * v[idx]
    shift, log_odds = log_odds_shift(model, x0, grid, judge_questions(templates, [prompts[i] for i in rows]),
                                     guide_answers(templates), strength)
    offset[idx] = -(shift / t_rows).to(v.dtype)
    return offset, log_odds


def guide_factory(model: UnifiedModel, templates: JudgeTemplates, grid: tuple[int, int], strength: float,
                  until: float) -> Callable[[list[str]], Guide]:
    """prompts → their `judge_guide`, as the generate stage asks for one per batch."""
    guide_answers(templates)  # fail at start, not at the first batch
    return lambda prompts: judge_guide(model, prompts, templates, grid, strength, until)
