"""PIL images ↔ BAGEL's pixel tensors, and BAGEL's resize rule (no torchvision)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from srum.models.bagel.config import ImageTransformParams


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB, with any transparency composited on white."""
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        canvas = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, image).convert("RGB")
    return image.convert("RGB")


def target_size(width: int, height: int, p: ImageTransformParams) -> tuple[int, int]:
    """(W, H) after BAGEL's rule: long side ≤ max, short side ≥ min, sides rounded to the nearest stride."""
    scale = min(p.max_size / max(width, height), 1.0)
    scale = max(scale, p.min_size / min(width, height))

    def snap(x: float) -> int:
        return max(p.stride, int(round(x / p.stride)) * p.stride)

    w, h = snap(width * scale), snap(height * scale)
    if w * h > p.max_pixels or max(w, h) > p.max_size:
        shrink = min((p.max_pixels / (w * h)) ** 0.5, p.max_size / max(w, h))
        w, h = (max(p.stride, int(x * shrink) // p.stride * p.stride) for x in (w, h))
    return w, h


def image_to_tensor(image: Image.Image, params: ImageTransformParams | None = None) -> torch.Tensor:
    """PIL → (3, H, W) float in [-1, 1], resized by BAGEL's rule when `params` is given (bicubic)."""
    image = to_rgb(image)
    if params is not None:
        size = target_size(*image.size, params)
        if size != image.size:
            image = image.resize(size, Image.Resampling.BICUBIC)
    arr = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy())
    return arr.permute(2, 0, 1).float() / 127.5 - 1.0


def tensor_to_images(pixels: torch.Tensor) -> list[Image.Image]:
    """(B, 3, H, W) in [-1, 1] → PIL images (truncating to uint8 as BAGEL's decoder does)."""
    u8 = ((pixels.float() * 0.5 + 0.5).clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(a) for a in u8]
