"""Stage 2b: who scores the training images (`reward.source`), behind the one method the score stage calls.

`self` is SRUM: the model judges its own images. `oracle` asks the prompt world's exact judge the same questions
(an upper bound for what any reward could give, never self-rewarding). `uniform` scores nothing: every image gets
weight 1 (self-distillation). All three feed the same reward map and training path.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from PIL import Image

from srum.config import RewardSource, RunConfig
from srum.models.interface import UnifiedModel
from srum.rewards.judge import Judgement, SelfJudge, templates_for
from srum.rewards.regions import Region
from srum.worlds.registry import world_for


@runtime_checkable
class Scorer(Protocol):
    def judge(self, images: list[Image.Image], prompts: list[str],
              regions_per_image: list[list[Region]]) -> list[Judgement]:
        """One Judgement per image: a global score and one score per region, in [-1, 1]."""
        ...


class UniformScorer:
    """No judgement at all: the reward map of `reward.source=uniform` is 1 everywhere whatever the scores."""

    def judge(self, images: list[Image.Image], prompts: list[str],
              regions_per_image: list[list[Region]]) -> list[Judgement]:
        return [Judgement(None, [None] * len(r), list(r), []) for r in regions_per_image]


def build_scorer(cfg: RunConfig, model: UnifiedModel) -> Scorer:
    """The scorer `cfg.reward.source` names (the oracle of the world behind `generate.prompts`)."""
    source = cfg.reward.source
    if source == RewardSource.self:
        return SelfJudge(model, cfg.judge, templates_for(cfg.judge.template_set))
    if source == RewardSource.uniform:
        return UniformScorer()
    world = world_for(cfg.generate.prompts)
    if world is None:  # load_config rejects this combination; kept for callers that build configs by hand
        raise ValueError(f"reward.source=oracle: generate.prompts={cfg.generate.prompts!r} has no world oracle")
    return world.oracle_scorer()
