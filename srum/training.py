"""Stage 4-5 loop: reward-weighted flow matching of the model on its own images, one round.

Data order and noise are functions of (seed, step, rank), never of the process's history, so a run
resumed from a checkpoint takes exactly the steps an unbroken run would have taken.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from tqdm import tqdm

from srum import flow
from srum.config import ObjectiveConfig, ObjectiveKind, RunConfig
from srum.engine import TrainEngine
from srum.objectives import srum_loss
from srum.rewards.advantage import group_advantages, optimality
from srum.utils.dist import DistInfo

logger = logging.getLogger(__name__)


@dataclass
class TrainSample:
    job: int
    prompt: str
    x0: torch.Tensor  # (N, C) clean latent tokens of the model's own image
    weights: torch.Tensor  # (N,) reward map on the latent grid; per-token training weights after objective_weights
    group: tuple[str, int] = ("", -1)  # (category, index) of its prompt: the images one advantage compares


def objective_weights(samples: list[TrainSample], cfg: ObjectiveConfig) -> list[TrainSample]:
    """Turn reward maps into the objective's per-token weights: the map itself (official), signed group
    advantages (group_relative) or DiffusionNFT optimality probabilities (nft)."""
    if cfg.kind == ObjectiveKind.official:
        return samples
    adv = group_advantages([s.weights for s in samples], [s.group for s in samples], cfg.adv_std_floor, cfg.adv_clip)
    if cfg.kind == ObjectiveKind.nft:
        adv = [optimality(a, cfg.adv_clip) for a in adv]
    return [TrainSample(s.job, s.prompt, s.x0, a, s.group) for s, a in zip(samples, adv)]


def load_training_samples(generated: Path, scored: Path, latents_to_tokens) -> list[TrainSample]:
    """Every kept (image, reward map) pair of a round, in job order (identical on every rank)."""
    samples = []
    for chunk in sorted(generated.glob("chunk_*.json")):
        records = json.loads(chunk.read_text())
        latents = load_file(str(chunk.with_suffix(".safetensors")))["latents"]
        reward_file = scored / "reward" / f"{chunk.stem}.safetensors"
        if not reward_file.is_file():
            raise FileNotFoundError(f"{reward_file} missing: the judge stage did not finish for {chunk.name}")
        maps = load_file(str(reward_file))
        tokens = latents_to_tokens(latents)
        for n, r in enumerate(records):
            if str(r["job"]) in maps:
                samples.append(TrainSample(r["job"], r["prompt"], tokens[n], maps[str(r["job"])],
                                           (r["category"], r["index"])))
    return sorted(samples, key=lambda s: s.job)


def total_steps(cfg: RunConfig, n_samples: int, world_size: int) -> int:
    if cfg.train.max_steps is not None:
        return cfg.train.max_steps
    per_step = cfg.train.micro_batch_size * cfg.train.grad_accum_steps * world_size
    return max(1, math.ceil(cfg.train.epochs * n_samples / per_step))


def sample_indices(n: int, step: int, micro: int, cfg: RunConfig, dist: DistInfo) -> list[int]:
    """This rank's micro-batch: consecutive positions of a stream of per-epoch permutations (seeded by epoch)."""
    mb, ga = cfg.train.micro_batch_size, cfg.train.grad_accum_steps
    first = ((step * ga + micro) * dist.world_size + dist.rank) * mb
    out = []
    for pos in range(first, first + mb):
        epoch, offset = divmod(pos, n)
        out.append(_epoch_order(n, cfg.train.data_seed + epoch)[offset])
    return out


@functools.lru_cache(maxsize=4)
def _epoch_order(n: int, seed: int) -> tuple[int, ...]:
    """The sample order of one epoch, drawn once rather than for every sample of every step."""
    return tuple(torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist())


def train_round(model, engine: TrainEngine, samples: list[TrainSample], grid: tuple[int, int], cfg: RunConfig,
                checkpoints: Path, dist: DistInfo, reference=None, writer=None) -> dict[str, float]:
    """Train on `samples` for the configured steps, resuming from `checkpoints`; returns the last metrics."""
    if not samples:
        raise ValueError("no training samples: every image was dropped by the reward rules (see the judge log)")
    steps = total_steps(cfg, len(samples), dist.world_size)
    start = engine.load(checkpoints)
    device = engine.module.device if hasattr(engine.module, "device") else torch.device("cpu")
    obj = cfg.objective
    neutral_weight = 0.5 if obj.kind == ObjectiveKind.nft else 0.0  # below it a token is pushed away (nft: r < 1/2)
    metrics: dict[str, float] = {}
    bar = tqdm(range(start, steps), initial=start, total=steps, desc="train",
               disable=not (cfg.log.progress and dist.is_main), dynamic_ncols=True)
    for step in bar:
        for micro in range(cfg.train.grad_accum_steps):
            batch = [samples[i] for i in sample_indices(len(samples), step, micro, cfg, dist)]
            g = torch.Generator().manual_seed(
                cfg.train.seed * 1_000_003 + (step * cfg.train.grad_accum_steps + micro) * dist.world_size + dist.rank)
            x0 = torch.stack([s.x0 for s in batch])
            weights = torch.stack([s.weights for s in batch]).to(device)
            t = flow.sample_training_timesteps(len(batch), obj.timestep_shift, generator=g)
            noise = torch.randn(x0.shape, generator=g)
            drop = torch.rand(len(batch), generator=g) < obj.text_dropout
            prompts = [None if d else s.prompt for s, d in zip(batch, drop.tolist())]
            x_t = flow.interpolate(x0, noise, t).to(device)
            target = flow.velocity_target(x0, noise).to(device)
            v = model.velocity(prompts, x_t, t.to(device), grid)
            v_ref = None
            if reference is not None:
                with torch.no_grad():
                    v_ref = reference.velocity(prompts, x_t, t.to(device), grid)
            loss, parts = srum_loss(v, target, weights, obj, v_ref=v_ref)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"non-finite loss at step {step} ({ {k: float(v) for k, v in parts.items()} }); the last "
                    f"checkpoint in {checkpoints} is intact: lower train.lr and rerun the same command to resume")
            grad_norm = engine.backward_and_step(loss)
        metrics = {"loss": float(loss.detach()), **{k: float(v) for k, v in parts.items()}, "grad_norm": grad_norm,
                   "lr": engine.lr, "weight_mean": float(weights.mean()),
                   "negative_weight_fraction": float((weights < neutral_weight).float().mean())}
        if dist.is_main and step % cfg.log.every == 0:
            bar.set_postfix(loss=f"{metrics['loss']:.4f}")
            logger.info("stage=train step=%d %s", step, " ".join(f"{k}={v:.5g}" for k, v in metrics.items()))
            if writer is not None:
                for k, v in metrics.items():
                    writer.add_scalar(f"train/{k}", v, step)
        if cfg.train.save_every and (step + 1) % cfg.train.save_every == 0 and step + 1 < steps:
            engine.save(checkpoints, step + 1, keep=cfg.output.keep_checkpoints)
    return metrics
