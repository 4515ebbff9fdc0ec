"""`launch/evaluate.py --benchmark shapes --limit` end to end on a tiny random checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from srum.cli.evaluate import oversubscribed
from srum.evaluation.report import category_scores

ROOT = Path(__file__).resolve().parents[2]


def test_evaluate_shapes_limit(tiny_checkpoint, tmp_path):
    out = tmp_path / "eval"
    cmd = [sys.executable, str(ROOT / "launch" / "evaluate.py"), "--checkpoint", str(tiny_checkpoint),
           "--benchmark", "shapes", "--split", "val", "--out", str(out), "--limit", "1", "--steps", "3",
           "--understanding", "--self-judge"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    scores = json.loads((out / "scores.json").read_text())
    assert scores["benchmark"] == "shapes" and scores["split"] == "val" and scores["n_images"] == 8
    assert list(scores["categories"]) == ["color", "shape", "texture", "spatial", "3d_spatial", "numeracy",
                                          "non_spatial", "complex"]
    records = json.loads((out / "images.json").read_text())
    assert scores["categories"] == pytest.approx(category_scores(records))
    assert scores["overall"] == pytest.approx(sum(scores["categories"].values()) / 8)
    assert all((out / r["file"]).is_file() for r in records)
    assert scores["understanding"]["n_questions"] == 16
    assert 0 <= scores["understanding"]["balanced_accuracy"] <= 1
    assert "<table>" in (out / "report.html").read_text()

    # --rejudge scores the saved images again (here: after a record's score was tampered with) and nothing else
    tampered = [{**r, "score": 0.123} for r in records]
    (out / "images.json").write_text(json.dumps(tampered))
    subprocess.run([sys.executable, str(ROOT / "launch" / "evaluate.py"), "--rejudge", "--out", str(out)],
                   check=True, capture_output=True, text=True)
    again = json.loads((out / "scores.json").read_text())
    assert [r["score"] for r in json.loads((out / "images.json").read_text())] == [r["score"] for r in records]
    assert again["overall"] == pytest.approx(scores["overall"]) and again["understanding"] == scores["understanding"]
    assert again["rejudged"] == {"judge": "shapes", "previous_overall": pytest.approx(scores["overall"])}

    # --rejudge --self-judge: the checkpoint that drew the images judges them again, as it did when it drew them
    subprocess.run([sys.executable, str(ROOT / "launch" / "evaluate.py"), "--rejudge", "--self-judge", "--out",
                    str(out)], check=True, capture_output=True, text=True)
    own = json.loads((out / "scores.json").read_text())["self_judge"]
    assert own["checkpoint"] == str(tiny_checkpoint) and own["n_images"] == 8
    assert own["mean_p_yes"] == pytest.approx(scores["self_judge"]["mean_p_yes"], abs=1e-6)
    assert [r["self_judge_p_yes"] for r in json.loads((out / "images.json").read_text())] == pytest.approx(
        [r["self_judge_p_yes"] for r in records], abs=1e-6)
    gone = subprocess.run([sys.executable, str(ROOT / "launch" / "evaluate.py"), "--rejudge", "--self-judge",
                           "--out", str(out), "--checkpoint", str(tmp_path / "missing")],
                          capture_output=True, text=True)
    assert gone.returncode != 0 and gone.stderr.strip().splitlines()[-1] == (
        f"evaluate.py: --self-judge: checkpoint {tmp_path / 'missing'} is not a folder (pass --checkpoint)")


def test_judge_guidance_steers_the_evaluated_sampler(tiny_checkpoint, tmp_path):
    """The same prompts and seeds drawn with and without judge guidance: other images, and the setting recorded."""
    runs = {}
    for name, extra in (("plain", []), ("guided", ["--judge-guidance", "0.5", "--judge-guidance-until", "0.0"])):
        out = tmp_path / name
        subprocess.run([sys.executable, str(ROOT / "launch" / "evaluate.py"), "--checkpoint", str(tiny_checkpoint),
                        "--benchmark", "shapes", "--split", "val", "--out", str(out), "--limit", "1", "--steps", "3",
                        "--procs", "1", *extra], check=True, capture_output=True, text=True)
        runs[name] = (json.loads((out / "scores.json").read_text()), out)
    assert runs["plain"][0]["judge_guidance"] is None
    assert runs["guided"][0]["judge_guidance"] == {"strength": 0.5, "until": 0.0, "templates": "shapes"}
    records = json.loads((runs["plain"][1] / "images.json").read_text())
    changed = [(runs["plain"][1] / r["file"]).read_bytes() != (runs["guided"][1] / r["file"]).read_bytes()
               for r in records]
    assert len(changed) == 8 and any(changed)
    bad = subprocess.run([sys.executable, str(ROOT / "launch" / "evaluate.py"), "--checkpoint", str(tiny_checkpoint),
                          "--benchmark", "shapes", "--out", str(tmp_path / "o"), "--judge-guidance", "-1"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and bad.stderr.strip().splitlines() == [
        "evaluate.py: --judge-guidance -1.0 must be >= 0 and --judge-guidance-until 0.5 in [0, 1)"]


def test_category_scores_by_hand():
    recs = [{"category": "a", "score": 1.0}, {"category": "b", "score": 0.0}, {"category": "a", "score": 0.5}]
    assert category_scores(recs) == {"a": 0.75, "b": 0.0}


def test_bad_arguments_fail_in_one_line_before_loading(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "launch" / "evaluate.py"), "--checkpoint", str(tmp_path / "nope"),
                          "--benchmark", "shapes", "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert run.returncode != 0 and run.stderr.strip().splitlines() == [
        f"evaluate.py: --checkpoint {tmp_path / 'nope'} is not a folder"]


@pytest.mark.integration
def test_two_ranks_evaluate_like_one(tiny_checkpoint, tmp_path):
    """Under torchrun the images are shared out across ranks; seeds belong to images, so the result is the same."""
    args = ["--checkpoint", str(tiny_checkpoint), "--benchmark", "shapes", "--split", "val", "--limit", "2",
            "--steps", "3", "--batch-size", "3"]
    one = [sys.executable, str(ROOT / "launch" / "evaluate.py"), *args, "--procs", "1", "--out", str(tmp_path / "one")]
    two = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "launch" / "evaluate.py"), *args, "--out", str(tmp_path / "two")]
    # a plain launch shares the images over two processes by itself
    auto = [sys.executable, str(ROOT / "launch" / "evaluate.py"), *args, "--procs", "2", "--out", str(tmp_path / "auto")]
    for cmd in (one, two, auto):
        run = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert run.returncode == 0, run.stderr[-3000:]
    records = [json.loads((tmp_path / d / "images.json").read_text()) for d in ("one", "two", "auto")]
    assert len(records[0]) == 16 and records[0] == records[1] == records[2]  # same order, seeds and scores
    for r in records[0]:
        assert (tmp_path / "one" / r["file"]).read_bytes() == (tmp_path / "two" / r["file"]).read_bytes()


def test_oversubscribed_cpu_threads_are_warned_of():
    # 2 × 2 threads on 2 cores: the case measured 24× slower; one thread a process, or a core each, is fine.
    said = oversubscribed(2, "2", 2)
    assert said.startswith("2 processes × OMP_NUM_THREADS=2 threads exceed the 2 CPU cores")
    assert said.endswith("set OMP_NUM_THREADS=1 or fewer --procs")
    assert oversubscribed(8, "2", 4).endswith("OMP_NUM_THREADS=1 or fewer --procs")
    assert oversubscribed(2, "1", 2) is None and oversubscribed(2, "2", 4) is None
    assert oversubscribed(2, "", 2) is None and oversubscribed(2, "4", None) is None  # unknown: nothing to say
