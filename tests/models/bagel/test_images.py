"""Image conversions and BAGEL's resize rule, on hand-worked sizes."""

from __future__ import annotations

import torch
from PIL import Image

from srum.models.bagel.config import BagelConfig
from srum.models.bagel.images import image_to_tensor, target_size, tensor_to_images
from srum.models.bagel.latents import patchify_latent, unpatchify_latent
from srum.models.bagel.vision import patchify

VIT = BagelConfig.bagel_7b_mot().vit_transform  # max 980, min 224, stride 14


def test_target_size_by_hand():
    assert target_size(1000, 500, VIT) == (980, 490)  # long side capped: scale 0.98
    assert target_size(100, 50, VIT) == (448, 224)  # short side raised to 224: scale 4.48
    assert target_size(230, 300, VIT) == (224, 294)  # 230 → nearest multiple of 14 is 224; 300 → 294


def test_pixels_roundtrip_and_alpha_on_white():
    img = Image.new("RGBA", (3, 2), (10, 20, 30, 0))  # fully transparent → white
    t = image_to_tensor(img)
    assert t.shape == (3, 2, 3) and torch.allclose(t, torch.ones_like(t))
    rgb = Image.new("RGB", (4, 4), (0, 128, 255))
    back = tensor_to_images(image_to_tensor(rgb)[None])[0]
    assert list(back.getpixel((1, 1))) == [0, 128, 255]


def test_patch_orders():
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(2, 4, 4)  # (C, H, W)
    tokens = patchify_latent(x, 2)
    # token 1 = patch at row 0, col 1; values (dy, dx, c) with c fastest: x[:, 0, 2], x[:, 0, 3], x[:, 1, 2], ...
    assert tokens[1].tolist() == [2, 18, 3, 19, 6, 22, 7, 23]
    assert torch.equal(unpatchify_latent(tokens, (2, 2), 2), x)
    img = torch.arange(3 * 28 * 28, dtype=torch.float32).reshape(3, 28, 28)
    p = patchify(img, 14)
    assert p.shape == (4, 588) and p[0, :3].tolist() == [0.0, 784.0, 1568.0]  # channel fastest
