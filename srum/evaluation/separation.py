"""Did an update tell its good samples from its bad ones? Flow-matching error on a round's tokens by optimality.

A reward-driven update should lower the model's denoising error on the tokens it was told were good and raise it on
the bad ones, relative to the model it started from. The same timesteps and noise are drawn for every checkpoint, so
differences between checkpoints are paired. No sampling is needed, so it is cheap next to an evaluation, and it
separates "the update did not use the reward" from "it did, but the samples did not get better".
"""

from __future__ import annotations

import torch

from srum import flow

CLASSES = ("good", "bad", "neutral")


def token_errors(model, samples: list, grid: tuple[int, int], neutral: float, margin: float = 0.1,
                 limit: int = 512, repeats: int = 2, batch_size: int = 32, timestep_shift: float = 1.0,
                 seed: int = 0) -> dict[str, tuple[float, int]]:
    """Mean squared velocity error per token class and the class's token count, over the first `limit` samples,
    each seen at `repeats` (timestep, noise) draws seeded by `seed`: `good` where the training weight is above
    neutral + margin, `bad` below neutral − margin, `neutral` in between (nft: neutral 0.5)."""
    g = torch.Generator().manual_seed(seed)
    sums = {c: [0.0, 0] for c in CLASSES}
    with torch.no_grad():
        for i in range(0, min(limit, len(samples)), batch_size):
            batch = samples[i:min(i + batch_size, limit)]
            x0 = torch.stack([s.x0 for s in batch])
            w = torch.stack([s.weights for s in batch])
            masks = {"good": w > neutral + margin, "bad": w < neutral - margin}
            masks["neutral"] = ~(masks["good"] | masks["bad"])
            for _ in range(repeats):
                t = flow.sample_training_timesteps(len(batch), timestep_shift, generator=g)
                noise = torch.randn(x0.shape, generator=g)
                v = model.velocity([s.prompt for s in batch], flow.interpolate(x0, noise, t), t, grid)
                err = (v.float().cpu() - flow.velocity_target(x0, noise)).pow(2).mean(-1)  # (B, N)
                for c, m in masks.items():
                    sums[c][0] += float(err[m].sum())
                    sums[c][1] += int(m.sum())
    return {c: (total / max(n, 1), n) for c, (total, n) in sums.items()}
