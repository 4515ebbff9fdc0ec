"""One SRUM training step vs one plain flow-matching step on the same batch: time ratio.

SRUM's step = reward-weighted flow matching + constraint; with `kl` it also runs a frozen reference
forward. Plain = unweighted flow matching. Same model, batch, noise and optimiser.

    python benchmarks/train_step.py [--checkpoint checkpoints/shapes-tiny] [--batch 16] [--repeats 5]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from srum import flow
from srum.config import Constraint, ObjectiveConfig
from srum.models.bagel.unified import BagelUnified
from srum.objectives import reward_weighted_flow_loss, srum_loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="checkpoints/shapes-tiny")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    model = BagelUnified.from_pretrained(args.checkpoint)
    reference = copy.deepcopy(model.model).requires_grad_(False)
    ref_unified = BagelUnified(reference, model.vae, model.tokenizer)
    model.model.train()
    grid = model.latent_grid(64, 64)
    g = torch.Generator().manual_seed(0)
    n, c = grid[0] * grid[1], model.config.patch_latent_dim
    x0, noise = torch.randn(args.batch, n, c, generator=g), torch.randn(args.batch, n, c, generator=g)
    t = flow.sample_training_timesteps(args.batch, generator=g)
    x_t, target = flow.interpolate(x0, noise, t), flow.velocity_target(x0, noise)
    weights = torch.rand(args.batch, n, generator=g)
    prompts = ["a red circle on the left of a blue square"] * args.batch
    opt = torch.optim.AdamW([p for p in model.model.parameters() if p.requires_grad], lr=1e-6)

    def plain():
        loss = reward_weighted_flow_loss(model.velocity(prompts, x_t, t, grid), target, torch.ones_like(weights))
        loss.backward(); opt.step(); opt.zero_grad()  # noqa: E702

    def srum(constraint: Constraint):
        v = model.velocity(prompts, x_t, t, grid)
        v_ref = None
        if constraint == Constraint.kl:
            with torch.no_grad():
                v_ref = ref_unified.velocity(prompts, x_t, t, grid)
        cfg = ObjectiveConfig(constraint=constraint, anchor_weight=0.5, kl_weight=0.5)
        loss, _ = srum_loss(v, target, weights, cfg, v_ref=v_ref)
        loss.backward(); opt.step(); opt.zero_grad()  # noqa: E702

    fns = {"plain flow matching": plain, "srum anchor": lambda: srum(Constraint.anchor),
           "srum kl (frozen reference)": lambda: srum(Constraint.kl)}
    times = {k: [] for k in fns}
    for fn in fns.values():
        fn()  # warm-up
    for _ in range(args.repeats):  # interleaved
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["plain flow matching"])
    print(f"batch {args.batch} × {n} latent tokens, {torch.get_num_threads()} threads, median of {args.repeats}")
    for name, ts in times.items():
        print(f"{name:>28}: {statistics.median(ts) * 1000:7.1f} ms/step   ratio {statistics.median(ts) / base:.2f}x")


if __name__ == "__main__":
    main()
