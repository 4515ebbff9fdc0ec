"""Teaching the model's judge a stronger judge's verdicts (launch/teach_judge.py).

Why: a self-rewarding run can be no better than the model's judgement of its own pictures (on ShapesWorld the tiny
model's AUROC is 0.6–0.76), and the objectives that differentiate the judge (DRaFT, judge guidance) cannot be handed
the stronger judge itself: a pixel oracle or a 72B VLM has no gradient to the picture. A judge taught that judge's
scores on the model's own images is the upper bound of that route: the same objective with a better judge. A run
rewarded by it is not self-rewarding (its judge learnt from a teacher); it says how much the judge's quality limits
what the update can do.

Only parameters that generation never reads are taught (`UnifiedModel.is_judge_only_parameter`), so the taught
checkpoint draws exactly the images its source drew and any later change is the judge's doing. The loss is binary
cross-entropy between the judge's log-odds (its best against its worst answer to the global question, as DRaFT and
judge guidance read it) and the teacher's score in [0, 1], so P(yes) learns to estimate the share of the prompt met.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm
from transformers import get_cosine_schedule_with_warmup

from srum.evaluation.reward_truth import reward_truth
from srum.models.interface import UnifiedModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    """One image, the judge question about it and the teacher's score of it in [0, 1]."""

    image: Image.Image
    question: str
    score: float


def judge_only_parameters(model: UnifiedModel) -> list[torch.nn.Parameter]:
    """The parameters teaching may change, set trainable; every other parameter is frozen."""
    params = []
    for name, p in model.trainable_module().named_parameters():
        p.requires_grad_(model.is_judge_only_parameter(name))
        if p.requires_grad:
            params.append(p)
    if not params:
        raise ValueError("the model names no judge-only parameters: nothing can be taught without changing its images")
    return params


def teach_judge(model: UnifiedModel, verdicts: Sequence[Verdict], answers: tuple[str, str], steps: int,
                batch_size: int = 32, lr: float = 1e-4, seed: int = 0, warmup_steps: int = 0) -> list[float]:
    """AdamW on the judge-only parameters for `steps` steps of `batch_size` verdicts (each pass over the verdicts in
    a new order drawn from `seed`), cosine learning rate after `warmup_steps`; returns the loss of every step.

    Raises:
        FloatingPointError: the loss became NaN or infinite (naming the step), before any update from it.
    """
    if not verdicts or steps < 1 or batch_size < 1:
        raise ValueError(f"teaching needs verdicts, steps >= 1 and batch_size >= 1 (got {len(verdicts)}, {steps}, "
                         f"{batch_size})")
    params = judge_only_parameters(model)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    schedule = get_cosine_schedule_with_warmup(opt, warmup_steps, steps)
    generator = torch.Generator().manual_seed(seed)
    order: list[int] = []
    losses = []
    module = model.trainable_module().train()
    try:
        for step in tqdm(range(steps), desc="teach judge", dynamic_ncols=True):
            if len(order) < batch_size:
                order += torch.randperm(len(verdicts), generator=generator).tolist()
            batch, order = [verdicts[i] for i in order[:batch_size]], order[batch_size:]
            log_odds = model.answer_log_odds([v.image for v in batch], [v.question for v in batch], answers)
            target = torch.tensor([v.score for v in batch], dtype=torch.float32, device=log_odds.device)
            loss = F.binary_cross_entropy_with_logits(log_odds.float(), target)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"teach_judge: the loss is {loss.item()} at step {step}; nothing was saved")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
            losses.append(loss.item())
    finally:
        module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
    return losses


@torch.no_grad()
def judge_agreement(model: UnifiedModel, verdicts: Sequence[Verdict], answers: tuple[str, str],
                    batch_size: int = 64) -> dict:
    """How well the judge agrees with the teacher on `verdicts`: the cross-entropy that teaching lowers, and (as
    `reward_truth` reports a round's reward) its mean P(answers[0]) with that P's AUROC for the images the teacher
    scores 1 and its Spearman against the teacher's scores."""
    log_odds = torch.cat([model.answer_log_odds([v.image for v in verdicts[i:i + batch_size]],
                                                [v.question for v in verdicts[i:i + batch_size]], answers).float().cpu()
                          for i in range(0, len(verdicts), batch_size)])
    scores = torch.tensor([v.score for v in verdicts], dtype=torch.float32)
    agreement = reward_truth(torch.sigmoid(log_odds).tolist(), scores.tolist())
    return {"cross_entropy": float(F.binary_cross_entropy_with_logits(log_odds, scores)),
            **{k: agreement[k] for k in ("images", "perfect", "auroc", "spearman")},
            "mean_p_yes": agreement["reward_mean"]}
