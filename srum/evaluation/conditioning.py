"""Does the prompt reach the velocity? Flow error on correct images under a wrong prompt, less under the right one.

A reward can only strengthen what the generator's conditioning already carries. Each correct image (a world's
render) is scored under its own prompt and, per attribute kind, under one variant of it that differs in that kind
and that the image does not meet, at the same (timestep, noise) draws. The gap's mean, its standard error and the
share of images whose own prompt fits better say how strongly the velocity depends on that word: a gap near zero
and a share near ½ mean the model cannot tell the variants apart, and guidance has nothing to amplify.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from srum import flow


@dataclass(frozen=True)
class AttributeGap:
    kind: str
    gap: float  # mean over images of error(wrong prompt) − error(own prompt); > 0: the own prompt fits better
    stderr: float
    label_better: float  # share of images whose own prompt has the lower error
    n: int  # images with a wrong variant of this kind


def wrong_variants(prompts: Sequence[str], images: Sequence, kinds: Sequence[str],
                   variants_of: Callable[[str, list[str]], list[str]],
                   truth: Callable[[Sequence, Sequence[str]], Sequence[float]], seed: int = 0
                   ) -> dict[str, list[str | None]]:
    """Per kind, one variant per image (None where there is none) drawn among those differing from its prompt in
    that kind (`variants_of(prompt, [kind])`, the prompt first) that the image does not meet (`truth` < 1): a
    variant that only reorders the prompt's objects is met, so it is never the wrong prompt."""
    rng = random.Random(seed)
    out: dict[str, list[str | None]] = {}
    for kind in kinds:
        picks: list[str | None] = []
        for prompt, image in zip(prompts, images, strict=True):
            cands = variants_of(prompt, [kind])[1:]
            scores = truth([image] * len(cands), cands) if cands else []
            wrong = [c for c, s in zip(cands, scores) if s < 1.0]
            picks.append(rng.choice(wrong) if wrong else None)
        out[kind] = picks
    return out


def attribute_gaps(model, x0: torch.Tensor, prompts: Sequence[str], wrong: dict[str, list[str | None]],
                   grid: tuple[int, int], repeats: int = 2, batch_size: int = 32, seed: int = 0) -> list[AttributeGap]:
    """The gap per kind for clean tokens `x0` (B, N, D) of images of `prompts`, each seen at `repeats` (timestep,
    noise) draws seeded by `seed` (logit-normal timesteps, as training draws them), shared by the own prompt and
    every kind's variant, and alike for every model: differences between checkpoints are paired."""
    g = torch.Generator().manual_seed(seed)
    gaps = {k: torch.zeros(len(prompts)) for k in wrong}
    with torch.no_grad():
        for i in range(0, len(prompts), batch_size):
            sl = slice(i, min(i + batch_size, len(prompts)))
            x, own = x0[sl], list(prompts[sl])
            for _ in range(repeats):
                t = flow.sample_training_timesteps(len(own), generator=g)
                noise = torch.randn(x.shape, generator=g)
                x_t, target = flow.interpolate(x, noise, t), flow.velocity_target(x, noise)

                def error(rows: list[int], ps: list[str]) -> torch.Tensor:
                    r = torch.tensor(rows)
                    return (model.velocity(ps, x_t[r], t[r], grid).float().cpu() - target[r]).pow(2).mean(dim=(1, 2))

                base = error(list(range(len(own))), own)
                for kind, picks in wrong.items():
                    rows = [j for j, p in enumerate(picks[sl]) if p is not None]  # an image without one adds nothing
                    if rows:
                        alt = error(rows, [picks[sl][j] for j in rows])
                        gaps[kind][i + torch.tensor(rows)] += (alt - base[rows]) / repeats
    out = []
    for kind, picks in wrong.items():
        has = torch.tensor([p is not None for p in picks])
        d = gaps[kind][has]
        n = int(has.sum())
        out.append(AttributeGap(kind, float(d.mean()) if n else float("nan"),
                                float(d.std() / n ** 0.5) if n > 1 else float("nan"),
                                float((d > 0).float().mean()) if n else float("nan"), n))
    return out
