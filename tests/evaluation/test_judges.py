"""Judges: parsers and geometry by hand, and each judge's plumbing on tiny random models (numbers meaningless)."""

from __future__ import annotations

import math

import numpy as np
import torch
import pytest
from PIL import Image

from srum.evaluation import judges as J
from srum.evaluation.judges import clip_score, geometry, prompt_parsing, vlm
from srum.evaluation.tiny_judges import make_tiny_judges


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_judges(tmp_path_factory.mktemp("tiny_judges"))


def _images(n: int, size: int = 48) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


@pytest.mark.parametrize("text, expected", [
    ('{"score": 85, "explanation": "red cube present"}', 85),
    ('```json\n{"score": 72, "explanation": "ok"}\n```', 72),
    ('Here you go: {"score": 40, "explanation": "missing dog"} thanks', 40),
    ('I would say "score": 85 because the cat is there', 85),
    ("{'score': 91, 'explanation': 'single quotes'}", 91),  # not JSON: the regex fallback
    ('{"score": "64", "explanation": "string"}', 64),
    ('{"score": 100.0}', 100),
    ("the image is nice", None),
    ("", None),
    ('{"score": 140}', None),  # outside 0-100
    ('{"score": true}', None),
])
def test_parse_vlm_score(text, expected):
    assert vlm.parse_vlm_score(text) == expected


def test_noun_phrases_and_relations():
    assert prompt_parsing.noun_phrases("a green bench and a blue bowl") == ["a green bench", "a blue bowl"]
    assert prompt_parsing.noun_phrases("The fluffy cat is on the left of the soft pillow.") == ["the fluffy cat", "the soft pillow"]
    assert prompt_parsing.blip_question("A Green bench.") == "a green bench?"
    assert prompt_parsing.find_relation("a bee on the right of a refrigerator") == ("bee", "on the right of", "refrigerator")
    assert prompt_parsing.find_relation("a girl on the top of a frog") == ("girl", "on the top of", "frog")
    assert prompt_parsing.find_relation("a cat behind a boy") == ("cat", "behind", "boy")
    assert prompt_parsing.find_relation("a red apple") is None
    assert prompt_parsing.count_phrases("two toys and three refrigerators") == [(2, "toys"), (3, "refrigerators")]
    assert prompt_parsing.count_phrases("one turtle") == [(1, "turtle")]


def test_relation_score_by_hand():
    a, b = [0, 0, 10, 10], [100, 0, 110, 10]  # b 100 px right of a, same row, no overlap
    assert geometry.relation_score("on the left of", a, b, 512) == 1.0
    assert geometry.relation_score("on the right of", a, b, 512) == 0.0
    assert geometry.relation_score("on the top of", a, b, 512) == 0.0
    assert geometry.relation_score("next to", a, b, 512) == 1.0
    far = [400, 400, 410, 410]  # 400 px off on both axes: 150 / 400
    assert geometry.relation_score("near", a, far, 512) == pytest.approx(150 / 400)
    # overlapping boxes, IoU = 50 / 150: left-of holds but scores 0.1 / IoU
    assert geometry.relation_score("on the left of", [0, 0, 10, 10], [5, 0, 15, 10], 512) == pytest.approx(0.1 / (50 / 150))
    # 3D proxy: box1's bottom lower (nearer); IoU 50/150 < 0.5 → IoU / 0.5
    front, back = [0, 10, 10, 30], [5, 10, 15, 20]
    iou = 50 / 250  # overlap 5 × 10 px; areas 200 and 100
    assert geometry.relation_score("in front of", front, back, 512) == pytest.approx(iou / 0.5)
    assert geometry.relation_score("behind", front, back, 512) == 0.0
    assert geometry.relation_score("hidden by", back, front, 512) == pytest.approx(iou / 0.5)


def test_numeracy_nms_counts_overlapping_detections_once():
    from srum.evaluation.judges.official import NMS_IOU
    from srum.utils.boxes import nms

    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=torch.float32)
    assert nms(boxes, torch.tensor([0.9, 0.8, 0.7]), NMS_IOU).tolist() == [0, 2]  # IoU 81/119 > 0.5
    assert nms(boxes[:0], torch.zeros(0), NMS_IOU).tolist() == []


def test_parse_judge_paths_and_missing_folder(tmp_path):
    assert J.parse_judge_paths("blip=/a, clip=/b") == {"blip": "/a", "clip": "/b"}
    with pytest.raises(ValueError, match="NAME=DIR"):
        J.parse_judge_paths("blip")
    with pytest.raises(FileNotFoundError, match="--judge-paths vlm=DIR"):
        J.build_judge("vlm", paths={})
    with pytest.raises(FileNotFoundError, match="no config.json"):
        J.build_judge("vlm", paths={"vlm": tmp_path})
    judge = J.build_judge("official", paths={})  # models load on first use
    with pytest.raises(FileNotFoundError, match="--judge-paths blip=DIR"):
        judge.judge(_images(1), ["a red cube"], ["color"])


