"""Judge guidance: the model's own judge steers its sampler, so rollouts explore where the judge looks.

At every sampler step above a time threshold, the clean estimate x0_hat = x_t − t·v is moved along the gradient of the
judge's log-odds — log P(best answer) − log P(worst answer) of the global question about the image x0_hat decodes to
(`UnifiedModel.latent_answer_log_odds`) — and the step heads for the moved estimate. The gradient is taken w.r.t.
x0_hat only (not through the velocity network), as universal guidance does with its "forward" step (Bansal et al.
2023, arXiv 2302.07121), and scaled to unit RMS per image so that `strength` is a distance in latent units whatever
the judge's confidence. No world or oracle is involved: the judge is the model being trained, so this stays
self-rewarding. Guided rollouts are better than the sampler's own (README, *Judge guidance*), and training on them
is how the generation side can learn what only guidance drew.
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


def judge_guide(model: UnifiedModel, prompts: list[str], templates: JudgeTemplates, grid: tuple[int, int],
                strength: float, until: float) -> Guide:
    """A `Guide` for one batch of prompts: above time `until`, shift x0_hat by `strength` along the unit-RMS gradient
    of the judge's log-odds that the image shows its prompt; at or below it, no shift."""
    questions = [templates.global_question.format(prompt=p, object=p, box=box_text((0, 0, 1, 1), 1, 1))
                 for p in prompts]
    answers = guide_answers(templates)

    def guide(x0: torch.Tensor, t: float) -> torch.Tensor | None:
        if t <= until:
            return None
        with torch.enable_grad():
            x0 = x0.detach().requires_grad_(True)
            log_odds = model.latent_answer_log_odds(x0, grid, questions, answers)
            (grad,) = torch.autograd.grad(log_odds.sum(), x0)  # only x0's gradient: the weights' stay untouched
        rms = grad.pow(2).mean(dim=tuple(range(1, grad.dim())), keepdim=True).sqrt()
        return strength * grad / rms.clamp_min(1e-12)

    return guide


def guide_factory(model: UnifiedModel, templates: JudgeTemplates, grid: tuple[int, int], strength: float,
                  until: float) -> Callable[[list[str]], Guide]:
    """prompts → their `judge_guide`, as the generate stage asks for one per batch."""
    guide_answers(templates)  # fail at start, not at the first batch
    return lambda prompts: judge_guide(model, prompts, templates, grid, strength, until)
