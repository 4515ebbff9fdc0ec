"""The round report (srum/evaluation/round_report.py): colours of the reward overlay, labelled boxes, categories."""


import numpy as np
import torch
from PIL import Image

from srum.records import GenerateFolder, GenerateRow, JudgeRow, ScoreFolder
from srum.evaluation.round_report import heat, overlay, with_boxes, write_round_report


def test_overlay_is_diverging_red_positive_blue_negative_neutral_zero():
    grey = Image.new("RGB", (4, 2), (128, 128, 128))
    out = np.asarray(overlay(grey, torch.tensor([1.0, 0.0, -1.0, 0.0, 5.0, 0.0, -5.0, 0.0]), (2, 4)), dtype=int)
    red, neutral, blue, clamped_red = out[0, 0], out[0, 1], out[0, 2], out[1, 0]
    assert red[0] > red[2] + 60 and blue[2] > blue[0] + 60
    assert max(neutral) - min(neutral) < 8  # 0 adds no hue: a signed map's zero is not "low"
    assert (clamped_red == red).all()  # values beyond ±1 (never written by a judge) are clamped
    # half image, half colour map
    expect = np.round(255 * (0.5 * 128 / 255 + 0.5 * heat(np.array([1.0]))[0])).astype(int)
    assert (red == expect).all()


def test_boxes_carry_their_scores():
    black = Image.new("RGB", (60, 40), (0, 0, 0))
    out = np.asarray(with_boxes(black, [[2, 2, 58, 38]], [0.62]))
    assert (out[2, 30] == (0, 170, 0)).all()  # the box outline, green for a positive score
    label = out[4:14, 3:30].astype(int)
    greenish = (label[..., 1] > 100) & (label[..., 0] < 60)
    assert greenish.sum() > 10  # "+0.62" drawn (anti-aliased) in the box's colour inside it
    assert not ((np.asarray(with_boxes(black, [[2, 2, 58, 38]], []))[4:14, 3:30, 1] > 100).any())
    unscored = np.asarray(with_boxes(black, [[2, 2, 58, 38]], [None]))
    assert (unscored[2, 30] == (150, 150, 150)).all()


def test_report_samples_every_category_and_has_a_colour_scale(tmp_path):
    rd = tmp_path / "run" / "round1"
    (rd / "generate" / "images").mkdir(parents=True)
    records, rows, maps = [], [], {}
    for job, cat in enumerate(["color"] * 5 + ["spatial"] * 5):
        name = GenerateFolder.image_name(job)
        records.append(GenerateRow(job, cat, job, f"p{job}", seed=job, file=name))
        rows.append(JudgeRow(job, f"p{job}", name, kept=True, global_score=0.5, region_scores=[0.5],
                             boxes=[[0, 0, 8, 8]], raw=[], parse_failures=0, reward=0.7, truth=1.0,
                             trained_prompt="q0" if job == 0 else None, trained_reward=0.9 if job == 0 else None))
        maps[str(job)] = torch.full((4,), 0.7)
    GenerateFolder(rd / "generate").write_chunk(0, records, [Image.new("RGB", (16, 16), (200, 0, 0))] * 10,
                                                torch.zeros(10, 4))
    ScoreFolder(rd / "score").write_chunk(0, rows, maps)
    page = write_round_report(rd, (2, 2), max_images=4).read_text()
    assert page.count("<i>(color)</i>") == 2 and page.count("<i>(spatial)</i>") == 2
    assert "report/scale.png" in page and (rd / "report" / "scale.png").is_file()
    assert "<h1>run · round1</h1>" in page
    assert page.count("trained as") == 1 and "trained as <b>q0</b> · reward 0.90" in page  # hindsight's label
