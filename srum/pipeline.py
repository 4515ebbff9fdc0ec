"""Stage 6: SRUM rounds — generate → propose regions → self-judge → reward maps → train → export → evaluate.

The run folder holds one folder per round (`round1/generate`, `round1/score`, `round1/checkpoints`,
`round1/export`, `round1/eval`) with a manifest per finished stage. Each stage skips the work it
finds done, so rerunning the same command after a crash (even `kill -9`) continues where it stopped.
Round r+1 starts from round r's export.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import json
import logging
import time
from pathlib import Path

import torch

from srum.config import (Constraint, EvalVariant, GenerateSource, KlReference, ObjectiveKind, RunConfig,
                         TrainStart, config_to_dict, save_config)
from srum.evaluation.benchmarks import PromptItem, load_prompt_source
from srum.generate import WorldRenders, check_reusable, generate_stage, reuse_generated
from srum.guidance import guide_factory
from srum.models.interface import UnifiedModel
from srum.records import JudgeRow
from srum.rewards.judge import templates_for
from srum.models.registry import load_unified_model
from srum.utils.device import rank_device, resolve_dtype
from srum.utils.artifacts import quarantined
from srum.utils.dist import DistInfo, reported_by_main
from srum.utils.io import atomic_write_json, remove_stale_temps, write_manifest
from srum.worlds.registry import world_for

logger = logging.getLogger(__name__)


ROUND_SEED_STRIDE = 1_000_003  # round r draws with generate.seed + (r − 1)·stride: fresh noise every round


def sampling_from(cfg: RunConfig, num_timesteps: int | None = None) -> dict:
    """The recipe's sampler settings, by name, for the backend (which owns their meaning)."""
    g = cfg.generate
    return {"num_timesteps": num_timesteps or g.num_timesteps, "timestep_shift": g.timestep_shift,
            "cfg_text_scale": g.cfg_text_scale, "cfg_img_scale": g.cfg_img_scale, "cfg_interval": list(g.cfg_interval),
            "cfg_renorm_type": g.cfg_renorm_type, "cfg_renorm_min": g.cfg_renorm_min}


def load_model(path: str | Path, cfg: RunConfig, dist: DistInfo, num_timesteps: int | None = None) -> UnifiedModel:
    device = rank_device(cfg.model.device, dist.local_rank)
    model_cfg = dataclasses.replace(cfg.model, path=str(path), device=str(device))
    return load_unified_model(model_cfg, sampling=sampling_from(cfg, num_timesteps),
                              max_think_tokens=cfg.generate.max_think_tokens)


def round_items(items: list[PromptItem], limit: int | None, r: int) -> list[PromptItem]:
    """Round r's prompts: per category, the r-th window of `limit` prompts (wrapping), so online rounds see fresh
    prompts while round 1 keeps the first `limit`, as a single round always did. None: every prompt, every round."""
    if limit is None:
        return items
    by_cat: dict[str, list[PromptItem]] = {}
    for it in items:
        by_cat.setdefault(it.category, []).append(it)
    out = []
    for cat_items in by_cat.values():
        n = min(limit, len(cat_items))
        start = (r - 1) * n
        out += [cat_items[(start + k) % len(cat_items)] for k in range(n)]
    return out


