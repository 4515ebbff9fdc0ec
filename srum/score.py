"""Stages 2-3: propose regions, self-judge, build reward maps — per generated chunk, written atomically.

For generated chunk k: `judge/chunk_k.json` holds each image's `srum.records.JudgeRow` (regions, scores and raw judge
text, its image reward: the mean of its map, and where the prompt world has an exact judge, its `truth` score);
`reward/chunk_k.safetensors` holds each kept image's reward map on the latent grid (images the
reward rules drop, e.g. a global score of exactly 0 in the official recipe, are listed as dropped). With hindsight
relabelling the map is the one for the prompt the image is trained on, which its row names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from srum.config import RewardConfig
from srum.rewards.hindsight import Relabel, relabel
from srum.rewards.judge import Judgement
from srum.rewards.regions import RegionProposer
from srum.rewards.reward_map import build_reward_map
from srum.rewards.sources import Scorer
from srum.records import GenerateFolder, JudgeRow, ScoreFolder, owned
from srum.utils.artifacts import DamagedArtifact, quarantine, read_image
from srum.utils.dist import DistInfo
from srum.utils.logging import log_resume

logger = logging.getLogger(__name__)


TruthFn = Callable[[Sequence[Image.Image], Sequence[str]], np.ndarray]


def score_stage(judge: Scorer, proposer: RegionProposer, reward_cfg: RewardConfig, generated: Path, out: Path,
                grid: tuple[int, int], dist: DistInfo, progress: bool = True,
                truth: TruthFn | None = None, variants: Callable[[str], list[str]] | None = None) -> dict[str, float]:
    """Score every generated chunk of this rank that has no judgement yet; returns counts for logging.

    `truth` (the world's exact judge, when there is one) is recorded beside the reward, never trained on. `variants`
    (hindsight relabelling: a prompt, then the prompts it may be relabelled with) has each image also judged under
    every variant and trained on the best (srum.rewards.hindsight); its row keeps the asked prompt's scores.
    """
    gen, scored = GenerateFolder(generated), ScoreFolder(out)
    chunks = gen.finished()
    mine = owned(chunks, dist)
    for k in mine:
        if scored.judged(k).is_file():
            try:
                scored.read_rows(k)
                scored.read_maps(k)
            except (DamagedArtifact, FileNotFoundError) as e:
                quarantine(out, [scored.judged(k), scored.reward_file(k)], str(e))
    todo = [k for k in mine if not scored.judged(k).is_file()]
    log_resume("judge", sum(scored.judged(k).is_file() for k in chunks), len(chunks), "chunks")
    stats = {"images": 0, "kept": 0, "relabelled": 0, "parse_failures": 0, "global_sum": 0.0, "regions": 0}
    for k in tqdm(todo, desc="judge", disable=not (progress and dist.is_main), dynamic_ncols=True):
        redo = f"delete {gen.marker(k)} and rerun the same command: the generate stage redoes that chunk"
        records = gen.read_rows(k, redo)
        images = [read_image(gen.image_path(r, gen.marker(k)), redo) for r in records]
        regions = proposer.propose(images)
        judgements = judge.judge(images, [r.prompt for r in records], regions)
        truths = truth(images, [r.prompt for r in records]).tolist() if truth else [None] * len(records)

        def make_map(j: Judgement, image: Image.Image):
            return build_reward_map(j, image.height, image.width, reward_cfg, grid)

        asked = [make_map(j, image) for j, image in zip(judgements, images)]
        trained = (relabel(judge, images, [r.prompt for r in records], regions, asked, variants, make_map)
                   if variants else [Relabel(None, m) for m in asked])
        maps, rows = {}, []
        for r, j, true_score, reward, chosen in zip(records, judgements, truths, asked, trained):
            if chosen.reward is not None:
                maps[str(r.job)] = chosen.reward.float().contiguous()
            rows.append(JudgeRow(r.job, r.prompt, r.file, chosen.reward is not None, j.global_score, j.region_scores,
                                 [list(reg.box_xyxy) for reg in j.regions], j.raw, j.parse_failures,
                                 None if reward is None else float(reward.float().mean()), true_score,
                                 chosen.prompt, None if chosen.prompt is None else float(chosen.reward.float().mean())))
            stats["images"] += 1
            stats["kept"] += chosen.reward is not None
            stats["relabelled"] += chosen.prompt is not None
            stats["parse_failures"] += j.parse_failures
            stats["global_sum"] += j.global_score or 0.0
            stats["regions"] += len(j.regions)
        scored.write_chunk(k, rows, maps)
    logger.info("stage=judge rank=%d images=%d kept=%d relabelled=%d parse_failures=%d regions=%d mean_global=%.3f",
                dist.rank, stats["images"], stats["kept"], stats["relabelled"], stats["parse_failures"],
                stats["regions"], stats["global_sum"] / max(stats["images"], 1))
    return stats


def judged_rows(scored: Path) -> list[JudgeRow]:
    """Every image row of every judged chunk in `scored` (all ranks, all invocations), in chunk order."""
    return ScoreFolder(scored).all_rows()


def score_totals(rows: list[JudgeRow]) -> dict[str, float]:
    """Counts over a score stage's judged rows (`judged_rows`): what the stage's manifest records."""
    return {"images": len(rows), "kept": sum(r.kept for r in rows),
            "relabelled": sum(r.trained_prompt is not None for r in rows),
            "parse_failures": sum(r.parse_failures for r in rows),
            "global_sum": sum(r.global_score or 0.0 for r in rows),
            "regions": sum(len(r.boxes) for r in rows)}
