"""How far a sampler's latents lie from the autoencoder's encodings of the images they decode to.

A round trains on one or the other (`generate.reencode`). Both decode to the same picture; they differ in what the
decoder ignores, which under a wide posterior is a large share of a latent. Estimated through `encode_images` alone:
two posterior samples s₁, s₂ of an image (other seeds) give the posterior variance σ² = E(s₁ − s₂)²/2 per channel,
and since s₁ = μ + σε is independent of the sampler's latent z, E(z − μ)² = E(z − s₁)² − σ².
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LatentGap:
    images: int
    posterior_std: list[float]  # per latent channel, in latent units
    mean_variance: float  # variance of the posterior means (the part of a latent the image determines)
    sampled_gap: float  # E(z − μ)² of the sampler's latents, over mean_variance
    encoded_gap: float  # E(s − μ)² = σ² of a posterior sample, over mean_variance


def latent_gap(latents: torch.Tensor, images: Sequence, seeds: Sequence[int],
               encode: Callable[[list, list[int]], torch.Tensor]) -> LatentGap:
    """`latents` (B, C, h, w) the sampler drew for `images` (decoded from them); `encode(images, seeds)` the model's
    posterior-sampling encoder. Seeds 2s + 1 and 2s + 2 of each image's seed s give its two posterior samples."""
    s1 = encode(list(images), [2 * s + 1 for s in seeds]).double()
    s2 = encode(list(images), [2 * s + 2 for s in seeds]).double()
    z = latents.double()
    if z.shape != s1.shape:
        raise ValueError(f"sampler latents {tuple(z.shape)} and encodings {tuple(s1.shape)} differ in shape")
    dims = (0, 2, 3)
    noise = (s1 - s2).pow(2).mean(dims) / 2  # σ² per channel
    mean_var = (s1.var(dims) - noise).mean()
    return LatentGap(len(images), noise.sqrt().tolist(), float(mean_var),
                     float(((z - s1).pow(2).mean(dims) - noise).mean() / mean_var),
                     float(noise.mean() / mean_var))
