"""Evaluate a checkpoint: generate images for a benchmark's prompts, judge them, write scores and a report.

    python launch/evaluate.py --checkpoint checkpoints/shapes-tiny --benchmark shapes --split val --out runs/eval-base

Writes DIR/scores.json ({benchmark, split, checkpoint, categories, overall, n_images, ...}), DIR/images/,
DIR/images.json (one record per image) and DIR/report.html. With --understanding (ShapesWorld) it also
measures balanced yes/no understanding accuracy on renders of the split, and with --self-judge the AUROC of
the model's own yes/no judgement of its images against the judge's verdict (score == 1).
"""

from __future__ import annotations

import os
import sys

# launch/srum.py would shadow the `srum` package for scripts run from this folder: drop the folder from the path.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse
import dataclasses
import logging
from pathlib import Path

from srum.config import ModelConfig
from srum.evaluation.benchmarks import compbench_prompts, shapes_prompts
from srum.evaluation.evaluate import generate_and_judge
from srum.evaluation.judges import build_judge
from srum.evaluation.report import write_report, write_scores
from srum.models.registry import load_unified_model
from srum.utils.logging import setup_logging

logger = logging.getLogger("launch.evaluate")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="model folder (srum format or official BAGEL release)")
    ap.add_argument("--benchmark", required=True, choices=["shapes", "t2i-compbench"])
    ap.add_argument("--split", default="val")
    ap.add_argument("--prompts", help="t2i-compbench: folder of <category>_<split>.txt prompt files")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--judge", default=None, help="default: shapes for ShapesWorld")
    ap.add_argument("--images-per-prompt", type=int, default=1)
    ap.add_argument("--limit", type=int, default=None, help="at most this many prompts per category")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=None, help="image side (default: 64 for shapes, 1024 otherwise)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=None, help="override the checkpoint's num_timesteps")
    ap.add_argument("--cfg", type=float, default=None, help="override the text guidance scale")
    ap.add_argument("--shift", type=float, default=None, help="override the timestep shift")
    ap.add_argument("--think", action="store_true")
    ap.add_argument("--understanding", action="store_true", help="ShapesWorld: also measure understanding accuracy")
    ap.add_argument("--self-judge", action="store_true", help="ShapesWorld: AUROC of the model judging its images")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--device", default="auto")
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    setup_logging()
    model = load_unified_model(ModelConfig(path=args.checkpoint, dtype=args.dtype, device=args.device))
    overrides = {k: v for k, v in (("num_timesteps", args.steps), ("cfg_text_scale", args.cfg),
                                   ("timestep_shift", args.shift)) if v is not None}
    model.guidance = dataclasses.replace(model.guidance, **overrides)
    if args.benchmark == "shapes":
        items = shapes_prompts(args.split, limit=args.limit)
        judge_name, size = args.judge or "shapes", args.size or 64
    else:
        if not args.prompts:
            raise SystemExit("--benchmark t2i-compbench needs --prompts DIR (the benchmark's prompt files)")
        items = compbench_prompts(args.prompts, args.split, args.limit)
        judge_name, size = args.judge or "vlm", args.size or 1024
    args.out.mkdir(parents=True, exist_ok=True)
    records = generate_and_judge(model, items, build_judge(judge_name), args.out, args.images_per_prompt,
                                 args.seed, size, args.batch_size, args.think)
    extra = {"seed": args.seed, "images_per_prompt": args.images_per_prompt, "size": size,
             "guidance": dataclasses.asdict(model.guidance), "judge": judge_name}
    if args.self_judge:
        from srum.worlds.shapes.understanding import judge_auroc

        extra["self_judge"] = judge_auroc(model, args.out, records)
    if args.understanding:
        from srum.worlds.shapes.understanding import understanding_benchmark

        extra["understanding"] = understanding_benchmark(model, [it.prompt for it in items], seed=args.seed)
    summary = write_scores(args.out, args.benchmark, args.split, str(args.checkpoint), records, extra)
    write_report(args.out, summary, records)
    logger.info("overall=%.4f categories=%s", summary["overall"],
                {k: round(v, 4) for k, v in summary["categories"].items()})


if __name__ == "__main__":
    main()
