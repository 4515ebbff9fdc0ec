"""KV cache for BAGEL contexts: per-layer post-RoPE keys and values plus which slots are real.

The cache is a value the caller holds (several contexts live side by side during CFG sampling).
Samples of a batch may have different context lengths: each row has a validity mask over its
slots and its own next RoPE position, which is tracked apart from the cache length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F


@dataclass
class KVCache:
    keys: list[torch.Tensor]  # per layer (B, Hkv, L, hd)
    values: list[torch.Tensor]
    valid: torch.Tensor  # (B, L) bool
    next_position: torch.Tensor  # (B,) long

    @classmethod
    def empty(cls, num_layers: int, batch: int, num_kv_heads: int, head_dim: int,
              dtype: torch.dtype, device: torch.device | str) -> KVCache:
        z = torch.zeros(batch, num_kv_heads, 0, head_dim, dtype=dtype, device=device)
        return cls([z] * num_layers, [z] * num_layers, torch.zeros(batch, 0, dtype=torch.bool, device=device),
                   torch.zeros(batch, dtype=torch.long, device=device))

    @property
    def batch_size(self) -> int:
        return self.valid.shape[0]

    @property
    def length(self) -> int:
        return self.valid.shape[1]

    def layer(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.keys[i], self.values[i]

    def extend(self, new_kv: list[tuple[torch.Tensor, torch.Tensor]], new_valid: torch.Tensor,
               next_position: torch.Tensor) -> KVCache:
        """A new cache with the chunk's keys/values appended (the old one is left untouched)."""
        return KVCache([torch.cat([k0, k], dim=2) for k0, (k, _) in zip(self.keys, new_kv)],
                       [torch.cat([v0, v], dim=2) for v0, (_, v) in zip(self.values, new_kv)],
                       torch.cat([self.valid, new_valid], dim=1), next_position)

    def select(self, rows: torch.Tensor | list[int]) -> KVCache:
        """The cache of the given batch rows (indices may repeat, e.g. to share one context)."""
        rows = torch.as_tensor(rows, dtype=torch.long, device=self.valid.device)
        return KVCache([k[rows] for k in self.keys], [v[rows] for v in self.values], self.valid[rows],
                       self.next_position[rows])

    @classmethod
    def concat(cls, caches: list[KVCache]) -> KVCache:
        """Stack caches along the batch, right-padding shorter ones with invalid slots."""
        length = max(c.length for c in caches)

        def pad(t: torch.Tensor, c: KVCache) -> torch.Tensor:
            return F.pad(t, (0, 0, 0, length - c.length))

        n_layers = len(caches[0].keys)
        return cls([torch.cat([pad(c.keys[i], c) for c in caches]) for i in range(n_layers)],
                   [torch.cat([pad(c.values[i], c) for c in caches]) for i in range(n_layers)],
                   torch.cat([F.pad(c.valid, (0, length - c.length)) for c in caches]),
                   torch.cat([c.next_position for c in caches]))
