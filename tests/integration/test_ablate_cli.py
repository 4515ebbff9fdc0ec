"""`launch/ablate.py` end to end: two variants on a micro budget (beside a run holding DeepSpeed's default port),
then a rerun that skips them."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_two_variant_ablation(tiny_checkpoint, tmp_path):
    if shutil.which("deepspeed") is None:
        pytest.skip("the deepspeed launcher is not on PATH")
    cmd = [sys.executable, str(ROOT / "launch" / "ablate.py"), str(ROOT / "recipes" / "shapes.yaml"),
           "--out", str(tmp_path / "ablate"), "--eval-seeds", "0,1", "--reseed", "5:6",
           "--variants", "srum", "self_distill",  # the overrides that follow are the recipe's, not variant names
           f"model.path={tiny_checkpoint}", "generate.limit_per_category=1", "generate.num_timesteps=3",
           "train.max_steps=2", "train.save_every=0", "eval.limit_per_category=1", "log.progress=false"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with contextlib.ExitStack() as stack:  # DeepSpeed's default rendezvous port taken, as by a run beside this one
        taken = stack.enter_context(socket.socket())
        with contextlib.suppress(OSError):  # already taken by something else: the same situation
            taken.bind(("127.0.0.1", 29500))
            taken.listen()
        first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, cwd=ROOT)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-12000:]
    table = (tmp_path / "ablate" / "ablation.md").read_text().splitlines()
    assert [row.split(" | ")[0] for row in table[2:]] == ["| base", "| srum", "| self_distill"]
    # Every run, at the recipe's training seeds and reseeded, evaluated with both seeds: the round's own evaluation
    # (seed 0) and one more (seed 1).
    for run in ("srum", "self_distill", "srum-seed5", "self_distill-seed5"):
        assert (tmp_path / "ablate" / run / "eval-seed1" / "scores.json").is_file()
        manifest = json.loads((tmp_path / "ablate" / run / "test-seed0" / "manifest.json").read_text())
        assert manifest["config"]["split"] == "test"
    assert yaml.safe_load((tmp_path / "ablate" / "srum-seed5" / "config.yaml").read_text())["train"]["seed"] == 5
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in table]
    spread, trained, versus, test, test_versus, minutes = (cells[0].index(h) for h in (
        "evaluation-seed spread", "training-seed spread", "vs base (paired 95%)", "test", "test vs base (paired 95%)",
        "minutes"))
    assert all(0 <= float(row[test]) <= 1 for row in cells[2:]) and not cells[2][test_versus]
    # Understanding on the test split's questions: both variants freeze the judge, so every run keeps the base's.
    understood = cells[0].index("understanding")
    assert 0 <= float(cells[2][understood]) <= 1 and {row[understood] for row in cells[2:]} == {cells[2][understood]}
    assert json.loads((tmp_path / "ablate" / "srum-seed5" / "understanding-test.json").read_text())["n_questions"] > 0
    assert all(re.fullmatch(r"[+-]\d\.\d{3} \[[+-]\d\.\d{3}, [+-]\d\.\d{3}\]", row[test_versus]) for row in cells[3:])
    assert all(row[spread] for row in cells[2:]) and all(row[trained] for row in cells[3:])  # spreads in every row
    # Each run against the base, paired over prompts (delta [low, high]), and its wall time; the base has neither.
    assert not cells[2][versus] and all(re.fullmatch(r"[+-]\d\.\d{3} \[[+-]\d\.\d{3}, [+-]\d\.\d{3}\]", row[versus])
                                        and float(row[minutes]) > 0 for row in cells[3:])
    # self_distill drew nothing: it links the srum variant's samples (same model, prompts and seeds).
    drawn, linked = (tmp_path / "ablate" / v / "round1" / "generate" for v in ("srum", "self_distill"))
    assert yaml.safe_load((tmp_path / "ablate" / "self_distill" / "config.yaml").read_text())["generate"][
        "reuse_from"] == str(drawn)
    images = sorted(p.relative_to(drawn) for p in drawn.glob("images/*.png"))
    assert images and images == sorted(p.relative_to(linked) for p in linked.glob("images/*.png"))
    assert all((drawn / p).read_bytes() == (linked / p).read_bytes() for p in images)
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, cwd=ROOT)
    assert again.returncode == 0 and again.stderr.count("done, skipped") == 4
