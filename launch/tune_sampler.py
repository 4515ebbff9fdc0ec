"""Choose a checkpoint's sampler settings on ShapesWorld TRAIN prompts and write its srum_sampler.json.

    python launch/tune_sampler.py checkpoints/shapes-tiny [--limit 6]

Grid: num_timesteps {21, 31} × timestep_shift {1, 2} × text CFG {2, 3, 4.5} (guidance on every step); the best
oracle score on train prompts wins. Val and test prompts are never looked at, so they stay fair for evaluation.
"""

from __future__ import annotations

import os
import sys

# launch/srum.py would shadow the `srum` package for scripts run from this folder: drop the folder from the path.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import itertools  # noqa: E402
from pathlib import Path  # noqa: E402

from srum.worlds.shapes.world import prompts as shapes_prompts  # noqa: E402
from srum.models.bagel.sampling import GuidanceParams  # noqa: E402
from srum.models.bagel.unified import BagelUnified  # noqa: E402
from srum.models.bagel.weights import SAMPLER_CONFIG  # noqa: E402
from srum.utils.io import atomic_write_json  # noqa: E402
from srum.worlds.shapes.oracle import score_batch  # noqa: E402

GRID = {"num_timesteps": [21, 31], "timestep_shift": [1.0, 2.0], "cfg_text_scale": [2.0, 3.0, 4.5]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--limit", type=int, default=6, help="train prompts per category")
    ap.add_argument("--seed", type=int, default=10_000)
    args = ap.parse_args()
    model = BagelUnified.from_pretrained(args.checkpoint)
    prompts = [it.prompt for it in shapes_prompts("train", limit=args.limit)]
    seeds = [args.seed + i for i in range(len(prompts))]
    results = []
    for values in itertools.product(*GRID.values()):
        model.guidance = GuidanceParams(**dict(zip(GRID, values)), cfg_interval=(0.0, 1.0))
        images = [im for i in range(0, len(prompts), 24)
                  for im in model.sample_images(prompts[i:i + 24], seeds[i:i + 24], 64, 64).images]
        score = float(score_batch(images, prompts).mean())
        results.append((score, model.guidance))
        print(" ".join(f"{k}={v}" for k, v in zip(GRID, values)), f"train_oracle={score:.4f}", flush=True)
    best_score, best = max(results, key=lambda r: r[0])
    atomic_write_json(args.checkpoint / SAMPLER_CONFIG, dataclasses.asdict(best))
    print(f"chosen {best} (train oracle {best_score:.4f})")


if __name__ == "__main__":
    main()
