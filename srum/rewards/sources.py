"""Stage 2b: who scores the training images (`reward.source`), behind the one method the score stage calls.

`self` is SRUM: the model judges its own images. `oracle` asks the prompt world's exact judge the same questions
(an upper bound for what any reward could give, never self-rewarding). `uniform` scores nothing: every image gets
weight 1 (self-distillation). `mix` blends several by weight (`reward.mix`). All feed the same reward map and training
path; the names are `srum.rewards.registry.SCORERS`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from PIL import Image

from srum.config import RunConfig
from srum.models.interface import UnifiedModel
from srum.rewards.judge import Judgement, SelfJudge, templates_for
from srum.rewards.regions import Region
from srum.rewards.registry import MIX, scorer_factory
from srum.worlds.registry import world_for


@runtime_checkable
class Scorer(Protocol):
    def judge(self, images: list[Image.Image], prompts: list[str],
              regions_per_image: list[list[Region]]) -> list[Judgement]:
        """One Judgement per image: a global score and one score per region, in [-1, 1] (None: no score)."""
        ...


class UniformScorer:
    """No judgement at all: the reward map of `reward.source=uniform` is 1 everywhere whatever the scores."""

    def judge(self, images: list[Image.Image], prompts: list[str],
              regions_per_image: list[list[Region]]) -> list[Judgement]:
        return [Judgement(None, [None] * len(r), list(r), []) for r in regions_per_image]


def self_judge(cfg: RunConfig, model: UnifiedModel) -> Scorer:
    return SelfJudge(model, cfg.judge, templates_for(cfg.judge.template_set))


def world_oracle(cfg: RunConfig, model: UnifiedModel) -> Scorer:
    world = world_for(cfg.generate.prompts)
    if world is None:  # load_config rejects this combination; kept for callers that build configs by hand
        raise ValueError(f"reward.source=oracle: generate.prompts={cfg.generate.prompts!r} has no world oracle")
    return world.oracle_scorer(list(cfg.reward.oracle_ignore))


def uniform(cfg: RunConfig, model: UnifiedModel) -> Scorer:
    return UniformScorer()


def build_scorer(cfg: RunConfig, model: UnifiedModel) -> Scorer:
    """The scorer `cfg.reward.source` names, or the blend `reward.mix` describes."""
    if cfg.reward.source != MIX:
        return scorer_factory(cfg.reward.source)(cfg, model)
    from srum.rewards.mix import MixedScorer

    return MixedScorer({name: scorer_factory(name)(cfg, model) for name in cfg.reward.mix}, dict(cfg.reward.mix))
