"""Which velocity offsets the generation side learns from a round's samples (srum.evaluation.distillability).

    python launch/distillability.py --checkpoint checkpoints/shapes-tiny --samples runs/ng/round1/generate \
        --templates shapes --out runs/distillability.json

For each offset (judge guidance's step, text CFG's own push rescaled to the same size, random noise of that size),
a fresh copy of the checkpoint is fitted to its start's velocity plus the offset on the samples re-noised, and the
share of the offset it takes on each new batch is recorded; the summary is the mean over the last third of the steps.
"""

from __future__ import annotations

import os
import sys

# launch/srum.py would shadow the `srum` package for scripts run from this folder: drop the folder from the path.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from srum.config import ConfigError, ModelConfig  # noqa: E402
from srum.evaluation.distillability import OFFSETS, offset_uptake, token_low_pass  # noqa: E402
from srum.guidance import guide_answers  # noqa: E402
from srum.models.registry import load_unified_model  # noqa: E402
from srum.records import GenerateFolder  # noqa: E402
from srum.rewards.judge import templates_for  # noqa: E402
from srum.utils.io import atomic_write_json  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, type=Path, help="the model folder (the start)")
    ap.add_argument("--samples", required=True, type=Path, help="a round's generate folder: the images re-noised")
    ap.add_argument("--templates", default="digits", help="judge templates with answer tokens (digits, a world's)")
    ap.add_argument("--offsets", nargs="+", default=list(OFFSETS), choices=OFFSETS)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--strength", type=float, default=0.1, help="judge guidance's η (objective.judge_strength)")
    ap.add_argument("--until", type=float, default=0.5, help="flow times above this (objective.judge_until)")
    ap.add_argument("--low-pass", type=int, default=1,
                    help="average every offset over K × K blocks of the token grid first (1: as it is)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--out", required=True, type=Path, help="JSON file: per offset, the summary and every step's share")
    args = ap.parse_args(argv)
    if args.steps < 3 or args.batch_size < 1 or args.lr <= 0 or args.strength <= 0 or not 0 <= args.until < 1:
        ap.error(f"--steps {args.steps} must be >= 3, --batch-size {args.batch_size} >= 1, --lr {args.lr} and "
                 f"--strength {args.strength} > 0, --until {args.until} in [0, 1)")
    for flag, path in (("--checkpoint", args.checkpoint), ("--samples", args.samples)):
        if not path.is_dir():
            ap.error(f"{flag} {path} is not a folder")
    try:
        templates = templates_for(args.templates)
        guide_answers(templates)
    except ConfigError as e:
        ap.error(f"--templates: {e}")
    if args.threads:
        torch.set_num_threads(args.threads)

    folder = GenerateFolder(args.samples)
    if not folder.finished():
        ap.error(f"--samples {args.samples} has no finished chunk")
    model_cfg = ModelConfig(path=str(args.checkpoint), device="cpu", dtype="float32")
    reference = load_unified_model(model_cfg)
    rows, latents = folder.all_rows_and_latents()
    tokens_all = reference.latents_to_tokens(latents)
    prompts = [r.prompt for r in rows]
    with Image.open(args.samples / rows[0].file) as im:
        grid = reference.latent_grid(im.height, im.width)
    try:
        token_low_pass(tokens_all[:1], grid, args.low_pass)
    except ValueError as e:
        ap.error(f"--low-pass: {e}")
    summary = {}
    for offset in args.offsets:
        started = time.monotonic()
        shares = offset_uptake(load_unified_model(model_cfg), reference, tokens_all, prompts, grid, templates, offset,
                               args.steps, args.lr, args.batch_size, args.strength, args.until, args.seed,
                               args.low_pass)
        last = shares[-max(2, args.steps // 3):]
        summary[offset] = {"share": statistics.mean(last), "sd": statistics.stdev(last),
                           "seconds": round(time.monotonic() - started, 1), "shares": shares}
        print(f"{offset}: {statistics.mean(last):.4f} ± {statistics.stdev(last):.4f} of the offset taken on new batches "
              f"(last {len(last)} of {args.steps} steps), {summary[offset]['seconds']:.0f} s", flush=True)
    atomic_write_json(args.out, {"checkpoint": str(args.checkpoint), "samples": str(args.samples),
                                 "images": len(prompts), **{k: v for k, v in vars(args).items()
                                                            if k not in ("checkpoint", "samples", "out")},
                                 "offsets": summary})


if __name__ == "__main__":
    main()
