"""Run SRUM ablations of one recipe and tabulate them against the base model (judged by its prompt world's oracle).

    python launch/ablate.py recipes/shapes.yaml [--variants srum global_only ...] [--gpus 2] [--out runs/ablate]
        [--eval-seeds 0,1] [--test-seeds 0|none] [--reseed 1234:7,...|none] [key=value ...]

Each variant runs `deepspeed --num_gpus N launch/srum.py RECIPE overrides` with the same seeds and budget (the
first variant's generated samples serve all of them), then is evaluated on the val split with every evaluation
seed, as is the base checkpoint; then again with each `--reseed` pair of training seeds. The spreads over
evaluation and training seeds are the noise a difference must beat. Each row also gives the
share of the base's error it removes and a paired bootstrap over prompts (every seed's images pooled per prompt)
against the base and against self-distillation (`self_distill`, reward ≡ 1), below which no gain is a reward effect;
every run's score on the held-out test split (`--test-seeds`), paired against the base's; and, where the world has
understanding questions, every checkpoint's understanding accuracy (on the test split's prompts, or val's without
test seeds): the judge is the model, and a variant that trains it must keep it. Each run gets its own
free rendezvous port, so an ablation can share the machine with other DeepSpeed runs.
Writes OUT/ablation.md, .csv and .png. Finished runs (and evaluations) are skipped on a rerun.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
from pathlib import Path

from srum.ablation import VARIANTS, Variant, expand, load_evaluated, shared_samples, table_rows, write_tables
from srum.config import ConfigError, load_config
from srum.pipeline import load_model
from srum.utils.artifacts import read_json
from srum.worlds.interface import World
from srum.worlds.registry import WORLDS, is_world, world_for
from srum.utils.dist import DistInfo, free_port
from srum.utils.io import atomic_write_json
from srum.utils.logging import setup_logging

logger = logging.getLogger("srum.ablate")


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    """(options, recipe overrides). `key=value` overrides may follow `--variants` names: argparse would hand them to
    the names' list, so they are taken back from it, in order, before the names are checked."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipe")
    ap.add_argument("--variants", nargs="+", default=[], metavar="NAME",
                    help=f"some of: {' '.join(VARIANTS)} (default: all the recipe can run)")
    ap.add_argument("--gpus", type=int, default=2, help="ranks per run (CPU processes without GPUs)")
    ap.add_argument("--out", type=Path, default=Path("runs/ablate"))
    ap.add_argument("--eval-seeds", type=_ints, default=[0, 1], metavar="SEED,...",
                    help="comma-separated evaluation seeds of every run and of the base model (seed noise)")
    ap.add_argument("--test-seeds", type=_ints, default=[0], metavar="SEED,...|none",
                    help="evaluation seeds on the test split of every run and of the base model ('none': val only)")
    ap.add_argument("--reseed", type=_seeds, default=[(1234, 7)], metavar="SEED:DATA_SEED,...",
                    help="train every variant again with each of these comma-separated train.seed:train.data_seed "
                         "pairs (the training-seed noise); 'none' for one training run per variant")
    args, overrides = ap.parse_known_args(argv)
    if not args.eval_seeds:
        ap.error("--eval-seeds: at least one seed (the round's own evaluation uses the first)")
    named_any = bool(args.variants)
    overrides += [v for v in args.variants if "=" in v]
    args.named = [v for v in args.variants if "=" not in v]  # asked for by name: refused loudly if it cannot run
    unknown = [v for v in args.named if v not in VARIANTS]
    if unknown or (named_any and not args.named):
        named = f"{' '.join(unknown)}: not a variant" if unknown else "no variant named"
        ap.error(f"--variants: {named}; expected some of {' '.join(VARIANTS)}")
    args.variants = args.named or list(VARIANTS)
    return args, overrides


