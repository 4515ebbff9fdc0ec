"""`launch/evaluate.py --benchmark t2i-compbench --limit 1` on a tiny BAGEL with tiny random judges, then
`--import-results` and `--compare` on its output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[2]
PROMPTS = ROOT.parent / "shared" / "data" / "t2i-compbench"


def _run(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "launch" / "evaluate.py"), *args]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


@pytest.mark.skipif(not PROMPTS.is_dir(), reason="needs the vendored T2I-CompBench prompt files")
def test_compbench_official_and_vlm_limit_1(tiny_checkpoint, tmp_path):
    tiny = tmp_path / "tiny_judges"
    outs = {}
    for judge in ("official", "vlm"):
        out = outs[judge] = tmp_path / judge
        _run("--checkpoint", str(tiny_checkpoint), "--benchmark", "t2i-compbench", "--prompts", str(PROMPTS),
             "--judge", judge, "--tiny-judges", str(tiny), "--judge-max-new-tokens", "4", "--limit", "1",
             "--size", "64", "--steps", "2", "--out", str(out), "--judge-device", "cpu", "--device", "cpu")
        scores = json.loads((out / "scores.json").read_text())
        assert scores["n_images"] == 8 and list(scores["table"])[0] == "color"
        records = json.loads((out / "images.json").read_text())
        assert all((out / r["compbench_file"]).is_file() and r["question_id"] == 0 for r in records)
        assert (out / "color" / "samples" / "a green bench and a blue bowl_000000.png").is_file()
        assert (out / "scores.md").read_text().startswith("| run | 3d spatial | color | complex |")
    assert all("judge_answer" in r for r in json.loads((outs["vlm"] / "images.json").read_text()))

    # their results back in: every color image gets 0.5
    res = outs["official"] / "color" / "annotation_blip" / "vqa_result.json"
    res.parent.mkdir(parents=True)
    res.write_text(json.dumps([{"question_id": 0, "answer": "0.5000"}]))
    _run("--import-results", str(outs["official"]), "--out", str(outs["official"]))
    scores = json.loads((outs["official"] / "scores.json").read_text())
    assert scores["categories"]["color"] == 0.5 and scores["imported"]["records"] == 1

    table = _run("--compare", str(outs["official"]), str(outs["vlm"])).stdout.splitlines()
    assert table[0].startswith("| run | 3d spatial | color |") and table[2].startswith("| official | ")
    assert table[3].startswith("| vlm | ") and "(" in table[3]
