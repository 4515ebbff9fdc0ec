"""How far a sampler's latents lie from the autoencoder's encodings of the images they decode to.

A round trains on one or the other (`generate.reencode`). Both decode to the same picture; they differ in what the
decoder ignores, which under a wide posterior is a large share of a latent. The posteriors N(μ, σ²) of the images
give it exactly: a sampler's latent z lies E(z − μ)² from the posterior mean, a posterior sample s = μ + σε lies
E σ², both read against the variance of the means (the part of a latent the image determines).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from srum.models.interface import Posterior


@dataclass(frozen=True)
class LatentGap:
    images: int
    posterior_std: list[float]  # per latent channel, in latent units (root of the mean posterior variance)
    mean_variance: float  # variance of the posterior means, averaged over channels
    sampled_gap: float  # E(z − μ)² of the sampler's latents, over mean_variance
    encoded_gap: float  # E(s − μ)² = E σ² of a posterior sample, over mean_variance


def latent_gap(latents: torch.Tensor, posterior: Posterior) -> LatentGap:
    """`latents` (B, C, h, w) the sampler drew; `posterior` the autoencoder's posteriors of the images they decoded
    to (`encode_posteriors`), in the same order."""
    z, mu, std = latents.double(), posterior.mean.double(), posterior.std.double()
    if z.shape != mu.shape or std.shape != mu.shape:
        raise ValueError(f"sampler latents {tuple(z.shape)} and posteriors {tuple(mu.shape)} differ in shape")
    dims = (0, 2, 3)
    noise = std.pow(2).mean(dims)  # σ² per channel
    mean_var = mu.var(dims).mean()
    return LatentGap(z.shape[0], noise.sqrt().tolist(), float(mean_var),
                     float((z - mu).pow(2).mean(dims).mean() / mean_var), float(noise.mean() / mean_var))
