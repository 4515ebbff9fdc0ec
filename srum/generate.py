"""Stage 1 generate: prompts → images and their clean latents, in chunks that are each written atomically.

Chunk k holds prompts [k·B, (k+1)·B) of the prompt list; rank r takes chunks k ≡ r (mod world size).
A chunk is done when its `.json` exists (written after its tensors), so a killed run redoes only
unfinished chunks. Image j of prompt item i always gets seed `seed + i·images_per_prompt + j`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import save_file
from tqdm import tqdm

from srum.config import GenerateConfig
from srum.evaluation.benchmarks import PromptItem
from srum.models.interface import SampledImages, UnifiedModel
from srum.utils.artifacts import DamagedArtifact, quarantine, read_image, read_json, read_tensors
from srum.utils.dist import DistInfo
from srum.utils.io import atomic_path, atomic_write_json, inside
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
        return SampledImages(images, self.model.encode_images(images, seeds), torch.zeros(len(images), 0), list(seeds))


def jobs_of(items: list[PromptItem], images_per_prompt: int, seed: int) -> list[dict]:
    """One job per image: its prompt item, position and seed."""
    return [{"job": i * images_per_prompt + j, "category": it.category, "index": it.index, "prompt": it.prompt,
             "seed": seed + i * images_per_prompt + j}
            for i, it in enumerate(items) for j in range(images_per_prompt)]


def chunk_ids(n_jobs: int, batch_size: int, dist: DistInfo) -> list[int]:
    n_chunks = (n_jobs + batch_size - 1) // batch_size
    return dist.shard(list(range(n_chunks)))


def generate_stage(model: UnifiedModel | WorldRenders, items: list[PromptItem], cfg: GenerateConfig, out: Path,
                   dist: DistInfo, progress: bool = True) -> int:
    """Draw every unfinished chunk of this rank; returns how many chunks it drew."""
    jobs = jobs_of(items, cfg.images_per_prompt, cfg.seed)
    mine = chunk_ids(len(jobs), cfg.batch_size, dist)
    for k in mine:
        if (out / f"chunk_{k:05d}.json").is_file():
            problem, files = chunk_problem(out, k)
            if problem:
                quarantine(out, files, problem)
    todo = [k for k in mine if not (out / f"chunk_{k:05d}.json").is_file()]
    log_resume("generate", len(list(out.glob("chunk_*.json"))), -(-len(jobs) // cfg.batch_size), "chunks")
    (out / "images").mkdir(parents=True, exist_ok=True)
    for k in tqdm(todo, desc="generate", disable=not (progress and dist.is_main), dynamic_ncols=True):
        chunk = jobs[k * cfg.batch_size:(k + 1) * cfg.batch_size]
        result = model.sample_images([j["prompt"] for j in chunk], [j["seed"] for j in chunk], cfg.resolution,
                                     cfg.resolution, think=cfg.think)
        records = []
        for n, (job, image) in enumerate(zip(chunk, result.images)):
            name = f"images/{job['job']:06d}.png"
            with atomic_path(out / name) as tmp:
                image.save(tmp, format="PNG")
            records.append({**job, "file": name, "plan": result.plans[n] if result.plans else None})
        with atomic_path(out / f"chunk_{k:05d}.safetensors") as tmp:
            save_file({"latents": result.latents.contiguous().float()}, str(tmp))
        atomic_write_json(out / f"chunk_{k:05d}.json", records)
    logger.info("stage=generate rank=%d chunks_done=%d chunks_skipped=%d", dist.rank, len(todo),
                len(mine) - len(todo))
    return len(todo)


def chunk_problem(out: Path, k: int) -> tuple[str | None, list[Path]]:
    """What is wrong with finished chunk `k` of a generate folder (None if nothing), and the chunk's files: its
    marker, latents and images, each read in full."""
    marker = out / f"chunk_{k:05d}.json"
    tensors = marker.with_suffix(".safetensors")
    files = [marker, tensors]
    try:
        records = read_json(marker)
        files += [inside(out, r["file"], marker) for r in records]  # a name leaving the folder is raised, not moved
        latents = read_tensors(tensors).get("latents")
        if latents is None or latents.shape[0] != len(records):
            raise DamagedArtifact(f"{tensors}: no latents for each of the {len(records)} records")
        for f in files[2:]:
            read_image(f)
    except (DamagedArtifact, KeyError, TypeError) as e:
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
    chunks = sorted(source.glob("chunk_*.json"))
    for done_marker in chunks:
        records = json.loads(done_marker.read_text())
        # The chunk's images and latents first, its .json (the "done" marker) last, as generate_stage writes them.
        for rel in [r["file"] for r in records] + [done_marker.with_suffix(".safetensors").name, done_marker.name]:
            src, dst = inside(source, rel, done_marker), inside(out, rel, done_marker)
            if not dst.exists():
                _link_or_copy(src, dst)
    logger.info("stage=generate reused_from=%s chunks=%d", source, len(chunks))
    return len(chunks)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or links not allowed
        shutil.copy2(src, dst)
