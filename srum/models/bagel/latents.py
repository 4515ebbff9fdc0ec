"""Latent maps ↔ latent tokens: p×p patches of the (C, h, w) VAE latent, row-major, values (dy, dx, c)."""

from __future__ import annotations

import torch


def patchify_latent(latent: torch.Tensor, patch: int) -> torch.Tensor:
    """(C, H, W) → (H/p · W/p, p·p·C)."""
    c, h, w = latent.shape
    x = latent.reshape(c, h // patch, patch, w // patch, patch)
    return x.permute(1, 3, 2, 4, 0).reshape((h // patch) * (w // patch), patch * patch * c)


def unpatchify_latent(tokens: torch.Tensor, grid: tuple[int, int], patch: int) -> torch.Tensor:
    """(h·w, p·p·C) → (C, h·p, w·p); the exact inverse of `patchify_latent`."""
    h, w = grid
    c = tokens.shape[-1] // (patch * patch)
    x = tokens.reshape(h, w, patch, patch, c)
    return x.permute(4, 0, 2, 1, 3).reshape(c, h * patch, w * patch)