def _objective_settings(cfg: RunConfig) -> str:
    """The plan line's settings of the group objectives (official has none)."""
    obj, k = cfg.objective, cfg.generate.images_per_prompt
    if obj.kind == ObjectiveKind.official:
        return ""
    if obj.kind == ObjectiveKind.best_of:
        return f" (the best {obj.keep_top} of K={k} per group by image reward, if above the group's lowest, at weight 1)"
    if obj.kind == ObjectiveKind.judge_distill:
        return (f" (the round's start's velocity moved by its own judge's guidance, strength {obj.judge_strength} "
                f"above t={obj.judge_until}; no reward map read)")
    if obj.kind == ObjectiveKind.draft:
        steps = cfg.generate.num_timesteps - 1
        return (f" (fresh images of the round's prompts, gradients through the sampler's last "
                f"{obj.draft_steps or steps} of {steps} steps into its own judge's log-odds; no reward map read)")
    if obj.kind == ObjectiveKind.dpo:
        return (f" ({obj.dpo_pairs} pair(s) per group of K={k}: its j-th best image by image reward against its j-th "
                f"worst, β={obj.dpo_beta}, against the round's start)")
    parts = [f"K={k} per group", f"std floor {obj.adv_std_floor}", f"clip ±{obj.adv_clip}"]
    if obj.kind == ObjectiveKind.nft:
        parts.append(f"β={obj.nft_beta}")
    if obj.kind == ObjectiveKind.flow_grpo:
        parts.append(f"SDE rollouts a={cfg.generate.sde_noise}, ratio clip ±{obj.pg_clip}")
    if obj.group_noise:
        parts.append("group noise")
    if obj.optimality.value == "map":
        parts.append("optimality from the signed map")
    if not obj.nft_negative:
        parts.append("no negative half")
    return f" ({', '.join(parts)})"


_KL_TO = {KlReference.start: "round's start", KlReference.base: "starting checkpoint in every round"}


def plan(cfg: RunConfig, world_size: int) -> str:
    """What a run will do, for `--dry-run` and the log."""
    lines = [f"model: {cfg.model.backend} from {cfg.model.path} ({cfg.model.dtype} on {cfg.model.device})",
             f"prompts: {cfg.generate.prompts} (split {cfg.generate.split}, limit {cfg.generate.limit_per_category}"
             f" per category), {cfg.generate.images_per_prompt} image(s) each at {cfg.generate.resolution}px, "
             f"think={cfg.generate.think}",
             f"regions: {cfg.regions.proposer.value}, top {cfg.regions.max_regions}, boxes end {cfg.regions.box_end}",
             f"judge: {cfg.judge.mode.value} mode, templates {cfg.judge.template_set}, global={cfg.judge.global_layout}",
             f"generate source: {cfg.generate.source.value}"
             + (" (ground-truth renders: the capacity reference, not SRUM)"
                if cfg.generate.source == GenerateSource.world else ""),
             f"reward: source {cfg.reward.source}" + (f" {dict(cfg.reward.mix)}" if cfg.reward.mix else "")
             + (" (the world's exact judge: an upper bound, not self-rewarding)" if "oracle" in cfg.reward.scorers
                else "") + (f", the oracle not checking {', '.join(cfg.reward.oracle_ignore)}"
                            if cfg.reward.oracle_ignore else "")
             + f", map {cfg.reward.map.value}, binarize={cfg.reward.binarize}"
             + (f", images with a global score below {cfg.reward.min_global} dropped"
                if cfg.reward.min_global is not None else "")
             + (f", hindsight: each image trained on its best variant in {', '.join(cfg.reward.hindsight)}"
                if cfg.reward.hindsight else ""),
             f"objective: {cfg.objective.kind.value}{_objective_settings(cfg)}"
             + (", on the guided velocity" if cfg.objective.guided else "")
             + f", constraint={cfg.objective.constraint.value}"
             + {"anchor": f" (λ={cfg.objective.anchor_weight})",
                "kl": f" (β={cfg.objective.kl_weight}, to the {_KL_TO[cfg.objective.kl_reference]})",
                "none": ""}[cfg.objective.constraint.value],
             f"train: {cfg.train.rounds} round(s) × {cfg.train.max_steps or cfg.train.epochs} "
             f"{'steps' if cfg.train.max_steps else 'epochs'}"
             + (f" on the samples of the last {cfg.train.replay_rounds} rounds" if cfg.train.replay_rounds > 1 else "")
             + (", each from the starting checkpoint" if cfg.train.start_from == TrainStart.base else "")
             + f", ZeRO-{cfg.train.zero_stage} on {world_size} rank(s), "
             f"micro-batch {cfg.train.micro_batch_size} × accumulation {cfg.train.grad_accum_steps}, lr {cfg.train.lr}, "
             f"{'generation side only' if cfg.train.freeze_und else 'both experts'}",
             f"eval: {cfg.eval.prompts or 'off'} ({cfg.eval.judge}, {cfg.eval.split}, "
             f"{'/'.join(v.value for v in cfg.eval.variants)})",
             f"output: {cfg.output.dir}"]
    return "\n".join(lines)


