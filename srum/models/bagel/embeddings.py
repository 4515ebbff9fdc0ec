"""BAGEL's small embedding modules: fixed 2-D sin-cos position tables and the flow-time embedder."""

from __future__ import annotations

import math

import torch
from torch import nn


def sincos_2d_table(grid_size: int, dim: int) -> torch.Tensor:
    """(grid², dim) table; row `r*grid+c` = concat(E(c), E(r)), E(p) = concat(sin(p·ω), cos(p·ω)).

    ω_k = 10000^(-k/(dim/4)). Column comes first, as in the official table. Computed in float64.
    """
    if dim % 4:
        raise ValueError(f"sin-cos position table needs dim divisible by 4, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4.0))

    def encode(p: torch.Tensor) -> torch.Tensor:
        angles = p.to(torch.float64).unsqueeze(1) * omega.unsqueeze(0)
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    rows, cols = torch.meshgrid(torch.arange(grid_size), torch.arange(grid_size), indexing="ij")
    return torch.cat([encode(cols.flatten()), encode(rows.flatten())], dim=1).float()


class PositionTable(nn.Module):
    """A frozen 2-D sin-cos table, stored in checkpoints as `<name>.pos_embed` and indexed by flat id."""

    def __init__(self, grid_size: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("pos_embed", sincos_2d_table(grid_size, dim))

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:
        return self.pos_embed[position_ids]


class TimestepEmbedder(nn.Module):
    """Flow time t ∈ [0, 1] (used as is, no ×1000) → D: cos/sin features, then Linear-SiLU-Linear."""

    def __init__(self, hidden_size: int, frequency_size: int = 256) -> None:
        super().__init__()
        self.frequency_size = frequency_size
        self.mlp = nn.Sequential(nn.Linear(frequency_size, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.frequency_size // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        args = t.float().unsqueeze(-1) * freqs
        features = torch.cat([args.cos(), args.sin()], dim=-1)  # cos first, as in BAGEL
        return self.mlp(features.to(self.mlp[0].weight.dtype))
