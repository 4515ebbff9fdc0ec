"""Run SRUM ablations of one recipe and tabulate them against the base model (judged by its prompt world's oracle).

    python launch/ablate.py recipes/shapes.yaml [--variants srum global_only ...] [--gpus 2] [--out runs/ablate]
        [--eval-seeds 0,1] [key=value ...]

Each variant runs `deepspeed --num_gpus N launch/srum.py RECIPE overrides` with the same seeds and budget (the
first variant's generated samples serve all of them), then is evaluated on the val split with every evaluation
seed, as is the base checkpoint: the spread over seeds is the noise a difference must beat.
Writes OUT/ablation.md, .csv and .png. Finished variants (and base evaluations) are skipped on a rerun.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

from srum.ablation import VARIANTS, expand, load_scores, shared_samples, table_rows, write_tables
from srum.config import load_config
from srum.worlds.registry import WORLDS, is_world
from srum.utils.io import atomic_write_json
from srum.utils.logging import setup_logging

logger = logging.getLogger("srum.ablate")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--gpus", type=int, default=2, help="ranks per run (CPU processes without GPUs)")
    ap.add_argument("--out", type=Path, default=Path("runs/ablate"))
    ap.add_argument("--eval-seeds", type=lambda v: [int(x) for x in v.split(",")], default=[0, 1],
                    help="comma-separated evaluation seeds of every run and of the base model (seed noise)")
    args, overrides = ap.parse_known_args()
    setup_logging()
    cfg = load_config(args.recipe, overrides)  # fails now, not after hours, on a bad recipe or override
    first, *more = args.eval_seeds
    world = cfg.generate.prompts
    if not is_world(world):
        raise SystemExit(f"ablate.py: the recipe's generate.prompts={world!r} is not a prompt world; ablations are "
                         f"judged by a world's exact judge (one of {sorted(WORLDS)})")
    # Every variant is scored by the world's oracle; its round evaluates with the first seed, the others come after.
    eval_overrides = [f"eval.prompts={world}", f"eval.judge={world}", f"eval.seed={first}"]
    limit = cfg.eval.limit_per_category
    t0 = time.time()
    timings_file = args.out / "timings.json"
    timings = json.loads(timings_file.read_text())["variant_seconds"] if timings_file.is_file() else {}
    variants = expand(args.variants, args.out, [*overrides, *eval_overrides])
    for v in variants:
        if v.done:
            logger.info("variant=%s done, skipped", v.name)
            continue
        start = time.time()
        # Variants differ after generation only: the first finished variant's images serve all the others.
        drawn = shared_samples(variants)
        reuse = [f"generate.reuse_from={drawn}"] if drawn is not None else []
        cmd = ["deepspeed", "--num_gpus", str(args.gpus), "--module", "srum.cli.run", args.recipe, *v.overrides, *reuse]
        logger.info("variant=%s command=%s", v.name, " ".join(cmd))
        subprocess.run(cmd, check=True)
        timings[v.name] = time.time() - start

    def evaluate(checkpoint: Path | str, out: Path, seed: int) -> dict:
        if not (out / "scores.json").is_file():
            cmd = [sys.executable, "-m", "srum.cli.evaluate", "--checkpoint", str(checkpoint), "--benchmark", world,
                   "--split", "val", "--out", str(out), "--seed", str(seed)] + (["--limit", str(limit)] if limit else [])
            subprocess.run(cmd, check=True)
        return load_scores(out / "scores.json")

    runs = [("base", [evaluate(cfg.model.path, args.out / f"base-seed{seed}", seed) for seed in args.eval_seeds])]
    for v in variants:
        runs.append((v.name, [load_scores(v.scores)] + [evaluate(v.export, v.extra_eval_dir(s), s) for s in more]))
    categories, rows = table_rows(runs)
    write_tables(args.out, categories, rows)
    atomic_write_json(timings_file, {"variant_seconds": timings, "total_seconds_last_call": time.time() - t0})
    print((args.out / "ablation.md").read_text())


if __name__ == "__main__":
    main()
