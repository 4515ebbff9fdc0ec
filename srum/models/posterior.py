"""An autoencoder's diagonal-Gaussian posterior over an image's latent, and the seeded draw from it.

Generation writes an encoded image's posterior (mean, std) beside the one sample it trains on by default, so that
training can draw a fresh sample at every step instead (`train.fresh_posterior`), as BAGEL's training does by
encoding every image it loads again. One function draws both, so a stored sample is the draw from its image's seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Posterior:
    mean: torch.Tensor  # (B, ...) in the backend's scaled latent space
    std: torch.Tensor  # (B, ...) the same shape; a sample is mean + std·ε

    def sample(self, seeds: list[int]) -> torch.Tensor:
        """One draw per image, ε from a CPU generator seeded by the image's seed (the same on every device)."""
        if len(seeds) != self.mean.shape[0]:
            raise ValueError(f"{len(seeds)} seeds for {self.mean.shape[0]} posteriors")
        eps = torch.stack([torch.randn(self.mean.shape[1:], generator=torch.Generator().manual_seed(int(s)))
                           for s in seeds])
        return self.mean + self.std * eps.to(self.mean.device, self.mean.dtype)
