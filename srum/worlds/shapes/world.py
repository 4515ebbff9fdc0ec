"""ShapesWorld's hooks for the SRUM loop and evaluation (`srum.worlds.interface.World`, registered as `shapes` in
`srum.worlds.registry`): its prompt splits, its exact judge (as a truth score, a training reward source and an
evaluation judge), ground-truth renders of any prompt (the capacity reference), the yes/no questions its tiny model
answers as a self-judge, and the evaluations that need the truth."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from srum.evaluation.benchmarks import PromptItem
from srum.worlds.shapes import oracle
from srum.worlds.shapes.grammar import CATEGORIES as CATEGORIES
from srum.worlds.shapes.grammar import DEPTH, SPATIAL, parse_prompt, stated_values, to_text, variants
from srum.worlds.shapes.layout import sample_scene
from srum.worlds.shapes.render import render

IMAGE_SIZE = 64  # the canvas the renderer, the oracle and the tiny model are tuned for


def prompts(split: str, limit: int | None = None, seed: int = 0) -> list[PromptItem]:
    """The prompts of a split (train / val / test) made from `seed`, `limit` per category."""
    splits = _splits(seed)
    return [PromptItem(c, i, p) for c in CATEGORIES for i, p in enumerate(splits[c][split][:limit])]


@functools.lru_cache(maxsize=2)
def _splits(seed: int) -> dict[str, dict[str, list[str]]]:
    """Made once per process (about 4 s): the start-up check, the round's prompts and every round's evaluation read
    the same splits. Callers copy what they take, never change it."""
    from srum.worlds.shapes.splits import make_splits

    return make_splits(seed)


def truth(images: Sequence[Image.Image], prompts: Sequence[str]) -> np.ndarray:
    """The oracle's score in [0, 1] per image: the fraction of the prompt's requirements met."""
    return oracle.score_batch(images, prompts)


def oracle_scorer(ignore: Sequence[str] = ()):
    from srum.worlds.shapes.reward import OracleScorer

    return OracleScorer(ignore)


def render_truth(prompts: Sequence[str], seeds: Sequence[int], size: int) -> list[Image.Image]:
    """A correct image per prompt: a scene that meets every requirement, drawn with the renderer's jitter."""
    out = []
    for prompt, seed in zip(prompts, seeds, strict=True):
        rng = np.random.default_rng(int(seed))
        out.append(render(sample_scene(parse_prompt(prompt), rng), size, rng))
    return out


def prompt_variants(prompt: str, kinds: Sequence[str]) -> list[str]:
    """`prompt` first, then every prompt of the language that differs only in the attributes `kinds` names (shape,
    color, texture, size, relation, count): the labels hindsight relabelling chooses from (ValueError for an unknown
    kind)."""
    return [prompt] + [to_text(v) for v in variants(parse_prompt(prompt), kinds)[1:]]


def attribute_values(prompt: str, kinds: Sequence[str]) -> list[str]:
    """The values the prompt states for `kinds`, e.g. ["shape=circle", "shape=square", "relation=left"]: what
    `reward.hindsight_balance` evens out between asked prompts and labels."""
    return stated_values(parse_prompt(prompt), kinds)


def judge_templates():
    """The tiny model's own yes/no questions (srum.worlds.shapes.tasks): yes → +1, no → -1. A region is asked
    "does this region show {object}?" for each object phrase of the prompt, and keeps the best."""
    from srum.rewards.judge import JudgeTemplates
    from srum.worlds.shapes import tasks
    from srum.worlds.shapes.judging import object_phrases

    return JudgeTemplates(
        global_question=tasks.global_question("{prompt}"),
        region_question=tasks.region_question("{object}"),
        answers={tasks.YES: 1.0, tasks.NO: -1.0},
        sample_question=tasks.global_question("{prompt}"),
        object_phrases=object_phrases,
    )


def region_proposer(cfg):
    from srum.worlds.shapes.regions import ComponentsProposer

    return ComponentsProposer(cfg)


def eval_judge():
    from srum.worlds.shapes.eval_judge import ShapesOracleJudge

    return ShapesOracleJudge()


def understanding(model, prompts: list[str], seed: int) -> dict:
    from srum.worlds.shapes.understanding import understanding_benchmark

    return understanding_benchmark(model, prompts, seed=seed)


def self_judge_auroc(model, out: Path, records: list[dict]) -> dict:
    from srum.worlds.shapes.understanding import judge_auroc

    return judge_auroc(model, out, records)


def requirement_tag(requirement: str) -> str:
    """`--compare --requirements`: an object by the shape asked (a colour is rarely what fails), a relation by its
    family (spatial, depth, containment), a count as one tag."""
    kind, _, text = requirement.partition(": ")
    if kind == "object":
        return f"object: {parse_prompt(text).groups[0].shape}"
    if kind == "relation":
        relation = parse_prompt(text).relation
        return "relation: " + ("spatial" if relation in SPATIAL else "depth" if relation in DEPTH else "containment")
    return kind