def run_srum(cfg: RunConfig, dist: DistInfo) -> Path:
    """All rounds; returns the last round's export folder."""
    from srum.engine import TrainEngine, frozen_reference
    from srum.evaluation.round_report import write_round_report
    from srum.rewards.regions import build_proposer
    from srum.rewards.sources import build_scorer
    from srum.score import judged_rows, score_stage, score_totals
    from srum.training import train_round

    run_dir = Path(cfg.output.dir)
    if not cfg.output.resume and (run_dir / "manifest.json").is_file():
        raise FileExistsError(f"output.dir={run_dir} already holds a run and output.resume=false: choose another "
                              "output.dir, or set output.resume=true to continue that run")
    if dist.is_main and run_dir.is_dir():
        removed = remove_stale_temps(run_dir)  # left by a killed run; no rank writes yet
        if removed:
            logger.info("removed %d temp files a stopped run left in %s", removed, run_dir)
    dist.barrier()  # every rank has looked before rank 0 writes
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
        write_manifest(run_dir, config_to_dict(cfg))
    dist.barrier()
    writer = None
    if dist.is_main and cfg.log.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tensorboard"))
    world = world_for(cfg.generate.prompts)
    all_items = load_prompt_source(cfg.generate.prompts, cfg.generate.split, None)
    if cfg.eval.prompts and cfg.eval.base:
        _evaluate_once(Path(cfg.model.path), cfg, run_dir / "round0", dist, writer, 0)
    model_path: Path | str = cfg.model.path
    for r in range(1, cfg.train.rounds + 1):
        rd = run_dir / f"round{r}"
        export = rd / "export"
        if (export / "DONE.json").is_file():
            logger.info("round=%d already exported at %s", r, export)
            model_path = export
            if cfg.eval.prompts:  # a kill between export and evaluation leaves the evaluation to do
                _evaluate_once(export, cfg, rd, dist, writer, r)
            continue
        started = time.monotonic()
        torch.manual_seed(cfg.train.seed * dist.world_size + dist.rank)
        unified = load_model(model_path, cfg, dist)
        grid = unified.latent_grid(cfg.generate.resolution, cfg.generate.resolution)
        items = round_items(all_items, cfg.generate.limit_per_category, r)
        gen_cfg = dataclasses.replace(cfg.generate, seed=cfg.generate.seed + (r - 1) * ROUND_SEED_STRIDE)

        if r == 1 and cfg.generate.reuse_from:  # later rounds draw with their own, new model
            reported_by_main(lambda: check_reusable(Path(cfg.generate.reuse_from), config_to_dict(cfg)), dist)
            if dist.is_main:
                reuse_generated(Path(cfg.generate.reuse_from), rd / "generate")
            dist.barrier()
        sampler = WorldRenders(unified, world.render_truth) if cfg.generate.source == GenerateSource.world else unified
        guide_for = (guide_factory(unified, templates_for(cfg.judge.template_set), grid, cfg.generate.judge_guidance,
                                   cfg.generate.judge_guidance_until) if cfg.generate.judge_guidance > 0 else None)
        generate_stage(sampler, items, gen_cfg, rd / "generate", dist, cfg.log.progress, guide_for)
        dist.barrier()
        _stage_manifest(cfg, rd / "generate", dist, round=r, prompts=len(items), seed=gen_cfg.seed,
                        quarantined=quarantined(rd / "generate"))

        device = rank_device(cfg.model.device, dist.local_rank)
        dtype = resolve_dtype(cfg.model.dtype, device)
        proposer = build_proposer(cfg.regions, device, dtype, cfg.generate.prompts)
        variants = (functools.partial(world.prompt_variants, kinds=list(cfg.reward.hindsight))
                    if cfg.reward.hindsight else None)
        score_stage(build_scorer(cfg, unified), proposer, cfg.reward, rd / "generate", rd / "score", grid, dist,
                    cfg.log.progress, truth=world.truth if world is not None else None, variants=variants)
        dist.barrier()
        rows = judged_rows(rd / "score") if dist.is_main else []
        truth = _round_truth(rows, run_dir, r, writer, exact=cfg.reward.source == "oracle") if dist.is_main else {}
        totals = score_totals(rows) if dist.is_main else {}
        _stage_manifest(cfg, rd / "score", dist, round=r, **totals, reward_truth=truth,
                        quarantined=quarantined(rd / "score"))
        if writer is not None:
            writer.add_scalar("reward/global_mean", totals["global_sum"] / max(totals["images"], 1), r)
            writer.add_scalar("reward/kept_fraction", totals["kept"] / max(totals["images"], 1), r)
            writer.add_scalar("reward/relabelled_fraction", totals["relabelled"] / max(totals["images"], 1), r)
            writer.add_scalar("judge/parse_failures", totals["parse_failures"], r)

        samples = reported_by_main(lambda: replay_samples(run_dir, r, cfg, unified.latents_to_tokens), dist)
        train_from = cfg.model.path if cfg.train.start_from == TrainStart.base else model_path
        if train_from != model_path:  # the latest model drew and judged the samples; the starting checkpoint learns
            del unified
            gc.collect()
            unified = load_model(train_from, cfg, dist)
        train_dtype = resolve_dtype(cfg.train.dtype, device)
        wants_reference = (cfg.objective.constraint == Constraint.kl or cfg.objective.kl_weight > 0
                           or cfg.objective.kind.needs_start)
        reference = None
        base_reference = cfg.objective.kl_reference == KlReference.base
        if wants_reference and (cfg.train.lora_rank == 0 or base_reference):  # a frozen copy: the round's start,
            reference = frozen_reference(  # or the run's starting checkpoint in every round
                load_model(cfg.model.path if base_reference else train_from, cfg, dist), cfg.train, dist, train_dtype)
        engine = TrainEngine(unified, cfg.train, dist, train_dtype)
        if wants_reference and reference is None:  # the round's start: the same model with its adapters off
            reference = engine.reference_view()
        metrics = train_round(engine.model_view(), engine, samples, grid, cfg, rd / "checkpoints", dist, reference,
                              writer)
        state = engine.full_state_dict()
        if dist.is_main:
            unified.save_pretrained(export, state_dict=state)
            write_round_report(rd, grid, truth=truth)  # before DONE.json: a finished round has its report
            seconds = round(time.monotonic() - started, 1)
            write_manifest(export, config_to_dict(cfg), extra={"stage": "export", "round": r, "seconds": seconds})
            atomic_write_json(export / "DONE.json", {"round": r, "samples": len(samples), "final_metrics": metrics,
                                                     "seconds": seconds})
        dist.barrier()
        _stage_manifest(cfg, rd / "checkpoints", dist, round=r, samples=len(samples), **metrics)
        del engine, unified, reference, state
        gc.collect()
        model_path = export
        if cfg.eval.prompts:
            _evaluate_once(export, cfg, rd, dist, writer, r)
        dist.barrier()
    if dist.is_main:
        write_curve(run_dir, cfg.train.rounds)
    if writer is not None:
        writer.close()
    return Path(model_path)


