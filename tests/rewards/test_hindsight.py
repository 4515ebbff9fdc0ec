"""Hindsight relabelling: an image is trained on the variant of its prompt its judge scores best, ties keep the asked
prompt, the row keeps the asked prompt's scores, and training reads the chosen prompt."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from srum.config import RewardConfig, load_config
from srum.records import GenerateFolder, GenerateRow, ScoreFolder
from srum.rewards.hindsight import relabel
from srum.rewards.judge import Judgement
from srum.rewards.regions import build_proposer
from srum.rewards.reward_map import build_reward_map
from srum.rewards.sources import build_scorer
from srum.score import judged_rows, score_stage, score_totals
from srum.training import load_training_samples
from srum.utils.dist import DistInfo
from srum.worlds.shapes import world

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "shapes.yaml"
TRUE = "a red circle and a blue square"


class GlobalOnly:
    """A scorer that gives each prompt a fixed global score: the choice rule in isolation."""

    def __init__(self, scores: dict[str, float]) -> None:
        self.scores = scores

    def judge(self, images, prompts, regions_per_image):
        return [Judgement(self.scores[p], [], [], []) for p in prompts]


def test_the_best_variant_wins_the_first_of_equals_and_ties_keep_the_asked_prompt():
    cfg = RewardConfig(source="oracle", drop_zero_global=False)
    scorer = GlobalOnly({"asked": 0.2, "v1": 0.6, "v2": 0.6, "v3": -0.4, "other": 0.2, "same": 0.2})
    variants = {"asked": ["asked", "v3", "v1", "v2"], "other": ["other", "same", "v3"]}

    def make_map(j, image):
        return build_reward_map(j, 8, 8, cfg, (2, 2))

    asked = [make_map(scorer.judge([None], [p], [[]])[0], None) for p in ("asked", "other")]
    out = relabel(scorer, [None, None], ["asked", "other"], [[], []], asked, variants.__getitem__, make_map)
    # official map without regions: 0.5·(g + 1)/2 everywhere → 0.3 for g = 0.2, 0.4 for g = 0.6
    assert out[0].prompt == "v1" and torch.allclose(out[0].reward, torch.full((4,), 0.4))
    assert out[1].prompt is None and torch.allclose(out[1].reward, torch.full((4,), 0.3))  # "same" only ties


def test_score_stage_relabels_a_wrong_shape_and_training_reads_the_new_prompt(tmp_path):
    cfg = load_config(RECIPE, ["model.path=unused", "reward.source=oracle", "reward.hindsight=[shape]",
                               "reward.min_global=1.0"])
    image = world.render_truth([TRUE], [3], 64)[0]
    assert world.truth([image], [TRUE])[0] == 1.0
    asked = ["a red triangle and a blue square", TRUE, "a green circle and a blue square"]  # no shape fixes a colour
    gen = GenerateFolder(tmp_path / "generate")
    (gen.path / "images").mkdir(parents=True)
    rows = [GenerateRow(j, "color", j, p, seed=j, file=gen.image_name(j)) for j, p in enumerate(asked)]
    gen.write_chunk(0, rows, [image] * 3, torch.zeros(3, 16, 2))
    scorer, proposer = build_scorer(cfg, model=None), build_proposer(cfg.regions, world=cfg.generate.prompts)
    variants = lambda p: world.prompt_variants(p, ["shape"])  # noqa: E731
    score_stage(scorer, proposer, cfg.reward, gen.path, tmp_path / "score", (4, 4), DistInfo(0, 1, 0, "gloo"),
                progress=False, truth=world.truth, variants=variants)
    wrong, right, unfixable = judged_rows(tmp_path / "score")
    assert wrong.prompt == asked[0] and wrong.truth == pytest.approx(0.5)
    assert wrong.reward is None and wrong.global_score == pytest.approx(0.0)  # the asked prompt's, dropped (< 1)
    assert wrong.kept and wrong.trained_prompt == TRUE and wrong.trained_reward > 0.5
    assert right.kept and right.trained_prompt is None and right.reward > 0.5
    assert not unfixable.kept and unfixable.trained_prompt is None
    assert score_totals([wrong, right, unfixable])["relabelled"] == 1
    samples = load_training_samples(gen.path, tmp_path / "score", lambda latents: latents)
    assert [(s.job, s.prompt) for s in samples] == [(0, TRUE), (1, TRUE)]
    maps = ScoreFolder(tmp_path / "score").read_maps(0)
    assert torch.equal(maps["0"], maps["1"])  # relabelled, it is judged exactly as the right prompt is
