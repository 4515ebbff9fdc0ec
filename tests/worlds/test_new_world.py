"""A second prompt world is one folder plus one registry line: "dots" (a coloured disc on white), written here as a
module of its own, registered, and run through configuration, prompt loading, the generate stage (its correct
renders), the score stage (its oracle as the training reward, its truth recorded) and evaluation judging, with no
change to the loop."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch

from srum.config import load_config
from srum.evaluation.benchmarks import load_prompt_source
from srum.evaluation.judges import build_judge
from srum.generate import WorldRenders, generate_stage
from srum.records import GenerateFolder
from srum.rewards.judge import templates_for
from srum.rewards.regions import build_proposer
from srum.rewards.sources import build_scorer
from srum.score import judged_rows, score_stage
from srum.utils.dist import DistInfo
from srum.worlds.interface import World
from srum.worlds.registry import WORLDS, world_for

from ..conftest import tiny_shapes_bagel

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "shapes.yaml"

DOTS = '''
"""Dots: one coloured disc on a white canvas; the prompt names its colour."""
import numpy as np
from PIL import Image, ImageDraw

from srum.evaluation.benchmarks import PromptItem
from srum.rewards.judge import Judgement, JudgeTemplates
from srum.rewards.regions import Region, with_box_end

CATEGORIES = ("color",)
IMAGE_SIZE = 64
COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 170, 30)}
SPLITS = {"train": ["red", "blue", "green"], "val": ["green", "red"], "test": ["blue"]}


def prompts(split, limit=None):
    return [PromptItem("color", i, f"a {c} dot") for i, c in enumerate(SPLITS[split][:limit])]


def colour_of(image):
    """The palette colour nearest the mean of the non-white pixels; None for a blank image."""
    rgb = np.asarray(image.convert("RGB"), dtype=float).reshape(-1, 3)
    ink = rgb[(rgb < 200).any(axis=1)]
    if not len(ink):
        return None
    return min(COLOURS, key=lambda c: float(((np.array(COLOURS[c]) - ink.mean(axis=0)) ** 2).sum()))


def truth(images, prompts):
    return np.array([float(f"a {colour_of(im)} dot" == p) for im, p in zip(images, prompts)])


class Oracle:
    def judge(self, images, prompts, regions_per_image):
        return [Judgement(2 * float(truth([im], [p])[0]) - 1,
                          [2 * float(truth([im.crop(r.box_xyxy)], [p])[0]) - 1 for r in regions], list(regions), [])
                for im, p, regions in zip(images, prompts, regions_per_image)]


def oracle_scorer(ignore=()):
    if ignore:
        raise ValueError(f"reward.oracle_ignore: the dots oracle checks only the colour (got {list(ignore)})")
    return Oracle()


def render_truth(prompts, seeds, size):
    out = []
    for p, seed in zip(prompts, seeds):
        x, y = np.random.default_rng(seed).integers(16, size - 16, 2)
        image = Image.new("RGB", (size, size), "white")
        ImageDraw.Draw(image).ellipse([x - 10, y - 10, x + 10, y + 10], fill=COLOURS[p.split()[1]])
        out.append(image)
    return out


def judge_templates():
    return JudgeTemplates(global_question="is this {prompt}?", region_question="is this {object}?",
                          answers={"yes": 1.0, "no": -1.0})


class InkBox:
    """One region per image: the pixels that are not white."""

    def __init__(self, cfg):
        self.cfg = cfg

    def propose(self, images):
        out = []
        for image in images:
            ink = (np.asarray(image.convert("RGB")) < 200).any(axis=2)
            ys, xs = np.nonzero(ink)
            box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
            out.append(with_box_end([Region(box, ink, int(ink.sum()))] if len(xs) else [], self.cfg.box_end))
        return out


def region_proposer(cfg):
    return InkBox(cfg)


class Exact:
    name = "dots"

    def score(self, images, prompts):
        return truth(images, prompts)


def eval_judge():
    return Exact()
'''


@pytest.fixture
def dots(tmp_path, monkeypatch):
    """The dots world as a package folder on the path, plus its registry line."""
    folder = tmp_path / "dotsworld"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "world.py").write_text(textwrap.dedent(DOTS))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(WORLDS, "dots", "dotsworld.world")
    yield world_for("dots")
    for name in [m for m in sys.modules if m.startswith("dotsworld")]:
        del sys.modules[name]


def test_a_registered_world_runs_through_the_loop_stages(dots, tmp_path):
    assert isinstance(dots, World)
    cfg = load_config(RECIPE, ["model.path=unused", "generate.prompts=dots", "generate.source=world",
                               "reward.source=oracle", "generate.images_per_prompt=2", "generate.batch_size=4",
                               "eval.prompts=dots", "eval.judge=dots", "judge.templates=dots"])
    items = load_prompt_source(cfg.generate.prompts, cfg.generate.split)
    assert [it.prompt for it in items] == ["a red dot", "a blue dot", "a green dot"]
    assert templates_for("dots").global_question == "is this {prompt}?"

    from srum.models.bagel.unified import BagelUnified

    unified = BagelUnified(*tiny_shapes_bagel())
    one = DistInfo(rank=0, world_size=1, local_rank=0, backend=None)
    gen, score = tmp_path / "run" / "generate", tmp_path / "run" / "score"
    generate_stage(WorldRenders(unified, dots.render_truth), items, cfg.generate, gen, one, progress=False)
    latents, posterior = GenerateFolder(gen).read_latents_and_posterior(0, 4)  # renders are encodings
    assert torch.equal(latents, posterior.sample([r.seed for r in GenerateFolder(gen).read_rows(0)]))
    grid = unified.latent_grid(64, 64)
    proposer = build_proposer(cfg.regions, world=cfg.generate.prompts)
    score_stage(build_scorer(cfg, unified), proposer, cfg.reward, gen, score, grid, one,
                progress=False, truth=dots.truth)
    rows = judged_rows(score)
    assert len(rows) == 6 and all(r.truth == 1.0 and r.global_score == 1.0 for r in rows)
    assert all(r.kept and r.region_scores and set(r.region_scores) == {1.0} for r in rows)

    judge = build_judge(cfg.eval.judge)
    wrong = dots.render_truth(["a red dot"], [0], 64)
    assert judge.score(wrong, ["a blue dot"]).tolist() == [0.0]


def test_world_names_are_checked_against_the_registry(dots):
    with pytest.raises(Exception, match="generate.source=world needs a prompt world"):
        load_config(RECIPE, ["model.path=unused", "generate.prompts=nowhere.json", "generate.source=world"])
    with pytest.raises(Exception, match=r"eval.judge='nowhere'"):
        load_config(RECIPE, ["model.path=unused", "eval.judge=nowhere"])
    load_config(RECIPE, ["model.path=unused", "generate.prompts=dots", "reward.source=oracle"])
