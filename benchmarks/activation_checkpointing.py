"""Activation checkpointing of the decoder layers: memory kept for backward and step time, with vs without.

Memory is the bytes of the tensors autograd saves for backward during the forward (counted by a saved-tensors hook,
each storage once): the activations checkpointing trades for recomputation. Same model, batch and noise; the two
settings alternate.

    python benchmarks/activation_checkpointing.py [--checkpoint checkpoints/shapes-tiny] [--size 64] [--batch 32]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from srum import flow
from srum.models.bagel.unified import BagelUnified


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="checkpoints/shapes-tiny")
    ap.add_argument("--size", type=int, default=64, help="image side in pixels (sets the latent tokens; shapes-tiny: at most 64)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    model = BagelUnified.from_pretrained(args.checkpoint)
    model.model.train()
    grid = model.latent_grid(args.size, args.size)
    g = torch.Generator().manual_seed(0)
    n, c = grid[0] * grid[1], model.config.patch_latent_dim
    x0, noise = torch.randn(args.batch, n, c, generator=g), torch.randn(args.batch, n, c, generator=g)
    t = flow.sample_training_timesteps(args.batch, generator=g)
    x_t, target = flow.interpolate(x0, noise, t), flow.velocity_target(x0, noise)
    prompts = ["a red circle on the left of a blue square"] * args.batch

    def step(on: bool) -> int:
        model.model.set_activation_checkpointing(on)
        seen: dict[int, int] = {}

        def pack(x: torch.Tensor) -> torch.Tensor:
            seen[x.untyped_storage().data_ptr()] = x.untyped_storage().nbytes()
            return x

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
            loss = (model.velocity(prompts, x_t, t, grid) - target).pow(2).mean()
        loss.backward()
        model.model.zero_grad(set_to_none=True)
        return sum(seen.values())

    saved = {on: step(on) for on in (False, True)}  # also the warm-up
    times = {False: [], True: []}
    for _ in range(args.repeats):
        for on in (False, True):
            t0 = time.perf_counter()
            step(on)
            times[on].append(time.perf_counter() - t0)
    print(f"batch {args.batch} × {n} latent tokens ({args.size} px), {torch.get_num_threads()} threads, "
          f"median of {args.repeats}")
    for on in (False, True):
        print(f"checkpointing {'on ' if on else 'off'}: saved for backward {saved[on] / 2**20:8.1f} MiB, "
              f"{statistics.median(times[on]) * 1000:7.1f} ms/step")
    print(f"memory ratio on/off {saved[True] / saved[False]:.2f}, time ratio on/off "
          f"{statistics.median(times[True]) / statistics.median(times[False]):.2f}")


if __name__ == "__main__":
    main()
