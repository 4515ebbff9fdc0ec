"""Understanding input: the SigLIP-style NaViT encoder, the connector, and image → patch tokens.

Patches are 14×14×3 vectors ordered (row-in-patch, col-in-patch, channel), channel fastest, and
embedded by a Linear (the checkpoint's form of the conv). Position ids are `row * S + col` with
S the largest grid side (70 for BAGEL), not the image width; the same ids index the learned ViT
table and the connector's 2-D sin-cos table. Images never attend to each other.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from transformers import SiglipVisionConfig
from transformers.activations import ACT2FN
from transformers.models.siglip.modeling_siglip import SiglipEncoder


def patchify(pixels: torch.Tensor, patch: int) -> torch.Tensor:
    """(3, H, W) → (H/p · W/p, p·p·3), patches row-major, values (py, px, c) with c fastest."""
    c, h, w = pixels.shape
    if h % patch or w % patch:
        raise ValueError(f"image {h}x{w} is not a multiple of the ViT patch {patch}")
    x = pixels.reshape(c, h // patch, patch, w // patch, patch)
    return x.permute(1, 3, 2, 4, 0).reshape((h // patch) * (w // patch), patch * patch * c)


def grid_position_ids(h: int, w: int, row_stride: int) -> torch.Tensor:
    """Flat ids `row * row_stride + col` of an h×w grid, row-major."""
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return (rows * row_stride + cols).flatten()


def resize_position_table(table: torch.Tensor, side: int) -> torch.Tensor:
    """A learned (S·S, D) ViT position table resampled (bicubic) to (side·side, D).

    How a ViT is moved to a finer patch grid without losing what its positions learned (as when a model is
    fine-tuned at a higher resolution); the fixed sin-cos table of the connector is simply rebuilt.
    """
    s0 = int(round(table.shape[0] ** 0.5))
    if s0 * s0 != table.shape[0]:
        raise ValueError(f"position table of {table.shape[0]} rows is not a square grid")
    grid = table.T.reshape(1, table.shape[1], s0, s0).float()
    out = F.interpolate(grid, size=(side, side), mode="bicubic", align_corners=False)
    return out.reshape(table.shape[1], side * side).T.contiguous().to(table.dtype)


class VisionEmbeddings(nn.Module):
    def __init__(self, config: SiglipVisionConfig, max_patches_per_side: int) -> None:
        super().__init__()
        self.patch_embedding = nn.Linear(config.num_channels * config.patch_size**2, config.hidden_size)
        self.position_embedding = nn.Embedding(max_patches_per_side**2, config.hidden_size)

    def forward(self, patches: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        return self.patch_embedding(patches) + self.position_embedding(position_ids)


class VisionTransformer(nn.Module):
    """`vit_model.vision_model`: patch/position embeddings, SigLIP encoder layers, post-LayerNorm."""

    def __init__(self, config: SiglipVisionConfig, max_patches_per_side: int) -> None:
        super().__init__()
        self.embeddings = VisionEmbeddings(config, max_patches_per_side)
        self.encoder = SiglipEncoder(config)
        self.post_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)


class NaViT(nn.Module):
    """`vit_model`: encodes a list of images of any (patch-multiple) sizes in one padded batch."""

    def __init__(self, config: SiglipVisionConfig, max_patches_per_side: int) -> None:
        super().__init__()
        self.patch_size = config.patch_size
        self.max_patches_per_side = max_patches_per_side
        self.vision_model = VisionTransformer(config, max_patches_per_side)

    def forward(self, images: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (3, H, W) in [-1, 1] → (all tokens (n, Dv), their position ids (n,)), images concatenated."""
        patches, ids, lengths = [], [], []
        for im in images:
            h, w = (d // self.patch_size for d in im.shape[-2:])
            if max(h, w) > self.max_patches_per_side:
                raise ValueError(f"image of {h}x{w} patches exceeds the ViT's {self.max_patches_per_side} per side")
            patches.append(patchify(im, self.patch_size))
            ids.append(grid_position_ids(h, w, self.max_patches_per_side).to(im.device))
            lengths.append(h * w)
        n_max = max(lengths)
        weight = self.vision_model.embeddings.patch_embedding.weight
        x = torch.zeros(len(images), n_max, weight.shape[1], dtype=weight.dtype, device=weight.device)
        pos = torch.zeros(len(images), n_max, dtype=torch.long, device=weight.device)
        key_valid = torch.zeros(len(images), n_max, dtype=torch.bool, device=weight.device)
        for i, (p, pid, n) in enumerate(zip(patches, ids, lengths)):
            x[i, :n], pos[i, :n], key_valid[i, :n] = p.to(weight.dtype), pid, True
        vm = self.vision_model
        h = vm.embeddings(x, pos)
        # Padded keys are masked; padded queries see key 0 and are dropped afterwards.
        mask = key_valid[:, None, None, :].expand(-1, 1, n_max, -1)
        h = vm.encoder(inputs_embeds=h, attention_mask=mask).last_hidden_state
        h = vm.post_layernorm(h)
        return h[key_valid], pos[key_valid]


class Connector(nn.Module):
    """ViT width → LLM width: fc1, GELU(tanh), fc2."""

    def __init__(self, in_dim: int, out_dim: int, act: str) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, out_dim)
        self.act = ACT2FN[act]
        self.fc2 = nn.Linear(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))
