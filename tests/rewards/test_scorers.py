"""Training-reward scorers by name: a new scorer is one file plus one registry line, and `reward.source=mix` blends
scorers by weight (checked against hand-computed weighted means)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from srum.config import ConfigError, load_config
from srum.rewards.mix import MixedScorer, weighted_mean
from srum.rewards.regions import build_proposer
from srum.rewards.registry import SCORERS
from srum.rewards.sources import build_scorer
from srum.worlds.shapes.world import render_truth

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "shapes.yaml"
BASE = ["model.path=unused", "generate.prompts=shapes"]

TOY = '''
"""A toy scorer: every image -0.5, every region +0.25, and no opinion on the second region."""
from srum.rewards.judge import Judgement


class Toy:
    def judge(self, images, prompts, regions_per_image):
        return [Judgement(-0.5, [0.25 if k != 1 else None for k in range(len(r))], list(r), ["toy"])
                for r in regions_per_image]


def make(cfg, model):
    return Toy()
'''


@pytest.fixture
def toy(tmp_path, monkeypatch):
    (tmp_path / "toyscorer.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(SCORERS, "toy", "toyscorer:make")
    yield
    sys.modules.pop("toyscorer", None)


def test_weighted_mean_by_hand():
    assert weighted_mean([0.5, None, -1.0], [1.0, 2.0, 3.0]) == pytest.approx((0.5 - 3.0) / 4)
    assert weighted_mean([None, None], [1.0, 1.0]) is None


def test_a_registered_toy_scorer_mixes_with_the_oracle(toy):
    cfg = load_config(RECIPE, [*BASE, "reward.source=mix", "reward.mix.oracle=3", "reward.mix.toy=1"])
    assert cfg.reward.scorers == ["oracle", "toy"]
    scorer = build_scorer(cfg, model=None)
    assert isinstance(scorer, MixedScorer)
    prompts = ["a red square and a yellow triangle", "a green square below a purple triangle"]
    images = render_truth(prompts, [0, 1], 64)
    regions = build_proposer(cfg.regions, world=cfg.generate.prompts).propose(images)
    oracle = build_scorer(load_config(RECIPE, [*BASE, "reward.source=oracle"]), model=None)
    alone = oracle.judge(images, prompts, regions)
    mixed = scorer.judge(images, prompts, regions)
    for a, m, r in zip(alone, mixed, regions):
        assert m.global_score == pytest.approx((3 * a.global_score - 0.5) / 4)
        expected = [(3 * s + 0.25) / 4 if k != 1 else s for k, s in enumerate(a.region_scores)]
        assert np.allclose(m.region_scores, expected)
        assert [x.box_xyxy for x in m.regions] == [x.box_xyxy for x in r] and "toy: toy" in m.raw


@pytest.mark.parametrize("overrides, message", [
    (["reward.source=mix"], "reward.mix names the scorers"),
    (["reward.mix.oracle=1"], "reward.mix names the scorers"),
    (["reward.source=mix", "reward.mix.uniform=1"], "uniform scores nothing"),
    (["reward.source=mix", "reward.mix.oracle=0"], r"reward.mix.oracle=0.0 must be > 0"),
    (["reward.source=hps"], r"reward.source='hps'; expected one of"),
])
def test_bad_scorer_settings_are_named(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(RECIPE, [*BASE, *overrides])
