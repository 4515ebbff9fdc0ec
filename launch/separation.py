"""Flow-matching error of checkpoints on one round's good, bad and neutral tokens (srum.evaluation.separation).

    python launch/separation.py --run runs/srum-shapes-online --round 1 checkpoints/shapes-tiny \
        runs/srum-shapes-online/round1/export

The round's samples and their training weights come from the run folder (its config, generate and score stages);
each checkpoint is scored on the same draws, so a row's change against the first is paired.
"""

from __future__ import annotations

import os
import sys

# launch/srum.py would shadow the `srum` package for scripts run from this folder: drop the folder from the path.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from srum.config import ObjectiveKind, load_config  # noqa: E402
from srum.evaluation.separation import token_errors  # noqa: E402
from srum.pipeline import load_model  # noqa: E402
from srum.training import load_training_samples, neutral_weight, objective_weights  # noqa: E402
from srum.utils.dist import DistInfo  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", type=Path, help="model folders; the first is the baseline")
    ap.add_argument("--run", type=Path, required=True, help="a run folder (its config.yaml and roundN stages)")
    ap.add_argument("--round", type=int, default=1)
    ap.add_argument("--limit", type=int, default=512, help="samples of the round to score")
    ap.add_argument("--margin", type=float, default=0.1, help="weights within neutral ± margin count as neutral")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.run / "config.yaml", [])
    if cfg.objective.kind in (ObjectiveKind.official, ObjectiveKind.best_of):
        raise SystemExit(f"separation.py: {args.run / 'config.yaml'} trains with objective.kind="
                         f"{cfg.objective.kind.value}, whose weights are all positive: there are no bad tokens to "
                         "separate")
    rd = args.run / f"round{args.round}"
    base, samples = None, None
    print("| checkpoint | good | bad | neutral | bad − good |\n|---|---|---|---|---|")
    for ck in args.checkpoints:
        model = load_model(ck, cfg, DistInfo(0, 1, 0, "gloo"))
        grid = model.latent_grid(cfg.generate.resolution, cfg.generate.resolution)
        if samples is None:  # the round's samples and weights, read once: every checkpoint shares the architecture
            samples = objective_weights(load_training_samples(rd / "generate", rd / "score", model.latents_to_tokens),
                                        cfg.objective)
        err = token_errors(model, samples, grid, neutral_weight(cfg.objective), args.margin, args.limit,
                           timestep_shift=cfg.objective.timestep_shift)
        row = {c: e for c, (e, _) in err.items()}
        row["gap"] = row["bad"] - row["good"]
        base = base or row
        cells = [f"{row[k]:.4f}" + (f" ({row[k] - base[k]:+.4f})" if row is not base else "")
                 for k in ("good", "bad", "neutral", "gap")]
        print(f"| {ck} | " + " | ".join(cells) + " |")
    print("\ntokens: " + ", ".join(f"{c} {n}" for c, (_, n) in err.items()))


if __name__ == "__main__":
    main()