def replay_samples(run_dir: Path, r: int, cfg: RunConfig, latents_to_tokens) -> list:
    """Round r's training set: its own judged samples and those of the `train.replay_rounds` − 1 rounds before it,
    in round order. Weights are made within each sample's own round (its group's advantage is fixed when judged), so
    a replayed image keeps its verdict; DiffusionNFT's loss needs nothing else of the policy that drew it."""
    from srum.training import load_training_samples, objective_weights

    samples = []
    for k in range(max(1, r - cfg.train.replay_rounds + 1), r + 1):
        rd = run_dir / f"round{k}"
        loaded = load_training_samples(rd / "generate", rd / "score", latents_to_tokens,
                                       trajectories=cfg.objective.kind == ObjectiveKind.flow_grpo,
                                       posteriors=cfg.train.fresh_posterior)
        if cfg.reward.hindsight_balance is not None and loaded:
            loaded = balance_labels(loaded, cfg, k)
        samples += objective_weights(loaded, cfg.objective)
    return samples


def balance_labels(samples: list, cfg: RunConfig, r: int) -> list:
    """reward.hindsight_balance: each image's map times its label's importance weight (within its own round)."""
    from srum.rewards.hindsight import balance_weights, value_shares

    # parsed once per distinct prompt: a round's K images share their asked prompt, and each list is read 3 times
    values = functools.cache(functools.partial(world_for(cfg.generate.prompts).attribute_values,
                                               kinds=list(cfg.reward.hindsight)))
    asked, labels = [s.asked for s in samples], [s.prompt for s in samples]
    weights = balance_weights(asked, labels, values, cfg.reward.hindsight_balance)
    q, p, pw = (value_shares(asked, values), value_shares(labels, values),
                value_shares(labels, values, weights))
    shifted = sorted(q, key=lambda v: -abs(q[v] - p.get(v, 0.0)))[:6]
    logger.info("round %d hindsight balance: weights %.2f-%.2f; value share asked / labels / weighted labels: %s", r,
                min(weights), max(weights),
                ", ".join(f"{v} {q[v]:.3f}/{p.get(v, 0.0):.3f}/{pw.get(v, 0.0):.3f}" for v in shifted))
    return [dataclasses.replace(s, weights=s.weights * w) for s, w in zip(samples, weights)]


