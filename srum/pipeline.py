"""Stage 6: SRUM rounds — generate → propose regions → self-judge → reward maps → train → export → evaluate.

The run folder holds one folder per round (`round1/generate`, `round1/score`, `round1/checkpoints`,
`round1/export`, `round1/eval`) with a manifest per finished stage. Each stage skips the work it
finds done, so rerunning the same command after a crash (even `kill -9`) continues where it stopped.
Round r+1 starts from round r's export.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
from pathlib import Path

import torch

from srum.config import Constraint, RunConfig, config_to_dict, save_config
from srum.evaluation.benchmarks import load_prompt_source
from srum.generate import check_reusable, generate_stage, reuse_generated
from srum.models.bagel.sampling import GuidanceParams
from srum.models.registry import load_unified_model
from srum.utils.device import rank_device, resolve_dtype
from srum.utils.dist import DistInfo, all_gather_objects
from srum.utils.io import atomic_write_json, write_manifest

logger = logging.getLogger(__name__)


def guidance_from(cfg: RunConfig) -> GuidanceParams:
    g = cfg.generate
    return GuidanceParams(num_timesteps=g.num_timesteps, timestep_shift=g.timestep_shift,
                          cfg_text_scale=g.cfg_text_scale, cfg_img_scale=g.cfg_img_scale,
                          cfg_interval=tuple(g.cfg_interval), cfg_renorm_type=g.cfg_renorm_type,
                          cfg_renorm_min=g.cfg_renorm_min)


def load_model(path: str | Path, cfg: RunConfig, dist: DistInfo):
    device = rank_device(cfg.model.device, dist.local_rank)
    model_cfg = dataclasses.replace(cfg.model, path=str(path), device=str(device))
    unified = load_unified_model(model_cfg, guidance=guidance_from(cfg), max_think_tokens=cfg.generate.max_think_tokens)
    return unified


def plan(cfg: RunConfig, world_size: int) -> str:
    """What a run will do, for `--dry-run` and the log."""
    lines = [f"model: {cfg.model.backend} from {cfg.model.path} ({cfg.model.dtype} on {cfg.model.device})",
             f"prompts: {cfg.generate.prompts} (split {cfg.generate.split}, limit {cfg.generate.limit_per_category}"
             f" per category), {cfg.generate.images_per_prompt} image(s) each at {cfg.generate.resolution}px, "
             f"think={cfg.generate.think}",
             f"regions: {cfg.regions.proposer.value}, top {cfg.regions.max_regions}",
             f"judge: {cfg.judge.mode.value} mode, templates {cfg.judge.template_set}, global={cfg.judge.global_layout}",
             f"reward map: {cfg.reward.map.value}, binarize={cfg.reward.binarize}",
             f"objective: constraint={cfg.objective.constraint.value} (anchor λ={cfg.objective.anchor_weight}, "
             f"kl β={cfg.objective.kl_weight})",
             f"train: {cfg.train.rounds} round(s) × {cfg.train.max_steps or cfg.train.epochs} "
             f"{'steps' if cfg.train.max_steps else 'epochs'}, ZeRO-{cfg.train.zero_stage} on {world_size} rank(s), "
             f"micro-batch {cfg.train.micro_batch_size} × accumulation {cfg.train.grad_accum_steps}, lr {cfg.train.lr}, "
             f"{'generation side only' if cfg.train.freeze_und else 'both experts'}",
             f"eval: {cfg.eval.prompts or 'off'} ({cfg.eval.judge.value})",
             f"output: {cfg.output.dir}"]
    return "\n".join(lines)


def run_srum(cfg: RunConfig, dist: DistInfo) -> Path:
    """All rounds; returns the last round's export folder."""
    from srum.engine import TrainEngine, frozen_reference
    from srum.evaluation.round_report import write_round_report
    from srum.rewards.judge import SelfJudge, templates_for
    from srum.rewards.regions import build_proposer
    from srum.score import score_stage
    from srum.training import load_training_samples, train_round

    run_dir = Path(cfg.output.dir)
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
        write_manifest(run_dir, config_to_dict(cfg))
    dist.barrier()
    writer = None
    if dist.is_main and cfg.log.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tensorboard"))
    items = load_prompt_source(cfg.generate.prompts, cfg.generate.split, cfg.generate.limit_per_category)
    model_path: Path | str = cfg.model.path
    for r in range(1, cfg.train.rounds + 1):
        rd = run_dir / f"round{r}"
        export = rd / "export"
        if (export / "DONE.json").is_file():
            logger.info("round=%d already exported at %s", r, export)
            model_path = export
            continue
        torch.manual_seed(cfg.train.seed * dist.world_size + dist.rank)
        unified = load_model(model_path, cfg, dist)
        grid = unified.latent_grid(cfg.generate.resolution, cfg.generate.resolution)

        if r == 1 and cfg.generate.reuse_from:  # later rounds draw with their own, new model
            check_reusable(Path(cfg.generate.reuse_from), config_to_dict(cfg))  # every rank fails alike
            if dist.is_main:
                reuse_generated(Path(cfg.generate.reuse_from), rd / "generate")
            dist.barrier()
        generate_stage(unified, items, cfg.generate, rd / "generate", dist, cfg.log.progress)
        dist.barrier()
        _stage_manifest(cfg, rd / "generate", dist, round=r, prompts=len(items))

        device = rank_device(cfg.model.device, dist.local_rank)
        dtype = resolve_dtype(cfg.model.dtype, device)
        judge = SelfJudge(unified, cfg.judge, templates_for(cfg.judge.template_set))
        stats = score_stage(judge, build_proposer(cfg.regions, device, dtype), cfg.reward, rd / "generate",
                            rd / "score", grid, dist, cfg.log.progress)
        totals = _sum_stats(all_gather_objects(stats, dist))
        dist.barrier()
        _stage_manifest(cfg, rd / "score", dist, round=r, **totals)
        if writer is not None:
            writer.add_scalar("reward/global_mean", totals["global_sum"] / max(totals["images"], 1), r)
            writer.add_scalar("reward/kept_fraction", totals["kept"] / max(totals["images"], 1), r)
            writer.add_scalar("judge/parse_failures", totals["parse_failures"], r)

        samples = load_training_samples(rd / "generate", rd / "score", unified.latents_to_tokens)
        train_dtype = resolve_dtype(cfg.train.dtype, device)
        wants_reference = cfg.objective.constraint == Constraint.kl or cfg.objective.kl_weight > 0
        reference = None
        if wants_reference and cfg.train.lora_rank == 0:
            reference = load_model(model_path, cfg, dist)  # the frozen start of this round
            reference.forward_module = frozen_reference(reference.model, cfg.train, dist, train_dtype)
        unified.model.train()
        engine = TrainEngine(unified.model, cfg.train, dist, train_dtype)
        unified.forward_module = engine.engine
        if wants_reference and cfg.train.lora_rank > 0:  # the same model with its adapters off
            reference = dataclasses.replace(unified, forward_module=engine.reference_forward())
        metrics = train_round(unified, engine, samples, grid, cfg, rd / "checkpoints", dist, reference, writer)
        state = engine.full_state_dict()
        if dist.is_main:
            from srum.models.bagel.weights import save_bagel

            save_bagel(export, unified.model, unified.vae, unified.tokenizer, unified.guidance, state_dict=state)
            atomic_write_json(export / "DONE.json", {"round": r, "samples": len(samples), "final_metrics": metrics})
            write_round_report(rd, grid)
        dist.barrier()
        _stage_manifest(cfg, rd / "checkpoints", dist, round=r, samples=len(samples), **metrics)
        del engine, unified, reference, state
        gc.collect()
        model_path = export
        if cfg.eval.prompts:
            evaluate_round(export, cfg, rd / "eval", dist)
        dist.barrier()
    if writer is not None:
        writer.close()
    return Path(model_path)


