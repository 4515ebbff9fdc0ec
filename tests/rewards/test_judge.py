"""The self-judge's arithmetic and parsing, with a scripted stand-in for the model (srum.md §1.4).

The fake implements only the two understanding calls with fixed outputs: these tests check what the judge does
with probabilities and texts (expectations, crops, batching, retries, fallbacks), not any model.
"""

import logging

import pytest
import torch
from PIL import Image

from srum.config import ConfigError, JudgeConfig, JudgeMode
from srum.worlds.registry import WORLDS
from srum.rewards.judge import (
    DIGIT_TEMPLATES,
    OFFICIAL_TEMPLATES,
    TEMPLATES,
    SelfJudge,
    box_text,
    crop_box,
    expected_scores,
    parse_answer_value,
    parse_global_score,
    parse_region_scores,
    templates_for,
)
from srum.rewards.regions import Region
from srum.worlds.shapes import tasks

PROMPT = "a red circle and a blue square"


def _region(box) -> Region:
    return Region(box_xyxy=box, mask=None, area=(box[2] - box[0]) * (box[3] - box[1]))


class ProbModel:
    """answer_distribution returns P(first answer) from a table keyed by a substring of the question."""

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table
        self.calls: list[tuple[list[tuple[int, int]], list[str], list[str]]] = []

    def generate_text(self, images, questions, max_new_tokens=64):
        raise AssertionError("logits mode must not generate text")

    def answer_distribution(self, images, questions, answers):
        self.calls.append(([im.size for im in images], list(questions), list(answers)))
        rows = [next(p for key, p in self.table.items() if key in q) for q in questions]
        return torch.tensor(rows, dtype=torch.float64)


class TextModel:
    """generate_text answers from per-kind queues (global vs region question); the last answer repeats."""

    def __init__(self, global_answers: list[str], region_answers: list[str]) -> None:
        self.queues = {"global": list(global_answers), "region": list(region_answers)}
        self.calls: list[tuple[str, int]] = []

    def _next(self, kind: str) -> str:
        q = self.queues[kind]
        return q.pop(0) if len(q) > 1 else q[0]

    def generate_text(self, images, questions, max_new_tokens=64):
        out = []
        for q in questions:
            kind = "region" if "Region ID" in q else "global"
            self.calls.append((kind, max_new_tokens))
            out.append(self._next(kind))
        return out

    def answer_distribution(self, images, questions, answers):
        raise AssertionError("text mode must not read answer distributions")


class SamplingTextModel(TextModel):
    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.temperatures: list[float | None] = []
        self.seeds: list[int | None] = []

    def generate_text(self, images, questions, max_new_tokens=64, temperature=None, seed=None):
        self.temperatures.append(temperature)
        self.seeds.append(seed)
        return super().generate_text(images, questions, max_new_tokens)


def _image(w=64, h=64) -> Image.Image:
    return Image.new("RGB", (w, h), (255, 255, 255))


# ---------------------------------------------------------------------------------------------------- logits mode


def test_logits_judge_shapes_expectation_max_over_objects_and_crop():
    model = ProbModel({
        "image show": [0.8, 0.2],  # 0.8·(+1) + 0.2·(−1) = 0.6
        "region show a red circle": [0.3, 0.7],  # −0.4
        "region show a blue square": [0.9, 0.1],  # 0.8 → the region keeps max(−0.4, 0.8) = 0.8
    })
    cfg = JudgeConfig(mode=JudgeMode.logits, templates="shapes", batch_size=2, region_margin=0.1)
    judge = SelfJudge(model, cfg, templates_for("shapes"))
    [j] = judge.judge([_image()], [PROMPT], [[_region((10, 10, 30, 30))]])
    assert j.global_score == pytest.approx(0.6)
    assert j.region_scores == [pytest.approx(0.8)]
    assert j.parse_failures == 0 and len(j.raw) == 3
    assert j.raw[0] == "yes=0.800 no=0.200"
    # 3 questions in batches of 2: two forwards, answers in template order.
    assert [len(c[1]) for c in model.calls] == [2, 1]
    assert model.calls[0][2] == ["yes", "no"]
    # The region is shown as its crop: a 20-px box with margin round(0.1·20) = 2 each side → 24×24.
    assert model.calls[0][0] == [(64, 64), (24, 24)]
    assert model.calls[0][1][1] == "does this region show a red circle?"


