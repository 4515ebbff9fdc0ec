"""Stage 1 generate: prompts → images and their clean latents, in chunks that are each written atomically
(file layout, sharding and rows: `srum.records`). Image j of prompt item i always gets seed
`seed + i·images_per_prompt + j`, whichever rank draws it and however the run was interrupted.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from srum.config import GenerateConfig, GenerateSource
from srum.evaluation.benchmarks import PromptItem
from srum.models.interface import Guide, SampledImages, UnifiedModel
from srum.records import GenerateFolder, GenerateRow, chunk_count, owned
from srum.utils.artifacts import DamagedArtifact, quarantine, read_image
from srum.utils.dist import DistInfo
from srum.utils.io import inside
from srum.utils.logging import log_resume

logger = logging.getLogger(__name__)


class WorldRenders:
    """`generate.source=world`: a prompt world's correct renders in place of the model's samples, encoded by the
    model's own autoencoder. Training on them is plain supervised flow matching on ground truth: the capacity
    reference that tells how far the model can move at all, never SRUM."""

    def __init__(self, model: UnifiedModel, render: Callable[[list[str], list[int], int], list[Image.Image]]) -> None:
        self.model, self.render = model, render

    def sample_images(self, prompts: list[str], seeds: list[int], height: int, width: int,
                      think: bool = False) -> SampledImages:
        if height != width:
            raise ValueError(f"world renders are square; got {height}x{width}")
        images = self.render(prompts, seeds, height)
        posterior = self.model.encode_posteriors(images)
        return SampledImages(images, posterior.sample(seeds), torch.zeros(len(images), 0), list(seeds),
                             posterior=posterior)


def jobs_of(items: list[PromptItem], images_per_prompt: int, seed: int) -> list[GenerateRow]:
    """One job per image: its prompt item, position and seed (its file is named once it is drawn)."""
    return [GenerateRow(i * images_per_prompt + j, it.category, it.index, it.prompt, seed + i * images_per_prompt + j)
            for i, it in enumerate(items) for j in range(images_per_prompt)]


def generate_stage(model: UnifiedModel | WorldRenders, items: list[PromptItem], cfg: GenerateConfig, out: Path,
                   dist: DistInfo, progress: bool = True,
                   guide_for: Callable[[list[str]], Guide] | None = None) -> int:
    """Draw every unfinished chunk of this rank; returns how many chunks it drew. `guide_for(prompts)`, when given,
    steers the sampler for each batch (`srum.guidance`)."""
    folder = GenerateFolder(out)
    jobs = jobs_of(items, cfg.images_per_prompt, cfg.seed)
    n_chunks = chunk_count(len(jobs), cfg.batch_size)
    mine = owned(list(range(n_chunks)), dist)
    for k in mine:
        if folder.marker(k).is_file():
            problem, files = chunk_problem(folder, k)
            if problem:
                quarantine(out, files, problem)
    todo = [k for k in mine if not folder.marker(k).is_file()]
    log_resume("generate", len(folder.finished()), n_chunks, "chunks")
    (out / "images").mkdir(parents=True, exist_ok=True)
    for k in tqdm(todo, desc="generate", disable=not (progress and dist.is_main), dynamic_ncols=True):
        chunk = jobs[k * cfg.batch_size:(k + 1) * cfg.batch_size]
        prompts, seeds = [j.prompt for j in chunk], [j.seed for j in chunk]
        if cfg.sde_noise > 0:  # policy-gradient rollouts: stochastic steps, trajectories kept
            result = model.sample_trajectories(prompts, seeds, cfg.resolution, cfg.resolution, cfg.sde_noise,
                                               think=cfg.think)
        else:  # renders (WorldRenders) take no guide: the config refuses judge guidance with them
            steer = {"guide": guide_for(prompts)} if guide_for is not None else {}
            result = model.sample_images(prompts, seeds, cfg.resolution, cfg.resolution, think=cfg.think, **steer)
        latents, posterior = result.latents, result.posterior  # renders come encoded
        if cfg.reencode and cfg.source == GenerateSource.model:
            posterior = model.encode_posteriors(result.images)
            latents = posterior.sample(seeds)
        plans = result.plans or [None] * len(chunk)
        rows = [dataclasses.replace(job, file=folder.image_name(job.job), plan=plan)
                for job, plan in zip(chunk, plans, strict=True)]
        folder.write_chunk(k, rows, result.images, latents, result.trajectory, posterior)
    logger.info("stage=generate rank=%d chunks_done=%d chunks_skipped=%d", dist.rank, len(todo),
                len(mine) - len(todo))
    return len(todo)


def chunk_problem(folder: GenerateFolder, k: int) -> tuple[str | None, list[Path]]:
    """What is wrong with finished chunk `k` of a generate folder (None if nothing), and the chunk's files: its
    marker, latents and images, each read in full."""
    files = [folder.marker(k), folder.latents_file(k)]
    try:
        rows = folder.read_rows(k)
        files += [folder.image_path(r, folder.marker(k)) for r in rows]  # a name leaving the folder is raised
        folder.read_latents(k, len(rows))
        for f in files[2:]:
            read_image(f)
    except DamagedArtifact as e:
        return str(e), files
    return None, files


def check_reusable(source: Path, config: dict) -> None:
    """Whether the finished generate folder `source` was drawn by the same model and settings as this run.

    `config` is this run's full config dict; its `model` and `generate` sections (less `reuse_from`) must equal
    those recorded in `source/manifest.json`, which the pipeline writes once every rank has finished drawing.

    Raises:
        FileNotFoundError: `source` has no manifest (its generate stage never finished).
        ValueError: the recorded settings differ; the message names each differing key.
    """
    manifest = source / "manifest.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"generate.reuse_from={source}: no manifest.json there, so its generate stage "
                                "never finished; run that variant first or drop generate.reuse_from")
    recorded = json.loads(manifest.read_text())["config"]
    differing = [f"{section}.{key}" for section in ("model", "generate")
                 for key in sorted(set(config[section]) | set(recorded[section])) if key != "reuse_from"
                 and config[section].get(key) != recorded[section].get(key)]
    if differing:
        raise ValueError(f"generate.reuse_from={source} was drawn with other settings: {', '.join(differing)} "
                         "differ; its images would not be this run's samples")


def reuse_generated(source: Path, out: Path) -> int:
    """Link every chunk of `source` (checked by `check_reusable`) into `out`; files already there are kept.

    Hard links where the filesystem allows, copies otherwise. Returns the number of chunks.
    """
    (out / "images").mkdir(parents=True, exist_ok=True)
    src_folder = GenerateFolder(source)
    chunks = src_folder.finished()
    for k in chunks:
        marker = src_folder.marker(k)
        # The chunk's images and latents first, its .json (the "done" marker) last, as generate_stage writes them.
        for rel in [r.file for r in src_folder.read_rows(k)] + [src_folder.latents_file(k).name, marker.name]:
            src, dst = inside(source, rel, marker), inside(out, rel, marker)
            if not dst.exists():
                _link_or_copy(src, dst)
    logger.info("stage=generate reused_from=%s chunks=%d", source, len(chunks))
    return len(chunks)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or links not allowed
        shutil.copy2(src, dst)
