"""The backend-neutral unified-model interface: everything the SRUM loop and evaluation ask of a model.

A backend (BAGEL today) implements generation, flow-matching velocity for training, understanding (free text, and a
distribution over given answer tokens for dense rewards), and the few facts training needs: which torch module
trains, which of its parameters are the generation side, where LoRA goes, and how a folder is written and read.
Sampler settings are opaque to the loop: a mapping of names the backend understands (steps, guidance scales, …).
No module outside `srum/models/` imports a backend; `srum.models.registry` finds one by name.
Conventions: latents are the backend's scaled latent maps (B, C, h, w); flow time t ∈ [0, 1] with
t = 1 pure noise; velocities are (B, n_tokens, token_dim) float32 with v = ε − x0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from PIL import Image


# A sampler hook: given each step's clean estimate x0_hat (B, n_tokens, token_dim) and its time t, a shift of x0_hat
# to step towards instead, or None to leave the step alone (`srum.guidance`).
Guide = Callable[[torch.Tensor, float], "torch.Tensor | None"]


@dataclass
class Posterior:
    """An autoencoder's diagonal-Gaussian posterior over images' latents. Encoded chunks keep it beside the one
    sample they train on by default, so training can draw a fresh sample at every step instead
    (`train.fresh_posterior`), as BAGEL's training does by encoding every image it loads again."""

    mean: torch.Tensor  # (B, ...) in the backend's scaled latent space
    std: torch.Tensor  # (B, ...) the same shape; a sample is mean + std·ε

    def sample(self, seeds: list[int]) -> torch.Tensor:
        """One draw per image, ε from a CPU generator seeded by the image's seed (the same on every device): the
        stored sample of an encoded image is this draw from its seed."""
        if len(seeds) != self.mean.shape[0]:
            raise ValueError(f"{len(seeds)} seeds for {self.mean.shape[0]} posteriors")
        eps = torch.stack([torch.randn(self.mean.shape[1:], generator=torch.Generator().manual_seed(int(s)))
                           for s in seeds])
        return self.mean + self.std * eps.to(self.mean.device, self.mean.dtype)


@dataclass
class SampledImages:
    images: list[Image.Image]
    latents: torch.Tensor  # (B, C, h, w): the clean latents the images were decoded from
    noise: torch.Tensor  # (B, n_tokens, token_dim): the initial noise, from each sample's seed
    seeds: list[int]
    plans: list[str] | None = None  # think-mode plans, when asked for
    # SDE rollouts: x at every grid point (B, num_timesteps, n_tokens, token_dim), the noise first, the latents last
    trajectory: torch.Tensor | None = None
    # where `latents` are an encoding of the images (renders): the posterior they were drawn from, by their seeds
    posterior: Posterior | None = None


