"""Score curves: a run's curve.json from its round folders, and the chart files."""

import json

from PIL import Image

from srum.evaluation.curves import compare_curves, with_evaluations
from srum.pipeline import write_curve


def test_write_curve_reads_rounds_and_draws(tmp_path):
    def put(path, obj):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(obj))

    put(tmp_path / "round0" / "eval" / "scores.json", {"overall": 0.30})
    for r, (sec, score, truth) in enumerate([(60.0, 0.32, 0.31), (90.0, 0.35, 0.33)], start=1):
        put(tmp_path / f"round{r}" / "export" / "DONE.json", {"seconds": sec})
        put(tmp_path / f"round{r}" / "eval" / "scores.json", {"overall": score})
        put(tmp_path / f"round{r}" / "score" / "manifest.json", {"reward_truth": {"truth_mean_all": truth}})
    write_curve(tmp_path, 2)
    points = json.loads((tmp_path / "curve.json").read_text())
    assert [(p["round"], p["seconds"], p["drawn_at_seconds"], p["eval_overall"]) for p in points] == [
        (0, 0.0, 0.0, 0.30), (1, 60.0, 0.0, 0.32), (2, 150.0, 60.0, 0.35)]  # cumulative; samples drawn at the start
    assert points[2]["sample_truth_mean"] == 0.33 and Image.open(tmp_path / "curve.png").size == (640, 380)
    out = compare_curves(tmp_path / "both.png", {"a": points, "b": points[:2]})
    assert Image.open(out).size == (640, 380)


def test_separate_evaluations_replace_the_rounds_own_scores():
    """Full-split evaluations at two seeds score rounds 2 and 4 (mean, and each kept for the range); round 0 is the
    base at 0 s; round 1 has none and is left unscored, not kept at its own subset score."""
    points = [{"round": 0, "seconds": 0.0, "eval_overall": 0.5},
              {"round": 1, "seconds": 60.0, "eval_overall": 0.6, "sample_truth_mean": 0.3},
              {"round": 2, "seconds": 150.0, "eval_overall": 0.7},
              {"round": 4, "seconds": 330.0, "eval_overall": None}]
    out = with_evaluations(points, {0: [0.30, 0.32], 1: [], 2: [0.33, 0.36], 4: [0.40]})
    assert [(p["round"], p["seconds"], p["eval_overall"], p["eval_each"]) for p in out] == [
        (0, 0.0, 0.31, [0.30, 0.32]), (1, 60.0, None, None), (2, 150.0, 0.345, [0.33, 0.36]), (4, 330.0, 0.40, [0.40])]
    assert out[1]["sample_truth_mean"] == 0.3 and points[2]["eval_overall"] == 0.7  # the input is left as it was
    assert [p["round"] for p in with_evaluations(points, {2: [0.33]})] == [1, 2, 4]  # no base given: no round 0