def test_logits_judge_digits_expectation():
    # Digit k ↦ −1 + 2k/9. Uniform over 0-9: symmetric values → 0. One-hot on "7": −1 + 14/9 = 5/9.
    # Region: 0.5 on "0" and 0.5 on "9" → 0.5·(−1) + 0.5·(+1) = 0.
    uniform = [0.1] * 10
    seven = [0.0] * 10
    seven[7] = 1.0
    ends = [0.5] + [0.0] * 8 + [0.5]
    model = ProbModel({"layout": uniform, "region of it": ends})
    judge = SelfJudge(model, JudgeConfig(mode=JudgeMode.logits, templates="digits"), DIGIT_TEMPLATES)
    [j] = judge.judge([_image()], ["a cat"], [[_region((0, 0, 32, 32))]])
    assert j.global_score == pytest.approx(0.0, abs=1e-6)
    assert j.region_scores == [pytest.approx(0.0, abs=1e-6)]
    assert expected_scores(torch.tensor([seven]), list(DIGIT_TEMPLATES.answers.values())).item() == pytest.approx(5 / 9)


def test_logits_judge_empty_box_dropped_and_no_global():
    model = ProbModel({"region show": [1.0, 0.0]})
    cfg = JudgeConfig(mode=JudgeMode.logits, templates="shapes", global_layout=False)
    [j] = SelfJudge(model, cfg, templates_for("shapes")).judge(
        [_image()], ["a red circle"], [[_region((5, 5, 5, 20)), _region((0, 0, 10, 10))]])
    assert j.global_score is None
    assert j.region_scores == [None, pytest.approx(1.0)]  # an empty box has nothing to show


def test_shapes_templates_match_the_taught_questions():
    t = templates_for("shapes")
    assert t.global_question.format(prompt=PROMPT) == tasks.global_question(PROMPT)
    assert t.region_question.format(prompt=PROMPT, object="a red circle") == tasks.region_question("a red circle")
    assert t.object_phrases(PROMPT) == ["a red circle", "a blue square"]
    assert t.object_phrases("three green triangles") == ["a green triangle"]


# ---------------------------------------------------------------------------------------------------- text parsing


def test_parse_global_score():
    assert parse_global_score("Score: 0.7\nReason: good") == 0.7
    assert parse_global_score("Score: -0.5 then Score: 0.9") == -0.5  # the first one
    assert parse_global_score("<think>Score: 0.1 maybe</think>\n**Score:** .8") == 0.8  # after the last </think>
    assert parse_global_score("Score: +1") == 1.0
    assert parse_global_score("the layout is fine") is None
    assert parse_global_score("") is None


def test_parse_region_scores():
    text = (
        "Region ID: 1\nIdentified Object: cat\nScore: 0.8\n\n"
        "Region ID: 2\nIdentified Object: table\nScore: -0.3 (or Score: 0.5)\n\n"
        "Identified Object: no id here\nScore: 0.9\n\n"  # no Region ID: ignored
        "Region ID: 3\nIdentified Object: lamp\n\nScore: 0.4"  # score in a separate paragraph: dropped (official)
    )
    assert parse_region_scores(text) == {1: 0.8, 2: -0.3}
    assert parse_region_scores("") == {}
    assert parse_region_scores("Region ID: 1\nScore: none") == {}


def test_parse_answer_value_and_box_helpers():
    assert parse_answer_value(" Yes.", {"yes": 1.0, "no": -1.0}) == 1.0
    assert parse_answer_value("maybe", {"yes": 1.0}) is None
    assert box_text((16, 0, 64, 32), 64, 64) == "[0.25, 0.00, 1.00, 0.50]"
    assert crop_box((10, 10, 30, 20), 64, 64, 0.1) == (8, 9, 32, 21)  # dx = round(2.0) = 2, dy = round(1.0) = 1
    assert crop_box((0, 0, 100, 10), 64, 64, 0.5) == (0, 0, 64, 15)  # clamped to the image
    assert crop_box((30, 5, 10, 9), 64, 64, 0.1) is None


# ---------------------------------------------------------------------------------------------------- text mode


GOOD_GLOBAL = "<think>left and right look right</think>\nScore: 0.7\nReason: as asked"
GOOD_REGION = "Region ID: 1\nIdentified Object: red circle\nScore: -0.35"


def test_text_judge_good_answers():
    model = TextModel([GOOD_GLOBAL], [GOOD_REGION])
    cfg = JudgeConfig(mode=JudgeMode.text, max_global_tokens=11, max_regional_tokens=22)
    [j] = SelfJudge(model, cfg, OFFICIAL_TEMPLATES).judge([_image()], [PROMPT], [[_region((0, 0, 32, 32))]])
    assert j.global_score == pytest.approx(0.7)
    assert j.region_scores == [pytest.approx(-0.35)]
    assert j.parse_failures == 0
    assert j.raw == [GOOD_GLOBAL, GOOD_REGION]
    assert sorted(model.calls) == [("global", 11), ("region", 22)]


