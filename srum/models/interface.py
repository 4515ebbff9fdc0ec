"""The backend-neutral unified-model interface the SRUM loop calls.

A backend (BAGEL today) implements generation, flow-matching velocity for training, and
understanding (free text, and a distribution over given answer tokens for dense rewards).
Conventions: latents are the backend's scaled latent maps (B, C, h, w); flow time t ∈ [0, 1] with
t = 1 pure noise; velocities are (B, n_tokens, token_dim) float32 with v = ε − x0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from PIL import Image


@dataclass
class SampledImages:
    images: list[Image.Image]
    latents: torch.Tensor  # (B, C, h, w): the clean latents the images were decoded from
    noise: torch.Tensor  # (B, n_tokens, token_dim): the initial noise, from each sample's seed
    seeds: list[int]
    plans: list[str] | None = None  # think-mode plans, when asked for


@runtime_checkable
class UnifiedModel(Protocol):
    def sample_images(self, prompts: list[str], seeds: list[int], height: int, width: int,
                      think: bool = False) -> SampledImages:
        """Draw one image per prompt; deterministic given the seeds."""

    def encode_images(self, images: list[Image.Image], seeds: list[int]) -> torch.Tensor:
        """Images → clean latents (B, C, h, w), as training encodes them (seeded where the encoder samples)."""

    def latents_to_tokens(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) latents → (B, n_tokens, token_dim), the space velocities live in."""

    def velocity(self, prompts: list[str | None], noisy_tokens: torch.Tensor, t: torch.Tensor,
                 grid: tuple[int, int]) -> torch.Tensor:
        """Predicted velocity (B, n_tokens, token_dim) for prompts (None: dropped), x_t tokens and times t (B,)."""

    def generate_text(self, images: list[Image.Image | None], questions: list[str], max_new_tokens: int = 64,
                      temperature: float = 0.0, seed: int = 0) -> list[str]:
        """Answers to questions about images (None: text only): greedy, or sampled at temperature > 0 from `seed`."""

    def answer_distribution(self, images: list[Image.Image | None], questions: list[str],
                            answers: list[str]) -> torch.Tensor:
        """(B, K) probabilities of each candidate answer token, renormalised over the K, in one forward."""
