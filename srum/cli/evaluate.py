"""Evaluate a checkpoint: generate images for a benchmark's prompts, judge them, write scores and a report.

    python launch/evaluate.py --checkpoint checkpoints/shapes-tiny --benchmark shapes --split val --out runs/eval-base

Writes DIR/scores.json ({benchmark, split, checkpoint, categories, overall, n_images, ...}), DIR/images/,
DIR/images.json (one record per image) and DIR/report.html. With --understanding (a prompt world) it also
measures balanced yes/no understanding accuracy on renders of the split, and with --self-judge the AUROC of
the model's own yes/no judgement of its images against the judge's verdict (score == 1).

T2I-CompBench (`--benchmark t2i-compbench --prompts DIR`): judges `vlm` (SRUM's Qwen2.5-VL protocol) and `official`
(BLIP-VQA / CLIPScore / OWLv2 per category) read local weights from `--judge-paths vlm=DIR,blip=DIR,clip=DIR,owl=DIR`;
`--tiny-judges DIR` writes tiny random stand-ins there and uses them (plumbing only). Images are also copied to
DIR/<category>/samples/<prompt>_<index>.png for T2I-CompBench's own scripts, whose vqa_result.json files
`--import-results FILE_OR_DIR` reads back (with --out DIR of an earlier run; nothing is generated). Also writes
DIR/scores.md (paper column order, ×100). `--rejudge --out DIR` scores an earlier evaluation's saved images again
with the current judge (after a judge change), generating nothing; with --self-judge the checkpoint that drew them
(or --checkpoint) judges them too, and `--compare` sets its mean P(yes) beside the judge's score.

    python launch/evaluate.py --compare runs/eval-base runs/eval-srum [--out table.md]   # deltas vs the first

Launched with several processes (`torchrun --nproc_per_node 8 launch/evaluate.py ...`, or deepspeed), the images
are shared out across ranks, each rank on its own GPU; the records are the same as a one-process run's. A plain
`python launch/evaluate.py` does that itself: it starts one process per GPU, or on a CPU-only machine one
single-threaded process per core (`--procs N` to choose, `--procs 1` for one process).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from srum.config import ModelConfig
from srum.evaluation.benchmarks import COMPBENCH_CATEGORIES, compbench_prompts
from srum.evaluation.evaluate import (generate_and_judge, import_compbench_results, rejudge_records,
                                      write_compbench_samples)
from srum.evaluation.judges import build_judge, parse_judge_paths
from srum.evaluation.judges.vlm import SPLIT
from srum.evaluation.report import compare_scores, summary_extras, write_report, write_scores
from srum.evaluation.tiny_judges import make_tiny_judges
from srum.guidance import guide_factory
from srum.models.registry import load_unified_model
from srum.rewards.judge import templates_for
from srum.utils.device import rank_device
from srum.utils.dist import DistInfo, exit_process, init_distributed
from srum.utils.io import write_manifest
from srum.utils.logging import setup_logging
from srum.worlds.registry import WORLDS, world_for

logger = logging.getLogger("srum.evaluate")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", help="model folder (srum format or official BAGEL release)")
    ap.add_argument("--benchmark", choices=[*sorted(WORLDS), "t2i-compbench"], help="a prompt world, or T2I-CompBench")
    ap.add_argument("--split", default="val")
    ap.add_argument("--prompts", help="t2i-compbench: folder of <category>_<split>.txt prompt files")
    ap.add_argument("--out", type=Path, help="evaluation folder (with --compare: optional Markdown file)")
    ap.add_argument("--judge", default=None,
                    help="vlm | official | a world's name (default: a world's own exact judge, vlm otherwise)")
    ap.add_argument("--judge-paths", default=None, help="local judge weights: vlm=DIR,blip=DIR,clip=DIR,owl=DIR")
    ap.add_argument("--tiny-judges", type=Path, default=None,
                    help="write tiny random judge models to DIR and use them (CPU dry runs; scores are meaningless)")
    ap.add_argument("--judge-device", default=None,
                    help="device of the judge models (default: this rank's GPU if present, else cpu); 'split' "
                         "spreads a judge too large for one GPU (Qwen2.5-VL-72B) over all of them, one process")
    ap.add_argument("--judge-max-new-tokens", type=int, default=512, help="vlm: answer length (official: 512)")
    ap.add_argument("--failure-score", default="official", choices=["official", "exclude"],
                    help="vlm: an unparseable answer scores -1 and is averaged in (official) or is left out")
    ap.add_argument("--complex-subsets", action="store_true",
                    help="t2i-compbench: also complex_action and complex_spatial; complex = mean of the three (SRUM)")
    ap.add_argument("--import-results", type=Path, default=None,
                    help="read T2I-CompBench vqa_result.json (file or folder tree) into --out's records; no generation")
    ap.add_argument("--rejudge", action="store_true",
                    help="judge --out's saved images again with the current judge (after a judge change); no generation")
    ap.add_argument("--compare", nargs="+", default=None,
                    help="scores.json files or folders: one table, deltas against the first; A+B pools the images of "
                         "two evaluations of the same prompts (e.g. two seeds); understanding accuracy where measured")
    ap.add_argument("--windows", type=int, default=None,
                    help="with --compare: paired deltas per window of N prompt indices per category too (an online "
                         "run with generate.limit_per_category=N trains on window w in round w + 1)")
    ap.add_argument("--requirements", action="store_true",
                    help="with --compare: the share of each kind of requirement met (a world's judge records them; "
                         "ShapesWorld: objects by shape, relations by family, counts), paired against the first")
    ap.add_argument("--images-per-prompt", type=int, default=1)
    ap.add_argument("--limit", type=int, default=None, help="at most this many prompts per category")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=None, help="image side (default: a world's image size, 1024 otherwise)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=None, help="override the checkpoint's num_timesteps")
    ap.add_argument("--cfg", type=float, default=None, help="override the text guidance scale")
    ap.add_argument("--shift", type=float, default=None, help="override the timestep shift")
    ap.add_argument("--think", action="store_true")
    ap.add_argument("--judge-guidance", type=float, default=0.0,
                    help="> 0: the model's own judge steers the sampler (srum.guidance), this far per step")
    ap.add_argument("--judge-guidance-until", type=float, default=0.5,
                    help="judge guidance acts at flow times above this (1 = noise)")
    ap.add_argument("--understanding", action="store_true", help="a world: also measure understanding accuracy")
    ap.add_argument("--self-judge", action="store_true",
                    help="a world: AUROC of the model judging its images (with --rejudge: an earlier evaluation's)")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--verbose", action="store_true", help="DEBUG lines and all third-party output")
    ap.add_argument("--procs", type=int, default=None,
                    help="processes to share the images over (default: one per GPU, else one per CPU core)")
    return ap.parse_args()


def check_args(args: argparse.Namespace) -> None:
    """Path and argument errors in one line, before anything is loaded."""
    if not args.checkpoint or not args.benchmark or args.out is None:
        raise SystemExit("evaluate.py: needs --checkpoint, --benchmark and --out (or --compare / --import-results)")
    if not Path(args.checkpoint).is_dir():
        raise SystemExit(f"evaluate.py: --checkpoint {args.checkpoint} is not a folder")
    if args.benchmark == "t2i-compbench" and not (args.prompts and Path(args.prompts).is_dir()):
        raise SystemExit(f"evaluate.py: --benchmark t2i-compbench needs --prompts DIR (got {args.prompts!r})")
    for flag, hook in (("understanding", "understanding"), ("self_judge", "self_judge_auroc")):
        if getattr(args, flag) and not hasattr(world_for(args.benchmark), hook):
            raise SystemExit(f"evaluate.py: --{flag.replace('_', '-')} needs a prompt world whose tiny model was "
                             f"taught its questions; --benchmark {args.benchmark} has none")
    if args.judge_guidance < 0 or not 0 <= args.judge_guidance_until < 1:
        raise SystemExit(f"evaluate.py: --judge-guidance {args.judge_guidance} must be >= 0 and "
                         f"--judge-guidance-until {args.judge_guidance_until} in [0, 1)")
    for name in ("limit", "batch_size", "images_per_prompt", "steps", "size", "procs"):
        v = getattr(args, name)
        if v is not None and v <= 0:
            raise SystemExit(f"evaluate.py: --{name.replace('_', '-')} {v} must be > 0")


def relaunch_sharded(args: argparse.Namespace) -> bool:
    """Rerun this command under torch's launcher with one process per GPU (or per CPU core, one thread each);
    False when already launched that way or one process is asked for."""
    if "RANK" in os.environ or args.judge_device == SPLIT:
        return False
    import torch

    procs = args.procs or (torch.cuda.device_count() if torch.cuda.is_available() else (os.cpu_count() or 1))
    if procs <= 1:
        return False
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    if not torch.cuda.is_available() and (said := oversubscribed(procs, env["OMP_NUM_THREADS"], os.cpu_count())):
        logger.warning(said)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs),
           "--module", "srum.cli.evaluate", *sys.argv[1:]]
    code = subprocess.call(cmd, env=env)
    if code:
        raise SystemExit(code)
    return True


def oversubscribed(procs: int, threads: str, cores: int | None) -> str | None:
    """A warning when CPU processes × their threads exceed the cores: the ranks' thread pools then spin against
    each other (2 processes × 2 threads on 2 cores sampled 24× slower than with one thread each)."""
    if not threads.isdigit() or not cores or procs * int(threads) <= cores:
        return None
    return (f"{procs} processes × OMP_NUM_THREADS={threads} threads exceed the {cores} CPU cores: sampling runs many "
            f"times slower; set OMP_NUM_THREADS={max(cores // procs, 1)} or fewer --procs")


def build_eval_judge(args: argparse.Namespace, judge_name: str, dist: DistInfo):
    paths = parse_judge_paths(args.judge_paths)
    if args.tiny_judges is not None:
        if dist.is_main:  # one writer; the other ranks then find the folders written and reuse them
            make_tiny_judges(args.tiny_judges)
        dist.barrier()
        paths = {**{k: str(v) for k, v in make_tiny_judges(args.tiny_judges).items()}, **paths}
    if args.judge_device == SPLIT:
        if dist.world_size > 1:
            raise SystemExit("--judge-device split spreads one judge over every GPU: run one process, not torchrun")
        device = SPLIT
    else:
        device = str(rank_device(args.judge_device or "auto", dist.local_rank))
    options = {"vlm": {"max_new_tokens": args.judge_max_new_tokens, "failure_score": args.failure_score}}.get(
        judge_name, {})
    return build_judge(judge_name, device=device, paths=paths, **options)


def rescore(args: argparse.Namespace) -> None:
    """--import-results: replace the scores of --out's records by T2I-CompBench's, rewrite scores and reports."""
    if args.out is None or not (args.out / "images.json").is_file():
        raise SystemExit("--import-results needs --out DIR of an earlier evaluation (DIR/images.json)")
    summary = json.loads((args.out / "scores.json").read_text())
    records = json.loads((args.out / "images.json").read_text())
    if not all("question_id" in r for r in records):
        records = write_compbench_samples(args.out, records)
    n = import_compbench_results(records, args.import_results)
    keep = summary_extras(summary)
    keep["imported"] = {"from": str(args.import_results), "records": n}
    summary = write_scores(args.out, summary["benchmark"], summary["split"], summary["checkpoint"], records, keep)
    write_report(args.out, summary, records)
    logger.info("imported=%d overall=%.4f", n, summary["overall"])


def self_judge_model(args: argparse.Namespace, summary: dict) -> tuple[str, object]:
    """--rejudge --self-judge: the model that judges an earlier evaluation's images, --checkpoint or the one that
    drew them, with its path; refused in one line where the world has no self-judge or the folder is gone."""
    world = world_for(summary["benchmark"])
    if not hasattr(world, "self_judge_auroc"):
        raise SystemExit(f"evaluate.py: --self-judge needs a prompt world whose tiny model was taught its questions; "
                         f"{args.out} evaluated {summary['benchmark']}")
    checkpoint = args.checkpoint or summary["checkpoint"]
    if not Path(checkpoint).is_dir():
        raise SystemExit(f"evaluate.py: --self-judge: checkpoint {checkpoint} is not a folder (pass --checkpoint)")
    device = str(rank_device(args.device, 0))
    return str(checkpoint), load_unified_model(ModelConfig(path=checkpoint, dtype=args.dtype, device=device))


def rejudge(args: argparse.Namespace) -> None:
    """--rejudge: score --out's saved images again with the judge (default: the one that judged them), rewrite
    scores, tables and report; the summary records the previous overall score."""
    if args.out is None or not (args.out / "images.json").is_file():
        raise SystemExit("--rejudge needs --out DIR of an earlier evaluation (DIR/images.json)")
    summary = json.loads((args.out / "scores.json").read_text())
    own = self_judge_model(args, summary) if args.self_judge else None
    name = args.judge or summary.get("judge", summary["benchmark"])  # older summaries: the world's own judge
    judge = build_eval_judge(args, name, DistInfo(0, 1, 0, None))
    records = rejudge_records(json.loads((args.out / "images.json").read_text()), args.out, judge)
    keep = summary_extras(summary)
    keep["rejudged"] = {"judge": name, "previous_overall": summary["overall"]}
    if own is not None:  # the checkpoint's own judge on the same pictures: did a run persuade its judge, or improve?
        checkpoint, model = own
        verdict = world_for(summary["benchmark"]).self_judge_auroc(model, args.out, records)
        keep["self_judge"] = {**verdict, "checkpoint": checkpoint}
        logger.info("self_judge mean_p_yes=%.4f auroc=%s", verdict["mean_p_yes"], verdict["auroc"])
    new = write_scores(args.out, summary["benchmark"], summary["split"], summary["checkpoint"], records, keep)
    write_report(args.out, new, records)
    logger.info("rejudged=%d judge=%s overall=%.4f (was %.4f)", len(records), name, new["overall"], summary["overall"])


def main() -> None:
    args = parse_args()
    setup_logging(level="DEBUG" if args.verbose else "INFO")
    if args.windows is not None and (not args.compare or args.windows <= 0):
        raise SystemExit(f"evaluate.py: --windows {args.windows} needs --compare and a window size > 0")
    if args.requirements and not args.compare:
        raise SystemExit("evaluate.py: --requirements needs --compare (one or more evaluation folders)")
    if args.compare:
        try:
            print(compare_scores(args.compare, args.out, args.windows, args.requirements), end="")
        except (FileNotFoundError, ValueError) as e:
            raise SystemExit(f"evaluate.py: {e}") from None
        return
    if args.import_results is not None:
        rescore(args)
        return
    if args.rejudge:
        rejudge(args)
        return
    check_args(args)
    if relaunch_sharded(args):
        return
    with init_distributed() as dist:  # one rank for a plain `python` run; torchrun / deepspeed shard the images
        evaluate(args, dist)
    if dist.world_size > 1:
        exit_process(0)


def evaluate(args: argparse.Namespace, dist: DistInfo) -> None:
    device = rank_device(args.device, dist.local_rank)
    model = load_unified_model(ModelConfig(path=args.checkpoint, dtype=args.dtype, device=str(device)))
    overrides = {k: v for k, v in (("num_timesteps", args.steps), ("cfg_text_scale", args.cfg),
                                   ("timestep_shift", args.shift)) if v is not None}
    model.set_sampling(**overrides)
    world = world_for(args.benchmark)
    if world is not None:
        items = world.prompts(args.split, args.limit)
        judge_name, size = args.judge or args.benchmark, args.size or world.IMAGE_SIZE
    else:
        cats = COMPBENCH_CATEGORIES + (("complex_action", "complex_spatial") if args.complex_subsets else ())
        items = compbench_prompts(args.prompts, args.split, args.limit, cats)
        judge_name, size = args.judge or "vlm", args.size or 1024
    args.out.mkdir(parents=True, exist_ok=True)
    steering, guide_for = None, None
    if args.judge_guidance > 0:  # the model's own judge questions: its world's, else the digit scale
        steering = {"strength": args.judge_guidance, "until": args.judge_guidance_until,
                    "templates": args.benchmark if world is not None else "digits"}
        guide_for = guide_factory(model, templates_for(steering["templates"]), model.latent_grid(size, size),
                                  args.judge_guidance, args.judge_guidance_until)
    records = generate_and_judge(model, items, build_eval_judge(args, judge_name, dist), args.out,
                                 args.images_per_prompt, args.seed, size, args.batch_size, args.think, dist=dist,
                                 guide_for=guide_for)
    if not dist.is_main:
        return
    if args.benchmark == "t2i-compbench":
        records = write_compbench_samples(args.out, records)
    extra = {"seed": args.seed, "images_per_prompt": args.images_per_prompt, "size": size,
             "guidance": model.sampling_settings(), "judge": judge_name, "judge_guidance": steering}
    if args.self_judge:
        extra["self_judge"] = world.self_judge_auroc(model, args.out, records)
    if args.understanding:
        extra["understanding"] = world.understanding(model, [it.prompt for it in items], seed=args.seed)
    summary = write_scores(args.out, args.benchmark, args.split, str(args.checkpoint), records, extra)
    write_report(args.out, summary, records)
    write_manifest(args.out, {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                   extra={"stage": "eval", "overall": summary["overall"], "n_images": summary["n_images"]})
    logger.info("overall=%.4f %s", summary["overall"], " ".join(f"{k}={v:.4f}" for k, v in summary["categories"].items()))


if __name__ == "__main__":
    main()
