"""The score stage: ranks share the generated chunks (chunk k to rank k mod world), each judged chunk is written once
and skipped on a rerun, and the manifest's totals count every judged image on disk; here with ShapesWorld's oracle
scoring its own correct renders, so every kept image's reward is known."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from srum.config import load_config
from srum.records import GenerateFolder, GenerateRow, ScoreFolder
from srum.rewards.regions import build_proposer
from srum.rewards.sources import build_scorer
from srum.score import judged_rows, score_stage, score_totals
from srum.utils.dist import DistInfo
from srum.worlds.shapes import world

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "shapes.yaml"


def test_ranks_share_chunks_and_totals_count_everything(tmp_path):
    cfg = load_config(RECIPE, ["model.path=unused", "reward.source=oracle"])
    items = world.prompts("train", limit=1)[:5]
    gen = GenerateFolder(tmp_path / "generate")
    (gen.path / "images").mkdir(parents=True)
    rows = [GenerateRow(j, it.category, it.index, it.prompt, seed=j, file=gen.image_name(j))
            for j, it in enumerate(items)]
    images = world.render_truth([r.prompt for r in rows], [r.seed for r in rows], 64)
    for k in range(3):  # chunks of 2, 2 and 1 images
        gen.write_chunk(k, rows[2 * k:2 * k + 2], images[2 * k:2 * k + 2], torch.zeros(len(rows[2 * k:2 * k + 2]), 1))
    scorer, proposer = build_scorer(cfg, model=None), build_proposer(cfg.regions, world=cfg.generate.prompts)
    scored = ScoreFolder(tmp_path / "score")

    def rank(r: int) -> dict:
        return score_stage(scorer, proposer, cfg.reward, gen.path, scored.path, (4, 4), DistInfo(r, 2, r, "gloo"),
                           progress=False, truth=world.truth)

    first = rank(0)
    assert scored.finished() == [0, 2] and first["images"] == 3  # rank 0 owns chunks 0 and 2
    assert rank(0)["images"] == 0  # a rerun skips what is judged
    assert rank(1)["images"] == 2 and scored.finished() == [0, 1, 2]
    rows_judged = judged_rows(scored.path)
    assert [r.job for r in rows_judged] == list(range(5))
    assert all(r.truth == pytest.approx(1.0) and r.global_score == pytest.approx(1.0) for r in rows_judged)
    totals = score_totals(rows_judged)
    assert totals == {"images": 5, "kept": sum(r.kept for r in rows_judged), "relabelled": 0,
                      "parse_failures": 0,
                      "global_sum": pytest.approx(5.0), "regions": sum(len(r.boxes) for r in rows_judged)}
    assert totals["kept"] == 5 and totals["regions"] >= 5
