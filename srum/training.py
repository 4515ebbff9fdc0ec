"""Stage 4-5 loop: reward-weighted flow matching of the model on its own images, one round.

Data order and noise are functions of (seed, step, rank), never of the process's history, so a run
resumed from a checkpoint takes exactly the steps an unbroken run would have taken.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from srum import flow
from srum.config import Constraint, ObjectiveConfig, ObjectiveKind, Optimality, RunConfig
from srum.divergence import DivergenceGuard, TrainingDiverged, good_checkpoint, likely_cause
from srum.draft import draft_loss, draft_rollout
from srum.engine import TrainEngine
from srum.guidance import guide_answers, guided_velocity_shift, judge_questions
from srum.models.interface import Posterior
from srum.objectives import SdeStep, srum_loss
from srum.rewards.advantage import best_in_group, best_worst_pairs, group_advantages, optimality
from srum.records import GenerateFolder, ScoreFolder
from srum.rewards.judge import templates_for
from srum.utils.artifacts import DamagedArtifact, check_range
from srum.utils.dist import DistInfo
from srum.utils.logging import log_resume

logger = logging.getLogger(__name__)


@dataclass
class TrainSample:
    job: int
    prompt: str
    x0: torch.Tensor  # (N, C) clean latent tokens of the model's own image
    weights: torch.Tensor  # (N,) reward map on the latent grid; per-token training weights after objective_weights
    group: tuple[str, int] = ("", -1)  # (category, index) of its prompt: the images one advantage compares
    trajectory: torch.Tensor | None = None  # (grid points, N, C): x along its SDE rollout (flow_grpo only)
    asked: str = ""  # the prompt it was drawn for (`prompt` differs where hindsight relabelled it)
    posterior: Posterior | None = None  # (N, C) tokens of the posterior x0 was drawn from (train.fresh_posterior)


def objective_weights(samples: list[TrainSample], cfg: ObjectiveConfig) -> list[TrainSample]:
    """Turn reward maps into the objective's per-token weights: the map itself (official), signed group
    advantages (group_relative, and flow_grpo's per-token advantages of each step) or DiffusionNFT optimality
    probabilities (nft: from the group's advantages, or from the signed map itself with objective.optimality=map; at
    least ½ without the negative half). best_of returns only the images it keeps, each with weight 1 on every token
    (plain flow matching on them); dpo returns its preference pairs, winner (+1 on every token) then loser (−1)."""
    if cfg.kind in (ObjectiveKind.official, ObjectiveKind.judge_distill, ObjectiveKind.draft):  # the last two: unread
        return samples
    if cfg.kind == ObjectiveKind.dpo:
        pairs = best_worst_pairs([s.weights for s in samples], [s.group for s in samples], cfg.dpo_pairs)
        return [dataclasses.replace(samples[i], weights=torch.full_like(samples[i].weights, role))
                for pair in pairs for i, role in zip(pair, (1.0, -1.0))]
    if cfg.kind == ObjectiveKind.best_of:
        keep = best_in_group([s.weights for s in samples], [s.group for s in samples], cfg.keep_top)
        return [dataclasses.replace(s, weights=torch.ones_like(s.weights)) for s, k in zip(samples, keep) if k]
    if cfg.optimality == Optimality.map:
        weights = [(s.weights.float() + 1.0) / 2.0 for s in samples]
    else:
        weights = group_advantages([s.weights for s in samples], [s.group for s in samples], cfg.adv_std_floor,
                                   cfg.adv_clip)
        if cfg.kind == ObjectiveKind.nft:
            weights = [optimality(a, cfg.adv_clip) for a in weights]
    if cfg.kind == ObjectiveKind.nft and not cfg.nft_negative:
        weights = [w.clamp(min=0.5) for w in weights]
    return [dataclasses.replace(s, weights=w) for s, w in zip(samples, weights)]


def neutral_weight(cfg: ObjectiveConfig) -> float:
    """The per-token weight below which an objective pushes a token away (nft: r < ½; signed advantages: < 0)."""
    return 0.5 if cfg.kind == ObjectiveKind.nft else 0.0


def load_training_samples(generated: Path, scored: Path, latents_to_tokens, trajectories: bool = False,
                          posteriors: bool = False) -> list[TrainSample]:
    """Every kept (image, reward map) pair of a round, in job order (identical on every rank), with its SDE
    trajectory or its latent's posterior when asked, under the prompt hindsight relabelled it with if it was. Each
    file is checked as it is read (decodable, finite, reward maps within [-1, 1] and one value per latent token); a
    damaged one stops the run naming the files to delete so the stages that wrote them redo that chunk."""
    gen, scored = GenerateFolder(generated), ScoreFolder(scored)
    samples = []
    for k in gen.finished():
        judged, reward_file = scored.judged(k), scored.reward_file(k)
        redo_judge = f"delete {judged} and {reward_file} and rerun the same command: the judge stage redoes them"
        redo_all = (f"delete {gen.marker(k)}, {gen.latents_file(k)}, {judged} and {reward_file} and rerun "
                    "the same command: generate and judge redo that chunk")
        records = gen.read_rows(k, redo_all)
        paths, posterior = None, None
        if trajectories:
            latents, paths = gen.read_latents_and_trajectory(k, len(records), redo_all)
        elif posteriors:
            latents, p = gen.read_latents_and_posterior(k, len(records), redo_all)
            posterior = Posterior(latents_to_tokens(p.mean), latents_to_tokens(p.std))
        else:
            latents = gen.read_latents(k, len(records), redo_all)
        tokens = latents_to_tokens(latents)
        maps = scored.read_maps(k, redo_judge)
        relabelled = {row.job: row.trained_prompt for row in scored.read_rows(k, redo_judge) if row.trained_prompt}
        if paths is not None and paths.shape[2:] != tokens.shape[1:]:
            raise DamagedArtifact(f"{gen.latents_file(k)}: trajectory tokens {tuple(paths.shape[2:])} differ from the "
                                  f"latents' {tuple(tokens.shape[1:])}; {redo_all}")
        for n, r in enumerate(records):
            key = str(r.job)
            if key in maps:
                check_range(reward_file, key, maps[key], -1.0, 1.0, redo_judge)
                if maps[key].shape != tokens[n].shape[:1]:
                    raise DamagedArtifact(f"{reward_file}: {key!r} has shape {tuple(maps[key].shape)}, expected "
                                          f"({tokens[n].shape[0]},) for the latent grid; {redo_judge}")
                own = Posterior(posterior.mean[n], posterior.std[n]) if posterior is not None else None
                samples.append(TrainSample(r.job, relabelled.get(r.job, r.prompt), tokens[n], maps[key],
                                           (r.category, r.index), paths[n] if paths is not None else None, r.prompt,
                                           own))
    return sorted(samples, key=lambda s: s.job)


def total_steps(cfg: RunConfig, n_samples: int, world_size: int) -> int:
    if cfg.train.max_steps is not None:
        return cfg.train.max_steps
    per_step = cfg.train.micro_batch_size * cfg.train.grad_accum_steps * world_size
    return max(1, math.ceil(cfg.train.epochs * n_samples / per_step))


def sample_indices(n: int, step: int, micro: int, cfg: RunConfig, dist: DistInfo,
                   per_micro: int | None = None) -> list[int]:
    """This rank's micro-batch: consecutive positions of a stream of per-epoch permutations (seeded by epoch) of n
    samples, or of n groups taking `per_micro` of them per micro-batch."""
    mb, ga = per_micro or cfg.train.micro_batch_size, cfg.train.grad_accum_steps
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


def group_units(samples: list[TrainSample], cfg: ObjectiveConfig) -> list[list[int]] | None:
    """The units whose images share their draws in a micro-batch: dpo's pairs (consecutive winner and loser), or
    with objective.group_noise each group's sample indices (runs of consecutive samples with one group key: a
    prompt's images are consecutive jobs, and replayed rounds follow one another); None when every sample draws
    its own."""
    if cfg.kind == ObjectiveKind.dpo:
        return [[i, i + 1] for i in range(0, len(samples), 2)]
    if not cfg.group_noise:
        return None
    units: list[list[int]] = []
    for i, s in enumerate(samples):
        if units and samples[units[-1][0]].group == s.group:
            units[-1].append(i)
        else:
            units.append([i])
    return units


def _micro_generator(step: int, micro: int, cfg: RunConfig, dist: DistInfo) -> torch.Generator:
    """The generator of one micro-batch's draws, seeded by (seed, step, micro, rank) alone."""
    return torch.Generator().manual_seed(
        cfg.train.seed * 1_000_003 + (step * cfg.train.grad_accum_steps + micro) * dist.world_size + dist.rank)


def draw_batch(samples: list[TrainSample], units: list[list[int]] | None, step: int, micro: int, cfg: RunConfig,
               dist: DistInfo) -> tuple[list[TrainSample], torch.Tensor, torch.Tensor, torch.Tensor]:
    """This rank's micro-batch and its draws: timesteps t (B,), noise like the stacked x0 and prompt-dropout flags
    (B,). With `units` (group_units) the micro-batch is whole units, each sharing one draw of all three; without,
    every sample has its own. With train.fresh_posterior each sample's x0 is a fresh draw from its posterior (its
    own, in units too: the shared noise is the flow's). Seeded by (seed, step, micro, rank) alone, so a resumed run
    draws alike."""
    if units is None:
        batch = [samples[i] for i in sample_indices(len(samples), step, micro, cfg, dist)]
        sizes = torch.ones(len(batch), dtype=torch.long)
    else:
        size = 2 if cfg.objective.kind == ObjectiveKind.dpo else cfg.generate.images_per_prompt
        per_micro = cfg.train.micro_batch_size // size
        picked = [units[u] for u in sample_indices(len(units), step, micro, cfg, dist, per_micro)]
        batch = [samples[i] for unit in picked for i in unit]
        sizes = torch.tensor([len(unit) for unit in picked])
    g = _micro_generator(step, micro, cfg, dist)
    draws = len(sizes)
    t = flow.sample_training_timesteps(draws, cfg.objective.timestep_shift, generator=g)
    noise = torch.randn((draws, *batch[0].x0.shape), generator=g)
    drop = torch.rand(draws, generator=g) < cfg.objective.text_dropout
    if cfg.train.fresh_posterior:
        eps = torch.randn((len(batch), *batch[0].x0.shape), generator=g)
        batch = [dataclasses.replace(s, x0=s.posterior.mean + s.posterior.std * e) for s, e in zip(batch, eps)]
    return (batch, t.repeat_interleave(sizes), noise.repeat_interleave(sizes, dim=0),
            drop.repeat_interleave(sizes))


def draw_steps(samples: list[TrainSample], step: int, micro: int, cfg: RunConfig,
               dist: DistInfo) -> tuple[list[TrainSample], SdeStep]:
    """flow_grpo's micro-batch: samples as `sample_indices` orders them, each at one of its rollout's steps drawn
    uniformly (seeded by (seed, step, micro, rank) alone, like `draw_batch`)."""
    batch = [samples[i] for i in sample_indices(len(samples), step, micro, cfg, dist)]
    g = _micro_generator(step, micro, cfg, dist)
    ts, dts = flow.euler_schedule(cfg.generate.num_timesteps, cfg.generate.timestep_shift)
    j = torch.randint(len(ts), (len(batch),), generator=g)
    paths = torch.stack([s.trajectory for s in batch])
    rows = torch.arange(len(batch))
    return batch, SdeStep(paths[rows, j], paths[rows, j + 1], ts[j], dts[j], cfg.generate.sde_noise, float(dts[0]))


def draw_prompts(prompts: list[str], token_shape: tuple[int, int], step: int, micro: int, cfg: RunConfig,
                 dist: DistInfo) -> tuple[list[str], torch.Tensor]:
    """draft's micro-batch: prompts as `sample_indices` orders them and fresh initial noise (B, *token_shape) for
    each, seeded by (seed, step, micro, rank) alone (like `draw_batch`)."""
    batch = [prompts[i] for i in sample_indices(len(prompts), step, micro, cfg, dist)]
    return batch, torch.randn((len(batch), *token_shape), generator=_micro_generator(step, micro, cfg, dist))


def train_round(model, engine: TrainEngine, samples: list[TrainSample], grid: tuple[int, int], cfg: RunConfig,
                checkpoints: Path, dist: DistInfo, reference=None, writer=None) -> dict[str, float]:
    """Train on `samples` for the configured steps, resuming from `checkpoints`; returns the last metrics.

    A checkpoint is saved every `train.save_every` steps and after the last one (so `latest` is the final step).
    Raises TrainingDiverged (srum.divergence) after too many bad steps or at a non-finite loss, with `latest`
    pointed back at the newest checkpoint saved before the first bad step (removed when there is none).
    """
    if not samples:
        raise ValueError("no training samples: every image was dropped by the reward rules (see the judge log)")
    steps = total_steps(cfg, len(samples), dist.world_size)
    start, metrics = engine.load(checkpoints)
    log_resume("train", start, steps, "steps")
    device = engine.module.device if hasattr(engine.module, "device") else torch.device("cpu")
    obj = cfg.objective
    neutral = neutral_weight(obj)
    # dpo's pairs saturate (log σ of a growing margin): its gradient norms span orders of magnitude by design, so
    # only non-finite steps count as bad there
    explode = math.inf if obj.kind == ObjectiveKind.dpo else cfg.train.explode_factor
    guard = DivergenceGuard(cfg.train.max_bad_steps, explode)
    finite = {"weights": True, "inputs": True}  # over the bad steps' batches, for the stop message
    bar = tqdm(range(start, steps), initial=start, total=steps, desc="train",
               disable=not (cfg.log.progress and dist.is_main), dynamic_ncols=True)
    units = group_units(samples, obj)
    rollout = obj.kind == ObjectiveKind.flow_grpo  # trains the sampling (guided) policy on its recorded steps
    distil = obj.kind == ObjectiveKind.judge_distill
    draft = obj.kind == ObjectiveKind.draft
    templates = templates_for(cfg.judge.template_set) if distil or draft else None
    answers = guide_answers(templates) if draft else None  # the judge's answer pair, the same on every step
    # draft draws fresh images of the round's prompts (each once, in job order) rather than training on the samples
    prompt_list = list(dict.fromkeys(s.prompt for s in samples)) if draft else []
    schedule = flow.euler_schedule(cfg.generate.num_timesteps, cfg.generate.timestep_shift)
    for step in bar:
        for micro in range(cfg.train.grad_accum_steps):
            sde, target, judged = None, None, None
            if draft:
                prompts, noise = draw_prompts(prompt_list, tuple(samples[0].x0.shape), step, micro, cfg, dist)
                x0 = noise.to(device)
                out = draft_rollout(model, prompts, x0, grid, *schedule, obj.draft_steps or len(schedule[0]),
                                    reference if obj.constraint == Constraint.kl else None)
                log_odds = model.latent_answer_log_odds(out.tokens, grid, judge_questions(templates, prompts), answers)
                loss, parts = draft_loss(log_odds, out.kl, obj.kl_weight)
                weights = torch.ones(len(prompts), x0.shape[1])  # no map: every token counts alike
                grad_norm = engine.backward_and_step(loss)
                continue  # the rest of the micro-step trains on the round's samples, which draft does not
            if rollout:
                batch, sde = draw_steps(samples, step, micro, cfg, dist)
                sde = dataclasses.replace(sde, x_t=sde.x_t.to(device), x_next=sde.x_next.to(device),
                                          t=sde.t.to(device), dt=sde.dt.to(device))
                x0, x_t, t, prompts = sde.x_t, sde.x_t, sde.t, [s.prompt for s in batch]
            else:
                batch, t, noise, drop = draw_batch(samples, units, step, micro, cfg, dist)
                x0 = torch.stack([s.x0 for s in batch])
                prompts = [None if d else s.prompt for s, d in zip(batch, drop.tolist())]
                x_t = flow.interpolate(x0, noise, t).to(device)
                target = flow.velocity_target(x0, noise).to(device)
            weights = torch.stack([s.weights for s in batch]).to(device)
            guided = obj.guided or rollout
            v = (model.guided_velocity if guided else model.velocity)(prompts, x_t, t.to(device), grid)
            v_ref = None
            if reference is not None:
                with torch.no_grad():
                    v_ref = (reference.guided_velocity if guided else reference.velocity)(
                        prompts, x_t, t.to(device), grid)
            offset = None
            if distil:  # the round's start judges its own clean estimates: the guided step it would take
                offset, judged = guided_velocity_shift(reference, x_t, t, v_ref, prompts, templates, grid,
                                                       obj.judge_strength, obj.judge_until)
            loss, parts = srum_loss(v, target, weights, obj, v_ref=v_ref, step=sde, offset=offset)
            # A non-finite loss is not raised here, on one rank: its NaN gradients make DeepSpeed's (global) grad
            # norm non-finite on every rank alike, and the guard below stops all of them at the same step.
            grad_norm = engine.backward_and_step(loss)
        try:
            if guard.check(step, grad_norm):
                finite["weights"] &= bool(torch.isfinite(weights).all())
                finite["inputs"] &= bool(torch.isfinite(x0).all())
                logger.warning("stage=train step=%d bad_step grad_norm=%.3g loss=%.3g (%d of train.max_bad_steps=%d)",
                               step, grad_norm, float(loss.detach()), len(guard.bad), cfg.train.max_bad_steps)
        except TrainingDiverged as e:
            _stop(str(e), guard.first_bad_step, finite, engine, checkpoints, dist)
        metrics = {"loss": float(loss.detach()), **{k: float(v) for k, v in parts.items()}, "grad_norm": grad_norm,
                   "lr": engine.lr, "weight_mean": float(weights.mean()),
                   "negative_weight_fraction": float((weights < neutral).float().mean()),
                   "skipped_steps": float(engine.skipped_steps)}
        if judged is not None:  # the last micro-batch's guided rows: how often guidance acts, what the judge says
            metrics["guided_fraction"] = len(judged) / len(x_t)
            if len(judged):
                metrics["judge_log_odds"] = float(judged.mean())
        if dist.is_main and step % cfg.log.every == 0:
            bar.set_postfix(loss=f"{metrics['loss']:.4f}")
            logger.info("stage=train step=%d %s", step, " ".join(f"{k}={v:.5g}" for k, v in metrics.items()))
            if writer is not None:
                for k, v in metrics.items():
                    writer.add_scalar(f"train/{k}", v, step)
        if step + 1 == steps or (cfg.train.save_every and (step + 1) % cfg.train.save_every == 0):
            engine.save(checkpoints, step + 1, keep=cfg.output.keep_checkpoints, metrics=metrics)
    return metrics


def _stop(what: str, first_bad: int, finite: dict[str, bool], engine: TrainEngine, checkpoints: Path,
          dist: DistInfo) -> None:
    """Point `latest` at the last checkpoint before `first_bad` (every rank agrees first), then raise."""
    good = good_checkpoint(checkpoints, first_bad)
    dist.barrier()
    if dist.is_main:
        engine.point_latest(checkpoints, good)
    dist.barrier()
    where = (f"latest now points at {checkpoints / good} (saved before the first bad step)" if good else
             f"no checkpoint predates the first bad step, so {checkpoints} will restart from step 0")
    raise TrainingDiverged(f"training diverged: {what}; likely cause: "
                           f"{likely_cause(finite['weights'], finite['inputs'], engine.lr)}; {where}; "
                           "fix the cause and rerun the same command")
