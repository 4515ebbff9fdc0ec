"""Rollout cost of online rounds: the generate stage's images per second against a one-prompt-at-a-time loop like
the official inferencer's and against itself with generate.reencode=true (same model, same prompts and seeds,
interleaved in one run), and what fewer denoising steps for rollouts cost in reward (ShapesWorld oracle on the same
prompts and seeds).

    OMP_NUM_THREADS=2 python benchmarks/rollout.py [--checkpoint checkpoints/shapes-tiny] [--prompts 64]
        [--steps 31,16,11] [--repeats 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from srum.config import GenerateConfig
from srum.worlds.shapes.world import prompts as shapes_prompts
from srum.generate import generate_stage, jobs_of
from srum.models.bagel.unified import BagelUnified
from srum.utils.dist import DistInfo
from srum.worlds.shapes import oracle


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="checkpoints/shapes-tiny")
    ap.add_argument("--prompts", type=int, default=64, help="train prompts (spread over the categories)")
    ap.add_argument("--batch", type=int, default=32, help="the generate stage's batch (generate.batch_size)")
    ap.add_argument("--steps", default="31,16,11", help="grid points to compare (the first is the reference)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    model = BagelUnified.from_pretrained(args.checkpoint)
    base = model.sampling_settings()
    items = shapes_prompts("train", limit=max(1, args.prompts // 8))
    jobs = jobs_of(items, 1, seed=1000)
    prompts, seeds = [j.prompt for j in jobs], [j.seed for j in jobs]
    cfg = GenerateConfig(prompts="shapes", think=False, resolution=64, batch_size=args.batch, seed=1000)
    one = DistInfo(rank=0, world_size=1, local_rank=0, backend=None)

    def stage(reencode: bool = False) -> None:  # the real generate stage: batched, chunks written to disk
        with tempfile.TemporaryDirectory() as tmp:
            generate_stage(model, items, dataclasses.replace(cfg, reencode=reencode), Path(tmp), one, progress=False)

    def one_by_one() -> None:  # the official inferencer's loop: one prompt, one forward pass per step, per call
        for p, s in zip(prompts, seeds):
            model.sample_images([p], [s], 64, 64)

    def timed(fn) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    stage(), one_by_one()  # warm-up
    t_stage, t_loop, t_re = [], [], []
    for _ in range(args.repeats):  # interleaved: all see the same machine state
        t_stage.append(timed(stage))
        t_loop.append(timed(one_by_one))
        t_re.append(timed(lambda: stage(reencode=True)))
    n = len(prompts)
    s_stage, s_loop, s_re = statistics.median(t_stage), statistics.median(t_loop), statistics.median(t_re)
    print(f"{n} images of 64 px, {base['num_timesteps']} grid points, {torch.get_num_threads()} threads")
    print(f"generate stage (batch {args.batch}): {n / s_stage:6.2f} images/s")
    print(f"one prompt at a time:        {n / s_loop:6.2f} images/s   -> stage is {s_loop / s_stage:.2f}x faster")
    print(f"stage with generate.reencode: {n / s_re:6.2f} images/s   -> {s_re / s_stage - 1:+.1%} time")

    print(f"\n{'grid points':>11} {'images/s':>9} {'oracle':>7} {'vs first':>9}")
    ref = None
    for steps in [int(s) for s in args.steps.split(",")]:
        model.set_sampling(num_timesteps=steps)
        t0 = time.perf_counter()
        images = []
        for k in range(0, n, args.batch):
            images += model.sample_images(prompts[k:k + args.batch], seeds[k:k + args.batch], 64, 64).images
        dt = time.perf_counter() - t0
        score = float(np.mean(oracle.score_batch(images, prompts)))
        ref = score if ref is None else ref
        print(f"{steps:>11} {n / dt:>9.2f} {score:>7.3f} {score - ref:>+9.3f}")


if __name__ == "__main__":
    main()