def main(argv: list[str] | None = None) -> None:
    args, overrides = parse_args(argv)
    setup_logging()
    try:
        cfg = load_config(args.recipe, overrides)  # fails now, not after hours, on a bad recipe or override
    except (ConfigError, FileNotFoundError) as e:
        sys.exit(f"ablate.py: {e}")
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
    timings = read_json(timings_file, "delete it: only the minutes column is lost")["variant_seconds"] \
        if timings_file.is_file() else {}
    variants = runnable(args.recipe, expand(args.variants, args.out, [*overrides, *eval_overrides], args.reseed,
                                            cfg.train.rounds), args.named)
    by_name: dict[str, list[Variant]] = {}  # each variant's training runs, in the variants' order
    for v in variants:
        by_name.setdefault(v.name, []).append(v)
    for v in variants:
        if v.done:
            logger.info("run=%s done, skipped", v.out_dir.name)
            continue
        start = time.time()
        # Variants differ after generation only: the first finished variant's images serve all the others.
        drawn = shared_samples(variants)
        reuse = [f"generate.reuse_from={drawn}"] if drawn is not None else []
        cmd = ["deepspeed", "--num_gpus", str(args.gpus), "--master_port", str(free_port()), "--module",
               "srum.cli.run", args.recipe, *v.overrides, *reuse]
        logger.info("run=%s command=%s", v.out_dir.name, " ".join(cmd))
        subprocess.run(cmd, check=True)
        timings[v.out_dir.name] = time.time() - start
        atomic_write_json(timings_file, {"variant_seconds": timings})  # kept if a later run fails

    def evaluate(checkpoint: Path | str, out: Path, seed: int, split: str = "val") -> Path:
        if not (out / "scores.json").is_file():
            cmd = [sys.executable, "-m", "srum.cli.evaluate", "--checkpoint", str(checkpoint), "--benchmark", world,
                   "--split", split, "--out", str(out), "--seed", str(seed)]
            subprocess.run(cmd + (["--limit", str(limit)] if limit else []), check=True)
        return out / "scores.json"

    runs = [load_evaluated("base", [[evaluate(cfg.model.path, args.out / f"base-seed{seed}", seed)
                                     for seed in args.eval_seeds]])]
    for name, trained in by_name.items():
        seconds = [timings[v.out_dir.name] for v in trained if v.out_dir.name in timings]
        scores = [[v.scores, *[evaluate(v.export, v.extra_eval_dir(s), s) for s in more]] for v in trained]
        runs.append(load_evaluated(name, scores, sum(seconds) / len(seconds) / 60 if seconds else None))
    tests = None
    if args.test_seeds:  # the held-out split, after every val number is in
        tests = [load_evaluated("base", [[evaluate(cfg.model.path, args.out / f"base-test-seed{s}", s, "test")
                                          for s in args.test_seeds]])]
        for name, trained in by_name.items():
            tests.append(load_evaluated(name, [[evaluate(v.export, v.test_eval_dir(s), s, "test")
                                                for s in args.test_seeds] for v in trained]))
    understood = None
    prompt_world = world_for(world)
    if hasattr(prompt_world, "understanding"):  # the judge is the model: does a variant keep it?
        split, seed = ("test", args.test_seeds[0]) if args.test_seeds else ("val", first)
        prompts = [it.prompt for it in prompt_world.prompts(split, limit)]
        understood = [understanding(cfg.model.path, cfg, prompt_world, prompts, seed,
                                    args.out / f"base-understanding-{split}.json")]
        for trained in by_name.values():
            accuracies = [understanding(v.export, cfg, prompt_world, prompts, seed,
                                        v.out_dir / f"understanding-{split}.json") for v in trained]
            understood.append(sum(accuracies) / len(accuracies))
    header, rows = table_rows(runs, test=tests, understanding=understood)
    write_tables(args.out, header, rows)
    atomic_write_json(timings_file, {"variant_seconds": timings, "total_seconds_last_call": time.time() - t0})
    print((args.out / "ablation.md").read_text())


def understanding(checkpoint: Path | str, cfg, world: World, prompts: list[str], seed: int, out: Path) -> float:
    """The checkpoint's balanced understanding accuracy on the world's questions about renders of `prompts`
    (seconds: no images are drawn), kept in `out` so a rerun reads it back."""
    if not out.is_file():
        model = load_model(checkpoint, cfg, DistInfo(0, 1, 0, None))
        atomic_write_json(out, world.understanding(model, prompts, seed=seed))
    return read_json(out, "delete it: the ablation measures it again")["balanced_accuracy"]


def runnable(recipe: str, variants: list[Variant], named: list[str]) -> list[Variant]:
    """The runs whose config the recipe accepts, checked before the first starts. A variant it cannot run (e.g.
    self_distill under a group objective, where equal rewards give no update) stops the ablation in one line when it
    was asked for by name, and is left out with a warning when it came from the default list."""
    refused = {}
    for v in variants:
        try:
            load_config(recipe, list(v.overrides))
        except ConfigError as e:
            refused.setdefault(v.name, str(e))
    for name, why in refused.items():
        if name in named:
            sys.exit(f"ablate.py: variant {name}: {why}")
        logger.warning("variant=%s left out: the recipe cannot run it (%s)", name, why)
    kept = [v for v in variants if v.name not in refused]
    if not kept:
        sys.exit("ablate.py: the recipe can run none of the variants")
    return kept


def _ints(text: str) -> list[int]:
    """`0,1` as [0, 1]; `none` as []."""
    if text == "none":
        return []
    parts = text.split(",")
    if not all(p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated non-negative integers, or none")
    return [int(p) for p in parts]


def _seeds(text: str) -> list[tuple[int, int]]:
    """`1234:7,4397:43` as [(1234, 7), (4397, 43)]; `none` as []."""
    if text == "none":
        return []
    pairs = [part.partition(":") for part in text.split(",")]
    if not all(sep and seed.isdigit() and data.isdigit() for seed, sep, data in pairs):
        raise argparse.ArgumentTypeError(f"{text!r}: expected SEED:DATA_SEED pairs of non-negative integers, "
                                         "comma-separated, or none")
    return [(int(seed), int(data)) for seed, _, data in pairs]


if __name__ == "__main__":
    main()
