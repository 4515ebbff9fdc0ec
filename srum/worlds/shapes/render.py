"""Scene → RGB image: supersampled 4×, box-filtered down, with seeded jitter so no two renders are identical.

Jitter (position ±1.5 %, size ±4 %, rotation ±5°, colour ±0.03 per channel, background ±0.02, stripe angle and
phase, dot phase) is small enough that every relation the layout guarantees (gaps, occlusion anchors, containment
margins) still holds. Everything random comes from the caller's `numpy.random.Generator`, so a seed fixes the pixels.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from srum.worlds.shapes.scene import (
    DOT_RADIUS, DOT_SPACING, PALETTE, STRIPE_PERIOD, TEXTURE_DARKNESS, Obj, Scene, vertices,
)

SUPERSAMPLE = 4
POSITION_JITTER = 0.015
SIZE_JITTER = 0.04
ROTATION_JITTER = 5.0
COLOR_JITTER = 0.03
BACKGROUND_JITTER = 0.02


def render(scene: Scene, size: int = 64, rng: np.random.Generator | None = None) -> Image.Image:
    """Draw `scene` on a `size`×`size` RGB canvas; `rng=None` draws the exact scene with no jitter."""
    if size < 16:
        raise ValueError(f"render(size={size}): use at least 16 px (textures and the oracle are tuned for 64)")
    big = size * SUPERSAMPLE
    bg = np.asarray(scene.background, dtype=np.float32)
    if rng is not None:
        bg = bg + rng.uniform(-BACKGROUND_JITTER, BACKGROUND_JITTER, 3).astype(np.float32)
    canvas = np.empty((big, big, 3), dtype=np.float32)
    canvas[:] = bg
    yy, xx = np.mgrid[0:big, 0:big].astype(np.float32)
    xx = (xx + 0.5) / big  # pixel centres in canvas units
    yy = (yy + 0.5) / big
    for obj in sorted(scene.objects, key=lambda o: -o.depth):  # far first: the nearest object is painted last
        obj = _jitter(obj, rng)
        mask = object_mask(obj, big)
        color = np.asarray(PALETTE[obj.color], dtype=np.float32)
        if rng is not None:
            color = color + rng.uniform(-COLOR_JITTER, COLOR_JITTER, 3).astype(np.float32)
        dark = _texture(obj.texture, xx, yy, rng)
        if dark is None:
            canvas[mask] = color
        else:
            canvas[mask] = np.where(dark[mask, None], color * TEXTURE_DARKNESS, color)
    small = canvas.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, 3).mean(axis=(1, 3))  # box filter = area AA
    return Image.fromarray(np.clip(np.rint(small * 255), 0, 255).astype(np.uint8), mode="RGB")


def _jitter(obj: Obj, rng: np.random.Generator | None) -> Obj:
    if rng is None:
        return obj
    dx, dy = rng.uniform(-POSITION_JITTER, POSITION_JITTER, 2)
    return Obj(
        shape=obj.shape, color=obj.color, texture=obj.texture, depth=obj.depth,
        size=obj.size * (1 + rng.uniform(-SIZE_JITTER, SIZE_JITTER)),
        x=obj.x + dx, y=obj.y + dy,
        rotation=obj.rotation + rng.uniform(-ROTATION_JITTER, ROTATION_JITTER),
    )


def object_mask(obj: Obj, big: int) -> np.ndarray:
    """Boolean coverage of one object on the supersampled grid, drawn by PIL for exact polygon rasterisation."""
    img = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(img)
    if obj.shape == "circle":
        r = obj.size / 2 * big
        cx, cy = obj.x * big, obj.y * big
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    else:
        draw.polygon([(vx * big, vy * big) for vx, vy in vertices(obj.shape, obj.x, obj.y, obj.size, obj.rotation)],
                     fill=255)
    return np.asarray(img) > 127


def _texture(texture: str, xx: np.ndarray, yy: np.ndarray, rng: np.random.Generator | None) -> np.ndarray | None:
    """Where the pattern is dark, or None for solid. Stripes get a random angle so the oracle cannot rely on one."""
    if texture == "solid":
        return None
    phase = rng.uniform(0, 1, 2) if rng is not None else np.zeros(2)
    if texture == "striped":
        angle = math.radians(rng.uniform(0, 180)) if rng is not None else math.pi / 4
        u = (xx * math.cos(angle) + yy * math.sin(angle)) / STRIPE_PERIOD + phase[0]
        return (u - np.floor(u)) < 0.5
    # dotted: a square grid of dark dots
    gx = xx / DOT_SPACING + phase[0]
    gy = yy / DOT_SPACING + phase[1]
    dx = (gx - np.rint(gx)) * DOT_SPACING
    dy = (gy - np.rint(gy)) * DOT_SPACING
    return dx * dx + dy * dy < DOT_RADIUS * DOT_RADIUS


def degrade(image: Image.Image, rng: np.random.Generator, blur_sigma: float = 1.0, noise: float = 0.05,
            color_shift: float = 0.03, jpeg_quality: int | None = None) -> Image.Image:
    """What a small generator's output looks like: Gaussian blur (σ in px), additive Gaussian noise (σ in [0, 1]
    units), a global per-channel colour shift up to ±`color_shift`, optionally JPEG. Used to test the oracle."""
    x = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    if blur_sigma > 0:
        radius = max(1, int(math.ceil(3 * blur_sigma)))
        k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / blur_sigma) ** 2)
        k /= k.sum()
        p = np.pad(x, ((radius, radius), (radius, radius), (0, 0)), mode="edge")
        h, w = x.shape[:2]
        p = sum(k[i] * p[i:i + h] for i in range(k.size))  # vertical pass
        x = sum(k[i] * p[:, i:i + w] for i in range(k.size))  # horizontal pass
    x = x + rng.uniform(-color_shift, color_shift, 3).astype(np.float32) + rng.normal(0, noise, x.shape)
    out = Image.fromarray(np.clip(np.rint(x * 255), 0, 255).astype(np.uint8), mode="RGB")
    if jpeg_quality is not None:
        import io

        buf = io.BytesIO()
        out.save(buf, format="JPEG", quality=jpeg_quality)
        out = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return out