def _evaluate_once(checkpoint: Path, cfg: RunConfig, round_dir: Path, dist: DistInfo, writer, r: int) -> None:
    """Evaluate `checkpoint` once per `eval.variants` (the first into round_dir/eval, others into eval-<variant>),
    skipping those whose scores.json exists; overall and per-category scores also go to TensorBoard."""
    for i, variant in enumerate(cfg.eval.variants):
        name = "eval" if i == 0 else f"eval-{variant.value}"
        out = round_dir / name
        if not (out / "scores.json").is_file():
            summary = evaluate_round(checkpoint, cfg, out, dist, think=variant == EvalVariant.think)
            if writer is not None and summary:
                writer.add_scalar(f"{name}/overall", summary["overall"], r)
                for cat, v in summary["categories"].items():
                    writer.add_scalar(f"{name}/{cat}", v, r)
        dist.barrier()


def _round_truth(rows: list[JudgeRow], run_dir: Path, r: int, writer, exact: bool = False) -> dict:
    """This round's reward-vs-truth numbers (srum.evaluation.reward_truth) from its judged rows, logged, with a
    hacking check over the rounds so far; {} when the prompt world has no exact judge. `exact`: the reward is that
    judge itself, which cannot be hacked; the check is skipped (with `reward.min_global` its kept images would all be
    perfect, so any rise of their reward would read as hacking)."""
    from srum.evaluation.reward_truth import hacking_warning, reward_truth

    if not rows or all(row.truth is None for row in rows):
        return {}
    out = reward_truth([row.reward for row in rows], [row.truth for row in rows])
    out["truth_mean_all"] = sum(row.truth for row in rows) / len(rows)  # dropped images included
    history = [_read_json(run_dir / f"round{k}" / "score" / "manifest.json").get("reward_truth", {})
               for k in range(1, r)] + [out]
    warning = None if exact else hacking_warning(history)
    out["hacking_warning"] = warning
    logger.info("stage=reward_truth round=%d %s", r, " ".join(
        f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in out.items() if k != "hacking_warning"))
    if warning:
        logger.warning("stage=reward_truth round=%d %s", r, warning)
    if writer is not None:
        for k in ("reward_mean", "truth_mean", "auroc", "spearman"):
            if out.get(k) is not None:
                writer.add_scalar(f"reward_truth/{k}", out[k], r)
    return out


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def write_curve(run_dir: Path, rounds: int) -> Path:
    """`curve.json` and `curve.png`: evaluation score after each round against the cumulative wall time of the
    rounds (sampling, judging, training; evaluation excluded), from round 0 (the base) where it was evaluated."""
    points = []
    elapsed = 0.0
    for r in range(0, rounds + 1):
        drawn_at = elapsed  # round r's samples come from the model as it was when the round started
        if r > 0:
            elapsed += _read_json(run_dir / f"round{r}" / "export" / "DONE.json").get("seconds", 0.0)
        scores = _read_json(run_dir / f"round{r}" / "eval" / "scores.json")
        truth = _read_json(run_dir / f"round{r}" / "score" / "manifest.json").get("reward_truth", {})
        if scores or truth:
            points.append({"round": r, "seconds": round(elapsed, 1), "drawn_at_seconds": round(drawn_at, 1),
                           "eval_overall": scores.get("overall"),
                           "sample_truth_mean": truth.get("truth_mean_all"), "reward_mean": truth.get("reward_mean"),
                           "auroc": truth.get("auroc"), "spearman": truth.get("spearman")})
    atomic_write_json(run_dir / "curve.json", points)
    from srum.evaluation.curves import score_curve

    return score_curve(run_dir / "curve.png", points, title=run_dir.name)


