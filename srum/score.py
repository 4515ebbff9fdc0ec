"""Stages 2-3: propose regions, self-judge, build reward maps — per generated chunk, written atomically.

For generated chunk k: `judge/chunk_k.json` holds each image's regions, scores and raw judge text, its image
reward (the mean of its map) and, where the prompt world has an exact judge, its `truth` score;
`reward/chunk_k.safetensors` holds each kept image's reward map on the latent grid (images the
reward rules drop, e.g. a global score of exactly 0 in the official recipe, are listed as dropped).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from tqdm import tqdm

from srum.config import RewardConfig
from srum.rewards.regions import RegionProposer
from srum.rewards.reward_map import build_reward_map
from srum.rewards.sources import Scorer
from srum.utils.artifacts import DamagedArtifact, quarantine, read_image, read_json, read_tensors
from srum.utils.dist import DistInfo
from srum.utils.io import atomic_path, atomic_write_json, inside
from srum.utils.logging import log_resume

logger = logging.getLogger(__name__)


TruthFn = Callable[[Sequence[Image.Image], Sequence[str]], np.ndarray]


def score_stage(judge: Scorer, proposer: RegionProposer, reward_cfg: RewardConfig, generated: Path, out: Path,
                grid: tuple[int, int], dist: DistInfo, progress: bool = True,
                truth: TruthFn | None = None) -> dict[str, float]:
    """Score every generated chunk of this rank that has no judgement yet; returns counts for logging.

    `truth` (the world's exact judge, when there is one) is recorded beside the reward, never trained on.
    """
    chunks = sorted(generated.glob("chunk_*.json"))
    mine = [c for c in chunks if int(c.stem.split("_")[1]) % dist.world_size == dist.rank]
    for c in mine:
        judged, reward = out / "judge" / c.name, out / "reward" / f"{c.stem}.safetensors"
        if judged.is_file():
            try:
                read_json(judged)
                read_tensors(reward)
            except DamagedArtifact as e:
                quarantine(out, [judged, reward], str(e))
    todo = [c for c in mine if not (out / "judge" / c.name).is_file()]
    log_resume("judge", sum((out / "judge" / c.name).is_file() for c in chunks), len(chunks), "chunks")
    stats = {"images": 0, "kept": 0, "parse_failures": 0, "global_sum": 0.0, "regions": 0}
    for chunk in tqdm(todo, desc="judge", disable=not (progress and dist.is_main), dynamic_ncols=True):
        redo = f"delete {chunk} and rerun the same command: the generate stage redoes that chunk"
        records = read_json(chunk, redo)
        images = [read_image(inside(generated, r["file"], chunk), redo) for r in records]
        regions = proposer.propose(images)
        judgements = judge.judge(images, [r["prompt"] for r in records], regions)
        truths = truth(images, [r["prompt"] for r in records]).tolist() if truth else [None] * len(records)
        maps, rows = {}, []
        for r, image, j, true_score in zip(records, images, judgements, truths):
            reward = build_reward_map(j, image.height, image.width, reward_cfg, grid)
            if reward is not None:
                maps[str(r["job"])] = reward.float().contiguous()
            rows.append({"job": r["job"], "prompt": r["prompt"], "file": r["file"], "kept": reward is not None,
                         "global_score": j.global_score, "region_scores": j.region_scores,
                         "boxes": [list(reg.box_xyxy) for reg in j.regions], "raw": j.raw,
                         "parse_failures": j.parse_failures,
                         "reward": None if reward is None else float(reward.float().mean()), "truth": true_score})
            stats["images"] += 1
            stats["kept"] += reward is not None
            stats["parse_failures"] += j.parse_failures
            stats["global_sum"] += j.global_score or 0.0
            stats["regions"] += len(j.regions)
        (out / "reward").mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "reward" / f"{chunk.stem}.safetensors") as tmp:
            save_file(maps or {"_empty": torch.zeros(0)}, str(tmp))
        atomic_write_json(out / "judge" / chunk.name, rows)
    logger.info("stage=judge rank=%d images=%d kept=%d parse_failures=%d regions=%d mean_global=%.3f",
                dist.rank, stats["images"], stats["kept"], stats["parse_failures"], stats["regions"],
                stats["global_sum"] / max(stats["images"], 1))
    return stats


def judged_rows(scored: Path) -> list[dict]:
    """Every image row of every judged chunk in `scored` (all ranks, all invocations), in chunk order."""
    return [row for f in sorted((scored / "judge").glob("chunk_*.json")) for row in json.loads(f.read_text())]


def score_totals(rows: list[dict]) -> dict[str, float]:
    """Counts over a score stage's judged rows (`judged_rows`): what the stage's manifest records."""
    return {"images": len(rows), "kept": sum(bool(r["kept"]) for r in rows),
            "parse_failures": sum(r["parse_failures"] for r in rows),
            "global_sum": sum(r["global_score"] or 0.0 for r in rows),
            "regions": sum(len(r["boxes"]) for r in rows)}
