"""BAGEL's latent codec: the FLUX autoencoder as a diffusers `AutoencoderKL`, with BAGEL's scaling.

diffusers applies no scale/shift, so `encode` returns `scale·(z − shift)` and `decode` inverts it.
Images are (B, 3, H, W) in [-1, 1]. Checkpoints in the official (Black Forest Labs) key names are
converted with diffusers' own `convert_ldm_vae_checkpoint`.
"""

from __future__ import annotations

import dataclasses

import torch
from diffusers import AutoencoderKL
from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
from torch import nn

from srum.models.bagel.config import VaeParams
from srum.models.interface import Posterior


def is_official_vae_state(state: dict[str, torch.Tensor]) -> bool:
    return any(k.startswith("encoder.down.") for k in state)


def vae_params_from_official_state(state: dict[str, torch.Tensor], base: VaeParams | None = None) -> VaeParams:
    """Sizes of a FLUX-style autoencoder read off its official-named tensors (scale/shift kept from `base`)."""
    base = base or VaeParams()
    ch = state["encoder.conv_in.weight"].shape[0]
    levels = sorted({int(k.split(".")[2]) for k in state if k.startswith("encoder.down.")})
    ch_mult = [state[f"encoder.down.{i}.block.0.conv2.weight"].shape[0] // ch for i in levels]
    blocks = {int(k.split(".")[4]) for k in state if k.startswith("encoder.down.0.block.")}
    return dataclasses.replace(base, ch=ch, ch_mult=ch_mult, num_res_blocks=len(blocks),
                               in_channels=state["encoder.conv_in.weight"].shape[1],
                               out_ch=state["decoder.conv_out.weight"].shape[0],
                               z_channels=state["decoder.conv_in.weight"].shape[1])


class BagelVAE(nn.Module):
    def __init__(self, params: VaeParams) -> None:
        super().__init__()
        self.params = params
        n = len(params.ch_mult)
        self.model = AutoencoderKL(
            in_channels=params.in_channels, out_channels=params.out_ch, latent_channels=params.z_channels,
            block_out_channels=tuple(params.ch * m for m in params.ch_mult), layers_per_block=params.num_res_blocks,
            down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
            norm_num_groups=32, act_fn="silu", sample_size=params.resolution, use_quant_conv=False,
            use_post_quant_conv=False, mid_block_add_attention=True,
        )
        self.model.requires_grad_(False)  # BAGEL never trains its VAE

    def load_official_state(self, state: dict[str, torch.Tensor]) -> tuple[list[str], list[str]]:
        """Load BFL-named weights; returns (missing, unexpected) diffusers names."""
        converted = convert_ldm_vae_checkpoint(state, dict(self.model.config))
        result = self.model.load_state_dict(converted, strict=False)
        used = len(converted)
        unexpected = list(result.unexpected_keys)
        if used < len(state):  # names the converter did not recognise at all
            unexpected += [f"<{len(state) - used} official keys not mapped>"]
        return list(result.missing_keys), unexpected

    def moments(self, images: torch.Tensor) -> torch.Tensor:
        """Encoder output (B, 2C, h, w) = [mean, logvar]."""
        return self.model.encoder(images.to(self.dtype))

    @torch.no_grad()
    def posterior(self, images: torch.Tensor) -> Posterior:
        """Images → the posterior of their scaled latents, float32: `encode`'s draw is its mean + std·ε."""
        mean, logvar = self.moments(images).float().chunk(2, dim=1)
        std = (0.5 * logvar.clamp(-30.0, 20.0)).exp()
        return Posterior(self.params.scale_factor * (mean - self.params.shift_factor), self.params.scale_factor * std)

    @torch.no_grad()
    def encode(self, images: torch.Tensor, generator: torch.Generator | None = None, sample: bool = True) -> torch.Tensor:
        """Images → scaled latents (B, C, H/8, W/8). `sample` draws from the posterior, as BAGEL does."""
        mean, logvar = self.moments(images).chunk(2, dim=1)
        z = mean
        if sample:
            logvar = logvar.clamp(-30.0, 20.0)
            noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            z = mean + (0.5 * logvar).exp() * noise
        return self.params.scale_factor * (z - self.params.shift_factor)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents (B, C, h, w) → images (B, 3, 8h, 8w), roughly in [-1, 1] (not clamped); differentiable in
        `latents` (the weights never train), for judge guidance."""
        z = latents.to(self.dtype) / self.params.scale_factor + self.params.shift_factor
        return self.model.decode(z).sample

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype
