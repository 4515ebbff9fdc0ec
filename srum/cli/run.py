"""Run SRUM: `deepspeed [--num_gpus N] launch/srum.py RECIPE.yaml [key=value ...] [--dry-run] [--verbose]`.

`--help-config` lists every recipe key with its type, default and meaning.

    deepspeed --num_gpus 2 launch/srum.py recipes/shapes.yaml          # 2 CPU ranks, the shipped tiny model
    deepspeed launch/srum.py recipes/bagel.yaml model.path=/data/BAGEL-7B-MoT regions.sam_path=/data/sam-vit-huge
    python launch/srum.py recipes/bagel.yaml --dry-run --world 8      # validate, check paths, plan (and memory)

`--verbose` logs at DEBUG, lets third-party warnings through (they are filtered otherwise) and prints a failure's
traceback (otherwise one line, the traceback in OUTPUT_DIR/errors/rankN.log).

Rerunning the same command resumes: finished work is skipped, training continues from its last checkpoint.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

# One thread per rank: ranks share the machine's cores, and oversubscribed OpenMP is 100× slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from srum.config import ConfigError, check_paths, load_config


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--local_rank")]  # the deepspeed launcher appends it
    if "--help-config" in args:
        from srum.config_help import describe

        print(describe())
        return
    dry_run, verbose = "--dry-run" in args, "--verbose" in args
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if "--world" in args:  # the rank count a dry run plans memory for
        i = args.index("--world")
        if i + 1 >= len(args) or not args[i + 1].isdigit() or int(args[i + 1]) < 1:
            sys.exit("srum: --world needs a positive number of ranks, e.g. --world 8")
        world = int(args[i + 1])
        del args[i:i + 2]
    args = [a for a in args if a not in ("--dry-run", "--verbose")]
    if not args:
        sys.exit(__doc__)
    try:
        cfg = load_config(args[0], args[1:])
        if not dry_run:
            check_paths(cfg)
    except (ConfigError, FileNotFoundError) as e:
        sys.exit(f"srum: {e}")
    from srum.pipeline import plan
    from srum.utils.logging import setup_logging

    setup_logging(level="DEBUG" if verbose else cfg.log.level)
    if dry_run:
        from srum.memory_plan import describe_memory

        print(plan(cfg, world))
        print(describe_memory(cfg, world))
        try:
            check_paths(cfg)
        except (ConfigError, FileNotFoundError) as e:
            sys.exit(f"srum: {e}")
        print("config and paths OK (dry run: nothing was loaded or written)")
        return
    from srum.pipeline import run_srum
    from srum.utils.dist import init_distributed

    rank = int(os.environ.get("RANK", "0"))
    try:
        with init_distributed(cfg.train.backend.value) as dist:
            export = run_srum(cfg, dist)
    except KeyboardInterrupt:
        if rank == 0:
            print(f"srum: interrupted — rerun the same command to resume from {cfg.output.dir}", file=sys.stderr)
        sys.exit(130)
    except Exception as e:  # one line on the console; the traceback goes to the run folder (or the console: --verbose)
        if verbose:
            raise
        log = Path(cfg.output.dir) / "errors" / f"rank{rank}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(traceback.format_exc())
        sys.exit(f"srum: rank {rank}: {type(e).__name__}: {e} (traceback: {log})")
    if rank == 0:
        print(f"final checkpoint: {export}")
    if dist.world_size > 1:
        from srum.utils.dist import exit_process

        exit_process(0)


if __name__ == "__main__":
    main()