def evaluate_round(export: Path, cfg: RunConfig, out: Path, dist: DistInfo) -> dict:
    """Evaluate a round's export with the configured judge (ShapesWorld oracle here; VLM judges: launch/evaluate.py),
    the images shared out across ranks; rank 0 writes the scores and the report."""
    from srum.evaluation.evaluate import generate_and_judge
    from srum.evaluation.judges import build_judge
    from srum.evaluation.report import write_report, write_scores

    unified = load_model(export, cfg, dist)
    items = load_prompt_source(cfg.eval.prompts, "val", cfg.eval.limit_per_category)
    records = generate_and_judge(unified, items, build_judge(cfg.eval.judge.value), out, 1, cfg.eval.seed,
                                 cfg.generate.resolution, cfg.generate.batch_size, progress=cfg.log.progress, dist=dist)
    if not dist.is_main:
        return {}
    summary = write_scores(out, cfg.eval.prompts, "val", str(export), records)
    write_report(out, summary, records)
    logger.info("stage=eval overall=%.4f categories=%s", summary["overall"], summary["categories"])
    return summary


def _sum_stats(per_rank: list[dict]) -> dict:
    return {k: sum(d[k] for d in per_rank) for k in per_rank[0]}


def _stage_manifest(cfg: RunConfig, folder: Path, dist: DistInfo, **extra) -> None:
    if dist.is_main:
        write_manifest(folder, config_to_dict(cfg), extra={"stage": folder.name, **extra})
