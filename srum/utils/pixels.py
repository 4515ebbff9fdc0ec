"""Small numpy image operations for parsing flat-colour renders (a world's oracle and region proposer use them).

They parse flat-colour images the same way (box filter, background from the border, hue, 3×3 morphology,
4-connected components), so the pixel arithmetic lives here once. Conventions:

- images are (H, W, C) float arrays in [0, 1]; masks are (H, W) bool; label maps are (H, W) int with −1 = no label;
- every neighbourhood is the 3×3 square (8 neighbours + the pixel itself); connectivity of components is 4-way;
- padding at the image border is stated per function, because it decides what happens to objects that touch the
  border: `pad="constant"` treats outside pixels as background (False / −1), `pad="edge"` repeats the border pixel.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Pad = Literal["constant", "edge"]


def _windows(a: np.ndarray, pad: Pad, fill) -> list[np.ndarray]:
    """The nine (H, W) views of `a` shifted by (dy, dx) ∈ {−1, 0, 1}², padded by `pad` (`fill` for "constant")."""
    h, w = a.shape[:2]
    width = ((1, 1), (1, 1)) + ((0, 0),) * (a.ndim - 2)
    p = np.pad(a, width, mode="edge") if pad == "edge" else np.pad(a, width, constant_values=fill)
    return [p[i:i + h, j:j + w] for i in range(3) for j in range(3)]


def box_filter3(x: np.ndarray) -> np.ndarray:
    """3×3 mean over the first two axes of an (H, W, ...) array, e.g. (H, W, C) float RGB.

    Edge padding: a border pixel averages with copies of itself, so a flat background stays exactly flat up to the
    border (zero padding would darken it and break the border-median background estimate). Divides independent
    noise's σ by 3. The dtype follows `x` (float32 in, float32 out).
    """
    return sum(_windows(x, "edge", 0)) / 9


def border_color(rgb: np.ndarray, width: int = 2) -> np.ndarray:
    """Median colour (C,) of the `width`-pixel frame around an (H, W, C) image: the background, since objects are
    placed away from the edges and a median ignores the few that reach them. Corner pixels count twice."""
    c = rgb.shape[2]
    frame = np.concatenate([rgb[:width].reshape(-1, c), rgb[-width:].reshape(-1, c),
                            rgb[:, :width].reshape(-1, c), rgb[:, -width:].reshape(-1, c)])
    return np.median(frame, axis=0)


def hue_degrees(rgb: np.ndarray) -> np.ndarray:
    """HSV hue in degrees, in [0, 360), of an (H, W, 3) RGB float array; 0 where the pixel is grey (max = min).

    Hue is what names a colour under the renders' degradations: a dark texture scales RGB and blending with a
    near-grey background moves towards grey, and neither changes it. Same math as `colorsys.rgb_to_hsv` × 360,
    vectorised; the final `% 360` folds the float rounding case 6·60 = 360 back to 0 (the same hue).
    """
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    vmax = rgb.max(axis=-1)
    chroma = vmax - rgb.min(axis=-1)
    c = np.maximum(chroma, 1e-6)
    hue = np.where(vmax == r, ((g - b) / c) % 6, np.where(vmax == g, (b - r) / c + 2, (r - g) / c + 4))
    return np.where(chroma > 0, hue * 60, 0.0) % 360


def erode3(mask: np.ndarray, *, pad: Pad = "constant") -> np.ndarray:
    """Binary erosion by the 3×3 square: a pixel stays True only if its whole 3×3 neighbourhood is True.

    pad="constant": outside the image is False, so the outermost row/column is always eroded (a mask touching the
    border shrinks from it too). pad="edge": outside repeats the border, so a mask is not eroded *by* the border.
    """
    mask = np.asarray(mask, dtype=bool)
    out = np.ones_like(mask)
    for s in _windows(mask, pad, False):
        out &= s
    return out


def dilate3(mask: np.ndarray) -> np.ndarray:
    """Binary dilation by the 3×3 square: True where any pixel of the 3×3 neighbourhood is True (outside = False,
    which for dilation is the same as edge padding)."""
    mask = np.asarray(mask, dtype=bool)
    out = np.zeros_like(mask)
    for s in _windows(mask, "constant", False):
        out |= s
    return out


def dilate_labels3(seeds: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-label 3×3 dilation of `seeds` kept inside `labels`: pixel p gets labels[p] (≥ 0) when some pixel of its
    3×3 neighbourhood has seeds == labels[p], else −1. For every label g this is dilate3(seeds == g) & (labels == g),
    without a loop over labels."""
    keep = np.zeros(labels.shape, dtype=bool)
    for s in _windows(seeds, "constant", -1):
        keep |= s == labels
    return np.where(keep & (labels >= 0), labels, -1)


def open_labels3(labels: np.ndarray, *, pad: Pad = "constant") -> np.ndarray:
    """Per-label 3×3 opening of a label map (−1 = none): for every label g, dilate3(erode3(labels == g, pad=pad)).

    Keeps the pixels of each label that lie in some 3×3 square entirely of that label; removes 1-2 px features such
    as the mixed-hue seams blur leaves where two colours meet, and rounds off convex corners. `pad` is erode3's
    border rule (with "constant" a label touching the border loses its outermost pixels, as there is no full 3×3
    square there). Labels never grow into each other: the result is a subset of `labels`.
    """
    core = labels >= 0
    for s in _windows(labels, pad, -1):
        core &= s == labels
    return dilate_labels3(np.where(core, labels, -1), labels)


def label_components(groups: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected components of equal non-negative values in an (H, W) int map → (labels, count), −1 elsewhere.

    Vectorised label propagation: every pixel takes the smallest pixel index among same-group neighbours, plus
    pointer jumping (label ← label of its label), until nothing changes; then labels are renumbered 0..n−1 in
    raster order of each component's first pixel. Returned labels are int32.
    """
    h, w = groups.shape
    valid = groups >= 0
    sentinel = h * w
    lab = np.where(valid, np.arange(h * w).reshape(h, w), sentinel)
    link_r = valid[:, :-1] & (groups[:, :-1] == groups[:, 1:])
    link_d = valid[:-1, :] & (groups[:-1, :] == groups[1:, :])
    flat_valid = valid.ravel()
    while True:
        new = lab.copy()
        m = np.minimum(lab[:, :-1], lab[:, 1:])
        new[:, :-1] = np.where(link_r, np.minimum(new[:, :-1], m), new[:, :-1])
        new[:, 1:] = np.where(link_r, np.minimum(new[:, 1:], m), new[:, 1:])
        m = np.minimum(lab[:-1, :], lab[1:, :])
        new[:-1, :] = np.where(link_d, np.minimum(new[:-1, :], m), new[:-1, :])
        new[1:, :] = np.where(link_d, np.minimum(new[1:, :], m), new[1:, :])
        flat = new.ravel()  # a view: the jumps below update `new`
        for _ in range(4):  # a label always points at a pixel of the same component with a smaller index
            flat[flat_valid] = flat[flat[flat_valid]]
        if np.array_equal(new, lab):
            break
        lab = new
    out = np.full((h, w), -1, dtype=np.int32)
    roots, inverse = np.unique(lab[valid], return_inverse=True)
    out[valid] = inverse.astype(np.int32)
    return out, len(roots)