def evaluate_round(export: Path, cfg: RunConfig, out: Path, dist: DistInfo, think: bool = False) -> dict:
    """Evaluate a round's export with the configured judge, split and categories, the images shared out across
    ranks; rank 0 writes the scores, the report and the manifest."""
    from srum.evaluation.evaluate import generate_and_judge
    from srum.evaluation.judges import build_judge
    from srum.evaluation.report import write_report, write_scores

    unified = load_model(export, cfg, dist, num_timesteps=cfg.eval.num_timesteps)
    items = load_prompt_source(cfg.eval.prompts, cfg.eval.split, cfg.eval.limit_per_category)
    if cfg.eval.categories:
        items = [it for it in items if it.category in cfg.eval.categories]
        if not items:
            raise ValueError(f"eval.categories={cfg.eval.categories}: none of them is in {cfg.eval.prompts}")
    options = {}
    if cfg.eval.judge == "vlm":
        options = {"max_new_tokens": cfg.eval.judge_max_new_tokens, "failure_score": cfg.eval.failure_score}
    judge = build_judge(cfg.eval.judge, device=str(rank_device(cfg.model.device, dist.local_rank)),
                        paths={"vlm": cfg.eval.judge_path} if cfg.eval.judge_path else None, **options)
    records = generate_and_judge(unified, items, judge, out, 1, cfg.eval.seed, cfg.generate.resolution,
                                 cfg.generate.batch_size, think, progress=cfg.log.progress, dist=dist)
    if not dist.is_main:
        return {}
    summary = write_scores(out, cfg.eval.prompts, cfg.eval.split, str(export), records)
    write_report(out, summary, records)
    write_manifest(out, config_to_dict(cfg), extra={"stage": "eval", "checkpoint": str(export), "think": think,
                                                    "overall": summary["overall"], "n_images": summary["n_images"]})
    logger.info("stage=eval overall=%.4f %s", summary["overall"],
                " ".join(f"{k}={v:.4f}" for k, v in summary["categories"].items()))
    return summary


def _stage_manifest(cfg: RunConfig, folder: Path, dist: DistInfo, **extra) -> None:
    if dist.is_main:
        write_manifest(folder, config_to_dict(cfg), extra={"stage": folder.name, **extra})
