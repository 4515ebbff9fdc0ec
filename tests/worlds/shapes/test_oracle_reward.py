"""ShapesWorld's oracle as a reward source: its judgement builds the same map as hand-made scores."""

import numpy as np
import pytest
import torch

from srum.config import RegionsConfig, RewardConfig
from srum.rewards.regions import Region
from srum.worlds.shapes.regions import ComponentsProposer
from srum.rewards.reward_map import build_reward_map, official_reward_map
from srum.worlds.registry import world_for
from srum.worlds.shapes.render import render
from srum.worlds.shapes.reward import OracleScorer
from srum.worlds.shapes.scene import Obj, Scene

# A red circle on the left (asked for) and a blue square on the right (the prompt asks for a green one).
SCENE = Scene((Obj("circle", "red", x=0.27, y=0.5, size=0.3), Obj("square", "blue", x=0.73, y=0.5, size=0.3)))
PROMPT = "a red circle on the left of a green square"


def _box_of_colour(image, rgb_channel: int) -> tuple[int, int, int, int]:
    a = np.asarray(image).astype(int)
    other = [c for c in range(3) if c != rgb_channel]
    ys, xs = np.nonzero((a[..., rgb_channel] > 150) & (a[..., other].max(axis=2) < 120))
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def test_oracle_judgement_by_hand():
    image = render(SCENE, 64)
    red, blue = _box_of_colour(image, 0), _box_of_colour(image, 2)
    regions = [Region(red, None, 1), Region(blue, None, 1), Region((0, 0, 4, 4), None, 16)]
    (j,) = OracleScorer().judge([image], [PROMPT], [regions])
    # Requirements: the red circle (met), the green square (not met), the relation (not met: no green square).
    assert j.global_score == 2 * (1 / 3) - 1
    assert j.region_scores == [1.0, -1.0, 0.0]  # asked-for object, wrong object, background corner


def test_oracle_ignoring_shape_takes_any_shape_of_the_asked_colour():
    image = render(SCENE, 64)
    red, blue = _box_of_colour(image, 0), _box_of_colour(image, 2)
    regions = [Region(red, None, 1), Region(blue, None, 1)]
    prompt = "a red triangle on the left of a blue circle"  # both colours right, both shapes wrong
    (full,) = OracleScorer().judge([image], [prompt], [regions])
    (blind,) = OracleScorer(["shape"]).judge([image], [prompt], [regions])
    assert full.global_score == -1.0 and full.region_scores == [-1.0, -1.0]
    assert blind.global_score == 1.0 and blind.region_scores == [1.0, 1.0]  # objects and relation met
    (colourless,) = OracleScorer(["color"]).judge([image], [PROMPT], [regions])
    assert colourless.global_score == 1.0 and colourless.region_scores == [1.0, 1.0]  # the blue square passes
    with pytest.raises(ValueError, match=r"reward.oracle_ignore: \['colour'\] are not attributes"):
        OracleScorer(["colour"])


def test_oracle_source_builds_the_hand_map():
    image = render(SCENE, 64)
    regions = ComponentsProposer(RegionsConfig(proposer="world", max_regions=4, min_area_frac=0.01)).propose(
        [image])[0]
    (j,) = OracleScorer().judge([image], [PROMPT], [regions])
    cfg = RewardConfig(drop_zero_global=False)
    got = build_reward_map(j, 64, 64, cfg, grid=(4, 4))
    # The same map from scores written by hand: +1 on the red circle's box, −1 on the blue square's, g = −1/3.
    # (The proposer finds the two objects; the left one is the circle.)
    hand = [(r.box_xyxy, 1.0 if (r.box_xyxy[0] + r.box_xyxy[2]) / 2 < 32 else -1.0) for r in regions]
    assert sorted(s for _, s in hand) == [-1.0, 1.0]
    want = official_reward_map(64, 64, hand, -1 / 3)
    want = torch.nn.functional.interpolate(want[None, None], size=(4, 4), mode="bilinear", align_corners=False)
    torch.testing.assert_close(got, want.reshape(16))


def test_world_registry_gives_shapes_hooks_and_no_world_for_files():
    world = world_for("shapes")
    renders = world.render_truth(["a red circle", "two blue squares"], [0, 1], 64)
    assert world.truth(renders, ["a red circle", "two blue squares"]).tolist() == [1.0, 1.0]
    assert world_for("/data/T2I-CompBench/examples/dataset") is None


def test_oracle_judge_gives_its_reasons():
    from srum.worlds.shapes.eval_judge import ShapesOracleJudge

    (d,) = ShapesOracleJudge().judge([render(SCENE, 64)], [PROMPT], ["spatial"])
    assert d["score"] == 1 / 3
    assert [ok for _, ok in d["requirements"]] == [True, False, False]  # red circle; green square; the relation
    assert d["requirements"][0][0].startswith("object: ") and len(d["seen"]) == 2


def test_oracle_parses_an_image_judged_under_many_prompts_once(monkeypatch):
    from srum.worlds.shapes import oracle

    image, other = render(SCENE, 64), render(Scene((Obj("triangle", "green", x=0.5, y=0.5, size=0.4),)), 64)
    red, blue = _box_of_colour(image, 0), _box_of_colour(image, 2)
    regions = [Region(red, None, 1), Region(blue, None, 1)]
    prompts = [PROMPT, "a red circle on the left of a blue square", "a red square", "a green triangle"]
    alone = [OracleScorer().judge([im], [p], [regions])[0]
             for im, p in zip([image, image, image, other], prompts)]
    calls = []
    parse = oracle.parse_image
    monkeypatch.setattr(oracle, "parse_image", lambda im: calls.append(im) or parse(im))
    together = OracleScorer().judge([image, image, image, other], prompts, [regions] * 4)
    assert len(calls) == 2  # one parse per distinct image
    assert [(j.global_score, j.region_scores) for j in together] == [(j.global_score, j.region_scores) for j in alone]
    assert [j.global_score for j in together] == [2 / 3 - 1, 1.0, -1.0, 1.0]  # by hand: 1/3, all, none, all met