@pytest.mark.parametrize("failure_score", ["official", "exclude"])
def test_vlm_judge_tiny(tiny, failure_score):
    judge = J.build_judge("vlm", paths=tiny, max_new_tokens=4, failure_score=failure_score)
    rows = J.judge_batch(judge, _images(2), ["a red cube", "two cats"], ["color", "numeracy"])
    assert len(rows) == 2
    for r in rows:  # a random model's answer: whatever it is, it is parsed, or counted as a failure
        assert isinstance(r["judge_answer"], str)
        if r["parse_failed"]:
            assert r["score"] == (-0.01 if failure_score == "official" else None)
        else:
            assert r["score"] == r["judge_score_100"] / 100
    assert judge.parse_failures == sum(r["parse_failed"] for r in rows)


def test_vlm_judge_split_over_devices(tiny):
    """device="split" loads through accelerate's device map (here: every layer on the CPU) and still answers."""
    judge = J.build_judge("vlm", paths=tiny, max_new_tokens=2, device="split")
    assert str(judge.device) == "cpu"
    assert isinstance(judge.answer(_images(1)[0], "a red cube"), str)


def test_vlm_judge_counts_failures(tiny, monkeypatch):
    judge = J.build_judge("vlm", paths=tiny, max_new_tokens=2)
    answers = iter(['```json\n{"score": 80, "explanation": "fine"}\n```', "no idea"])
    monkeypatch.setattr(judge, "answer", lambda image, prompt: next(answers))
    rows = judge.judge(_images(2), ["a", "b"])
    assert [r["judge_score_100"] for r in rows] == [80, -1] and [r["score"] for r in rows] == [0.8, -0.01]
    assert judge.parse_failures == 1


def test_local_clip_score_tiny(tiny):
    import torch
    from transformers import CLIPModel, CLIPProcessor

    metric = clip_score.local_clip_score(CLIPModel.from_pretrained(tiny["clip"]), CLIPProcessor.from_pretrained(tiny["clip"]))
    imgs = [torch.from_numpy(np.array(im)).permute(2, 0, 1) for im in _images(2)]
    metric.update(imgs, ["a red cube", "a blue ball"])
    value = float(metric.compute())
    assert math.isfinite(value) and 0 <= value <= 100
    judge = J.build_judge("official", paths=tiny)
    per_image = judge.clip_scores(_images(2), ["a red cube", "a blue ball"])
    assert np.mean([s * 100 for s in per_image]) == pytest.approx(max(value, 0), abs=1e-3) or value == 0


def test_official_judge_tiny(tiny):
    judge = J.build_judge("official", paths=tiny)
    cats = ["color", "texture", "non_spatial", "spatial", "3d_spatial", "numeracy", "complex"]
    prompts = ["a green bench and a blue bowl", "a plastic toy and a glass bottle", "A person is looking at a rainbow.",
               "a giraffe next to a lamp", "a dog in front of a desk", "two boys and three cats",
               "The fluffy cat is on the left of the soft pillow."]
    rows = judge.judge(_images(len(cats)), prompts, cats)
    assert [r["metric"] for r in rows] == ["blip_vqa", "blip_vqa", "clip", "detector_spatial", "detector_spatial",
                                           "detector_count", "complex_mean"]
    assert all(0 <= r["score"] <= 1 for r in rows)
    # BLIP-VQA: the product of P(yes) over the noun phrases
    probs = judge.blip_yes_probs(_images(2)[:1] * 2, ["a green bench?", "a blue bowl?"])
    assert rows[0]["score"] == pytest.approx(float(probs[0] * probs[1]), rel=1e-3)  # batches pad differently
    parts = rows[-1]["parts"]
    assert set(parts) == {"blip_vqa", "clip", "spatial"}
    assert rows[-1]["score"] == pytest.approx(sum(parts.values()) / 3)
    boxes = judge.detect(_images(1)[0], ["dog", "desk"])
    assert len(boxes) == 2 and all(b.shape[1:] == (4,) and len(b) == len(s) for b, s in boxes)
    with pytest.raises(ValueError, match="no metric"):
        judge.judge(_images(1), ["x"], ["weird"])
    # a batch with no non-spatial prompt, and a query longer than OWL's 16-position text table
    assert judge.clip_scores([], []) == []
    long_query = "the very fluffy and extremely soft grey and white striped cat with long whiskers"
    assert len(judge.detect(_images(1)[0], [long_query])) == 1


def test_eval_judge_names_match_the_config():
    from srum.config import EVAL_JUDGES
    from srum.evaluation.judges import JUDGES

    assert set(JUDGES) == set(EVAL_JUDGES)
