"""`launch/repair.py` end to end on a hand-written round of a tiny random model: which images it re-draws, the
share of tokens it holds, and what it writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from srum.config import load_config, save_config
from srum.models.bagel.unified import BagelUnified
from srum.records import GenerateFolder, GenerateRow, JudgeRow, ScoreFolder
from srum.worlds.registry import world_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_repair_redraws_failed_images_around_their_accepted_regions(tiny_checkpoint, tmp_path):
    run = tmp_path / "run"
    cfg = load_config(ROOT / "recipes" / "shapes.yaml", [f"model.path={tiny_checkpoint}", "generate.resolution=32",
                                                         "generate.num_timesteps=3", f"output.dir={run}"])
    save_config(cfg, run / "config.yaml")
    prompts = [it.prompt for it in world_for("shapes").prompts("train", limit=1)][:4]
    model = BagelUnified.from_pretrained(tiny_checkpoint)
    drawn = model.sample_images(prompts, [0, 1, 2, 3], 32, 32)
    gen, score = GenerateFolder(run / "round1" / "generate"), ScoreFolder(run / "round1" / "score")
    rows = [GenerateRow(i, "color", i, p, i, GenerateFolder.image_name(i)) for i, p in enumerate(prompts)]
    gen.write_chunk(0, rows, drawn.images, drawn.latents)
    # Images 0–2 failed with one accepted region, the top-left quarter (a quarter of the tokens); image 1 is also
    # perfect, image 2 has no accepted region, so only 0 and 3 are re-drawn.
    truth, accepted = [0.5, 1.0, 0.5, 0.0], [[1.0], [1.0], [-1.0], [0.4]]
    judged = [JudgeRow(r.job, r.prompt, r.file, True, 0.0, s, [[0, 0, 16, 16]], ["x"], 0, 0.5, t)
              for r, s, t in zip(rows, accepted, truth)]
    score.write_chunk(0, judged, {})
    out = tmp_path / "repair"
    done = subprocess.run([sys.executable, str(ROOT / "launch" / "repair.py"), "--run", str(run), "--tries", "2",
                           "--batch-size", "1", "--threads", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == summary["failed_in_round"] == 2 and summary["tries"] == 2
    assert summary["original_mean"] == pytest.approx(0.25) and summary["held_tokens_share"] == pytest.approx(0.25)
    for mode in ("held", "fresh"):
        assert 0 <= summary[mode]["perfect"] <= summary[mode]["images_with_a_perfect_try"] <= 1
        assert summary[mode]["gain"] == pytest.approx(summary[mode]["mean"] - 0.25)
    assert summary["held_vs_fresh"]["prompts"] == 2
    # Neither re-drawn image has a rejected region: the whole comparison is the "without" part's.
    assert summary["with_a_rejected_region"] is None
    assert summary["without_a_rejected_region"]["images"] == 2
    assert summary["without_a_rejected_region"]["held"] == summary["held"]
    with Image.open(out / "grid.png") as grid:  # original, held and fresh rows of the first batch, scaled 2×
        assert grid.size == (2 * 32, 3 * 2 * 32)
    empty = subprocess.run([sys.executable, str(ROOT / "launch" / "repair.py"), "--run", str(run), "--round", "2"],
                           capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert empty.returncode != 0 and empty.stderr.strip().splitlines()[-1].startswith("repair.py:")