def test_text_judge_retry_recovers_and_is_counted(caplog):
    model = TextModel(["I think it is fine.", GOOD_GLOBAL], ["Region ID: 1\nIdentified Object: cat", GOOD_REGION])
    cfg = JudgeConfig(mode=JudgeMode.text, max_retries=3)
    with caplog.at_level(logging.DEBUG, logger="srum.rewards.judge"):
        [j] = SelfJudge(model, cfg, OFFICIAL_TEMPLATES).judge([_image()], [PROMPT], [[_region((0, 0, 32, 32))]])
    assert j.global_score == pytest.approx(0.7) and j.region_scores == [pytest.approx(-0.35)]
    assert j.parse_failures == 0
    assert len(model.calls) == 4  # each question asked twice
    assert "retries=2" in caplog.text and "parse_failures=0" in caplog.text


def test_text_judge_unparseable_fallbacks(caplog):
    # Empty answers every time: global → 0.0 (official), region → dropped; 1 + max_retries attempts each.
    model = TextModel([""], ["garbage"])
    cfg = JudgeConfig(mode=JudgeMode.text, max_retries=2)
    with caplog.at_level(logging.INFO, logger="srum.rewards.judge"):
        [j] = SelfJudge(model, cfg, OFFICIAL_TEMPLATES).judge([_image()], [PROMPT], [[_region((0, 0, 32, 32))]])
    assert j.global_score == 0.0
    assert j.region_scores == [None]
    assert j.parse_failures == 2
    assert len(model.calls) == 6
    assert "stage=judge" in caplog.text and "parse_failures=2" in caplog.text and "retries=4" in caplog.text


def test_text_judge_clamp():
    answers = (["Score: 1.7"], ["Region ID: 1\nScore: -2"])
    img, reg = [_image()], [[_region((0, 0, 32, 32))]]
    [j] = SelfJudge(TextModel(*answers), JudgeConfig(clamp_scores=False), OFFICIAL_TEMPLATES).judge(img, [PROMPT], reg)
    assert j.global_score == pytest.approx(1.7) and j.region_scores == [pytest.approx(-2.0)]  # official: no clamp
    [j] = SelfJudge(TextModel(*answers), JudgeConfig(clamp_scores=True), OFFICIAL_TEMPLATES).judge(img, [PROMPT], reg)
    assert j.global_score == 1.0 and j.region_scores == [-1.0]


def test_text_judge_samples_on_retry_when_the_model_allows():
    model = SamplingTextModel(["nothing", GOOD_GLOBAL], [GOOD_REGION])
    cfg = JudgeConfig(mode=JudgeMode.text, max_retries=2, retry_temperature=0.7, global_layout=True)
    SelfJudge(model, cfg, OFFICIAL_TEMPLATES).judge([_image()], [PROMPT], [[_region((0, 0, 32, 32))]])
    assert model.temperatures == [None, 0.7, None]  # global greedy, global retry sampled, region greedy
    assert model.seeds[1] == 1  # the retry's own seed: a second retry would sample differently


def test_text_judge_think_instruction_and_sample_level():
    model = TextModel(["Overall Impression: fine\nScore: 0.4\nReason: ok"], [GOOD_REGION])
    questions = []
    orig = model.generate_text
    model.generate_text = lambda ims, qs, n=64: (questions.extend(qs), orig(ims, qs, n))[1]
    cfg = JudgeConfig(mode=JudgeMode.text, think=True, sample_level_only=True)
    [j] = SelfJudge(model, cfg, OFFICIAL_TEMPLATES).judge([_image(32, 16)], [PROMPT], [[_region((0, 0, 8, 8))]])
    assert len(questions) == 1 and questions[0].startswith(OFFICIAL_TEMPLATES.think_instruction)
    assert j.global_score is None
    assert [r.box_xyxy for r in j.regions] == [(0, 0, 32, 16)] and j.region_scores == [pytest.approx(0.4)]


# ---------------------------------------------------------------------------------------------------- config


def test_template_registry_matches_config():
    assert set(TEMPLATES) == {"official", "digits"}
    for name in [*TEMPLATES, *WORLDS]:
        mode = JudgeMode.text if name == "official" else JudgeMode.logits
        JudgeConfig(templates=name, mode=mode)
        assert templates_for(name).global_question
    assert JudgeConfig(mode=JudgeMode.text).template_set == "official"  # None resolves by mode
    assert JudgeConfig(mode=JudgeMode.logits).template_set == "digits"
    assert templates_for(None, JudgeMode.logits) is DIGIT_TEMPLATES
    assert templates_for(None) is OFFICIAL_TEMPLATES
    with pytest.raises(ConfigError, match="official.*digits.*shapes"):
        JudgeConfig(templates="nope")
    with pytest.raises(ConfigError, match="judge.mode=text"):
        JudgeConfig(templates="official", mode=JudgeMode.logits)
    with pytest.raises(ValueError, match="single-token answers"):
        SelfJudge(ProbModel({}), JudgeConfig(mode=JudgeMode.logits, templates="digits"), OFFICIAL_TEMPLATES)
