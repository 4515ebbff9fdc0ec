"""`launch/curves.py --evals/--base`: rounds scored by separate evaluation folders found by glob."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def _put(folder: Path, overall: float | None) -> None:
    folder.mkdir(parents=True)
    if overall is not None:
        (folder / "scores.json").write_text(json.dumps({"overall": overall}))


def _curves(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "launch" / "curves.py"), *args], capture_output=True, text=True)


def test_curves_from_evaluation_folders(tmp_path):
    run = tmp_path / "runs" / "low"
    run.mkdir(parents=True)
    (run / "curve.json").write_text(json.dumps([{"round": r, "seconds": 60.0 * r, "eval_overall": None}
                                                for r in (1, 2)]))
    _put(tmp_path / "val-base-s0", 0.30)
    _put(tmp_path / "val-base-s1", 0.32)
    _put(tmp_path / "val-low-r2-s0", 0.34)
    evals, base = str(tmp_path / "val-{run}-r{round}-s*"), str(tmp_path / "val-base-s*")
    done = _curves(str(tmp_path / "c.png"), f"seed 1={run}", "--evals", evals, "--base", base)
    assert done.returncode == 0, done.stderr
    assert Image.open(tmp_path / "c.png").size == (640, 380)
    _put(tmp_path / "val-low-r1-s0", None)  # an evaluation still running: no curve from half the numbers
    failed = _curves(str(tmp_path / "d.png"), f"seed 1={run}", "--evals", evals)
    assert failed.returncode != 0 and "val-low-r1-s0/scores.json not found" in failed.stderr
    assert not (tmp_path / "d.png").exists()
    assert "needs {round}" in _curves(str(tmp_path / "e.png"), f"a={run}", "--evals", "x-{run}").stderr
