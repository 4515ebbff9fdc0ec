"""What a prompt world offers the loop and evaluation, by name (`generate.prompts=shapes`, `--benchmark shapes`).

A world is a module (registered in `srum.worlds.registry`) that draws its own prompts and knows the truth about
them: an exact judge of images, a scorer that answers the self-judge's questions exactly (the `oracle` reward
source, an upper bound), correct renders (the capacity reference), the questions its own tiny model answers as a
self-judge. Generic code calls these and names no world.

Optional hooks, for worlds whose tiny model was taught their questions (`launch/evaluate.py --understanding` and
`--self-judge` say so when a world lacks them):
    understanding(model, prompts, seed) -> dict        the model's yes/no accuracy on renders of the prompts
    self_judge_auroc(model, out, records) -> dict      how well the model's own judgement separates correct images
and, for hindsight relabelling (`reward.hindsight`), the prompts an image may be relabelled with:
    prompt_variants(prompt, kinds) -> list[str]        the prompt first, then those differing only in `kinds`
    attribute_values(prompt, kinds) -> list[str]       e.g. ["shape=circle", "relation=left"] (reward.hindsight_balance)
and, for `launch/evaluate.py --compare --requirements`, finer tags than the requirement's kind:
    requirement_tag(text) -> str                        e.g. "object: circle" for "object: a yellow circle"
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from srum.evaluation.benchmarks import PromptItem
    from srum.evaluation.judges.base import Judge
    from srum.config import RegionsConfig
    from srum.rewards.judge import JudgeTemplates
    from srum.rewards.regions import RegionProposer
    from srum.rewards.sources import Scorer


@runtime_checkable
class World(Protocol):
    CATEGORIES: tuple[str, ...]
    IMAGE_SIZE: int  # the side, in pixels, its images are drawn and judged at

    def prompts(self, split: str, limit: int | None = None) -> list[PromptItem]:
        """The split's prompts (train / val / test), at most `limit` per category, in a fixed order."""

    def truth(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> np.ndarray:
        """The exact score in [0, 1] of each image for its prompt."""

    def oracle_scorer(self, ignore: Sequence[str] = ()) -> Scorer:
        """A training-reward scorer that answers the self-judge's questions exactly (`reward.source=oracle`), not
        checking the attributes `ignore` names (`reward.oracle_ignore`; ValueError for one it does not know)."""

    def render_truth(self, prompts: Sequence[str], seeds: Sequence[int], size: int) -> list[Image.Image]:
        """A correct image per prompt (`generate.source=world`: the supervised capacity reference)."""

    def judge_templates(self) -> JudgeTemplates:
        """The self-judge questions the world's own tiny model was taught (`judge.templates=<world name>`)."""

    def region_proposer(self, cfg: RegionsConfig) -> RegionProposer:
        """Its own region proposer (`regions.proposer=world`), exact and cheap for its images."""

    def eval_judge(self) -> Judge:
        """The evaluation judge (`eval.judge=<world name>`): exact scores, with the reason for each."""