@runtime_checkable
class UnifiedModel(Protocol):
    def sample_images(self, prompts: list[str], seeds: list[int], height: int, width: int,
                      think: bool = False, guide: Guide | None = None) -> SampledImages:
        """Draw one image per prompt; deterministic given the seeds. `guide` steers every step (see `Guide`)."""

    def sample_trajectories(self, prompts: list[str], seeds: list[int], height: int, width: int,
                            noise_level: float, think: bool = False) -> SampledImages:
        """Draw with stochastic (SDE) steps at `noise_level` (`srum.flow.sde_step`) and return each image's
        trajectory too: the rollouts of a policy-gradient objective. Deterministic given the seeds."""

    def encode_images(self, images: list[Image.Image], seeds: list[int]) -> torch.Tensor:
        """Images → clean latents (B, C, h, w), as training encodes them: `encode_posteriors(images).sample(seeds)`."""

    def encode_posteriors(self, images: list[Image.Image]) -> Posterior:
        """Images → the autoencoder's posteriors over their clean latents (B, C, h, w) (a deterministic encoder: std
        zero)."""

    def latents_to_tokens(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) latents → (B, n_tokens, token_dim), the space velocities live in."""

    def velocity(self, prompts: list[str | None], noisy_tokens: torch.Tensor, t: torch.Tensor,
                 grid: tuple[int, int]) -> torch.Tensor:
        """Predicted velocity (B, n_tokens, token_dim) for prompts (None: dropped), x_t tokens and times t (B,)."""

    def guided_velocity(self, prompts: list[str | None], noisy_tokens: torch.Tensor, t: torch.Tensor,
                        grid: tuple[int, int]) -> torch.Tensor:
        """The velocity the sampler steps with at these x_t and t (classifier-free guidance as the current sampler
        settings apply it), differentiable like `velocity`; a dropped prompt (None) gives the unguided velocity."""

    def generate_text(self, images: list[Image.Image | None], questions: list[str], max_new_tokens: int = 64,
                      temperature: float = 0.0, seed: int = 0) -> list[str]:
        """Answers to questions about images (None: text only): greedy, or sampled at temperature > 0 from `seed`."""

    def answer_distribution(self, images: list[Image.Image | None], questions: list[str],
                            answers: list[str]) -> torch.Tensor:
        """(B, K) probabilities of each candidate answer token, renormalised over the K, in one forward."""

    def answer_log_odds(self, images: list[Image.Image], questions: list[str],
                        answers: tuple[str, str]) -> torch.Tensor:
        """(B,) log P(answers[0]) − log P(answers[1]) (single-token answers) for each question about its image,
        differentiable in the weights (`answer_distribution` is not): what teaching the judge trains."""

    def latent_answer_log_odds(self, tokens: torch.Tensor, grid: tuple[int, int], questions: list[str],
                               answers: tuple[str, str]) -> torch.Tensor:
        """(B,) log P(answers[0]) − log P(answers[1]) (single-token answers) for each question about the image the
        clean latent tokens (B, n_tokens, token_dim) decode to, differentiable in `tokens`: the decoder's pixels go
        to the understanding path without rounding to 8 bits."""

    # ---- facts the loop needs -------------------------------------------------------------------
    def latent_grid(self, height: int, width: int) -> tuple[int, int]:
        """The latent token grid (h, w) of an image of this size; ValueError for sizes the model cannot draw."""

    def sampling_settings(self) -> dict[str, Any]:
        """The sampler's settings by name (JSON-ready), as manifests and evaluation summaries record them."""

    def set_sampling(self, **settings: Any) -> None:
        """Change sampler settings by name (e.g. num_timesteps=); ValueError naming an unknown one."""

    # ---- training ---------------------------------------------------------------------------------
    lora_targets: str  # regex of the generation-side module names LoRA adapters go on (peft `target_modules`)

    def trainable_module(self) -> torch.nn.Module:
        """The torch module an optimizer wraps: every weight a training run may change."""

    def is_generation_parameter(self, name: str) -> bool:
        """Whether a parameter of `trainable_module()` (by name) belongs to the generation side, the part that
        trains when the understanding side is frozen."""

    def is_judge_only_parameter(self, name: str) -> bool:
        """Whether a parameter of `trainable_module()` (by name) is read only when the model understands, never
        when it generates (for BAGEL: the ViT, its connector, the text head and its norm): changing such parameters
        changes the model's verdicts and leaves every image it draws exactly as it was."""

    def training_view(self, forward: Callable) -> UnifiedModel:
        """The same model (shared weights) whose `velocity` calls `forward` in place of `trainable_module()`:
        a DeepSpeed engine wrapping it, or a frozen reference."""

    def save_pretrained(self, folder: str | Path, state_dict: Mapping[str, torch.Tensor] | None = None) -> None:
        """Write a folder `from_pretrained` reads back, atomically (`state_dict` in place of the module's own,
        e.g. gathered from ZeRO-3 shards), with the current sampler settings."""

    @classmethod
    def from_pretrained(cls, folder: str | Path, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
                        sampling: Mapping[str, Any] | None = None, **options: Any) -> UnifiedModel:
        """Load a folder; `sampling` overrides the settings the folder recommends."""

    @classmethod
    def memory_facts(cls, folder: str | None, resolution: int, freeze_und: bool, lora_rank: int) -> Any:
        """Sizes for a memory plan, without loading weights (the folder's configuration, or the backend's published
        one when there is no folder): parameter counts (total, trainable under these settings, largest layer, the
        frozen autoencoder), decoder layers and width, tokens per training image at `resolution`, and the activation
        elements one layer keeps per token (`srum.models.bagel.memory.MemoryFacts`)."""

    @staticmethod
    def check_folder(folder: str | Path) -> None:
        """FileNotFoundError naming what a folder lacks, before anything is loaded."""
