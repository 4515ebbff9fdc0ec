"""Hindsight relabelling: an image is trained on the variant of its prompt its judge scores best, ties keep the asked
prompt, the row keeps the asked prompt's scores, and training reads the chosen prompt."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from srum.config import RewardConfig, load_config
from srum.records import GenerateFolder, GenerateRow, ScoreFolder
from srum.rewards.hindsight import balance_weights, relabel, value_shares
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


def _words(prompt: str) -> list[str]:
    return prompt.split()


def test_balance_gives_the_labels_the_asked_shares_hand_computed():
    # asked: c and s alike; labels: three s, one c → weights w_s = 2/3, w_c = 2 (3·w_s = w_c, mean 1)
    w = balance_weights(["c", "c", "s", "s"], ["s", "s", "s", "c"], _words, cap=5.0)
    assert w == pytest.approx([2 / 3, 2 / 3, 2 / 3, 2.0], abs=1e-5)
    assert value_shares(["s", "s", "s", "c"], _words, w) == pytest.approx({"s": 0.5, "c": 0.5}, abs=1e-5)
    assert balance_weights(["c", "s"], ["s", "c"], _words, cap=5.0) == pytest.approx([1.0, 1.0])  # already even
    assert balance_weights(["c", "c", "s", "s"], ["s", "s", "s", "c"], _words, cap=1.0) == pytest.approx([1.0] * 4)


def test_balance_matches_values_that_share_an_image_until_the_cap():
    # asked: c and s alike; "c s" carries the labels' only c, so c's share could reach ½ only by silencing the lone
    # s images: the cap stops them at x = 1/cap = ¼, and the mean of 1 over three images gives "c s" 3 − 2x = 2.5
    w = balance_weights(["c", "s", "c s"], ["c s", "s", "s"], _words, cap=4.0)
    assert w == pytest.approx([2.5, 0.25, 0.25], abs=1e-4)
    # an image without values is moved by the scaling only, and the mean stays 1
    w = balance_weights(["c", "c", "s", "s"], ["s", "s", "c", ""], _words, cap=5.0)
    assert sum(w) / len(w) == pytest.approx(1.0) and w[0] == pytest.approx(w[1]) and w[2] > w[3] > w[0]
    with pytest.raises(ValueError, match="cap=0.5 must be ≥ 1"):
        balance_weights(["c"], ["c"], _words, cap=0.5)


def test_training_maps_are_scaled_by_the_balance_of_their_round(caplog):
    from srum.pipeline import balance_labels
    from srum.training import TrainSample

    cfg = load_config(RECIPE, ["model.path=unused", "reward.source=oracle", "reward.hindsight=[shape]",
                               "reward.hindsight_balance=5.0"])
    asked = ["a red circle", "a red circle", "a blue square", "a blue square"]
    labels = ["a red square", "a red square", "a blue square", "a red circle"]  # what the four images show
    samples = [TrainSample(j, label, torch.zeros(4, 2), torch.full((4,), 0.5), asked=a)
               for j, (a, label) in enumerate(zip(asked, labels))]
    with caplog.at_level("INFO", logger="srum.pipeline"):
        out = balance_labels(samples, cfg, 1)
    # shape=circle is half the asked shapes and a quarter of the labels': w_square = 2/3, w_circle = 2
    assert torch.allclose(torch.stack([s.weights for s in out]),
                          torch.tensor([[0.5 * w] * 4 for w in (2 / 3, 2 / 3, 2 / 3, 2)]), atol=1e-5)
    assert [s.prompt for s in out] == labels and "shape=circle 0.500/0.250/0.500" in caplog.text
