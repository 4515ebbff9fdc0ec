"""ShapesWorld's region proposer (`regions.proposer=world`): connected same-hue foreground components of its
flat-colour images, a cheap, exact stand-in for SAM on them."""

from __future__ import annotations

import logging

import numpy as np
from PIL import Image

from srum.config import RegionsConfig
from srum.rewards.regions import Region, filter_regions, with_box_end
from srum.utils.pixels import border_color, box_filter3, dilate_labels3, hue_degrees, label_components, open_labels3

logger = logging.getLogger(__name__)

FG_DISTANCE = 0.2  # max-channel distance from the background colour (after a 3×3 box filter) to count as foreground
CHROMA_MIN = 0.08  # max − min channel below this: achromatic, its hue is noise; such pixels form their own group
HUE_BIN_DEG = 5.0
PEAK_MIN_SEP_DEG = 15.0  # hue peaks closer than this are one colour (ShapesWorld's palette is ≥ 25° apart)
HUE_GATE_DEG = 20.0  # pixels farther than this from every peak (blurred seams between colours) join no group
MIN_COMPONENT_FRAC = 0.002  # components under this fraction of the image are noise, not objects (8 px at 64²)


class ComponentsProposer:
    """Connected same-hue foreground components, for flat-colour images (ShapesWorld); CPU, no model, no scene spec.

    1. 3×3 box filter (noise ÷ 3); background = median colour of the 2-px border;
    2. foreground = pixels farther than FG_DISTANCE from it;
    3. hue groups from the peaks of the foreground hue histogram (data-driven, no palette): a dark stripe or dot of
       the object's own colour has the same hue, so textured objects stay whole, and two touching objects of
       different colours fall into different groups; low-chroma foreground is one "achromatic" group;
    4. a 3×3 opening per group removes the 1-2 px seams that blur leaves where two colours meet, then the shaved
       corners are given back; 4-connected components of each group are the regions.
    """

    def __init__(self, cfg: RegionsConfig) -> None:
        self.cfg = cfg

    def propose(self, images: list[Image.Image]) -> list[list[Region]]:
        """Regions for each image, largest first (see the class docstring)."""
        return [self._propose_one(im) for im in images]

    def _propose_one(self, image: Image.Image) -> list[Region]:
        rgb = box_filter3(np.asarray(image.convert("RGB"), dtype=np.float32) / 255)
        h, w, _ = rgb.shape
        groups = hue_groups(rgb)
        comps, n = label_components(groups)
        counts = np.bincount(comps[comps >= 0], minlength=n)
        regions = []
        for k in np.flatnonzero(counts >= MIN_COMPONENT_FRAC * h * w):
            mask = comps == k
            ys, xs = np.nonzero(mask)
            box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
            regions.append(Region(box_xyxy=box, mask=mask, area=int(counts[k])))
        out = with_box_end(filter_regions(regions, self.cfg.max_regions, self.cfg.min_area_frac, (h, w),
                                          self.cfg.box_nms_thresh), self.cfg.box_end)
        logger.debug("stage=regions proposer=components size=%dx%d components=%d kept=%d", w, h, n, len(out))
        return out


def hue_groups(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) float in [0, 1] → (H, W) int group per foreground pixel, −1 for background and seams."""
    bg = border_color(rgb)
    fg = np.abs(rgb - bg).max(axis=2) > FG_DISTANCE
    chroma = rgb.max(axis=2) - rgb.min(axis=2)
    hue = hue_degrees(rgb)
    chromatic = fg & (chroma >= CHROMA_MIN)
    peaks = hue_peaks(hue[chromatic], min_count=max(1, int(MIN_COMPONENT_FRAC * rgb.shape[0] * rgb.shape[1])))
    labels = np.full(fg.shape, -1, dtype=np.int32)
    if len(peaks):
        d = np.abs(hue[..., None] - peaks)
        d = np.minimum(d, 360 - d)
        labels = np.where(chromatic & (d.min(axis=2) <= HUE_GATE_DEG), d.argmin(axis=2), -1).astype(np.int32)
    labels[fg & (chroma < CHROMA_MIN)] = len(peaks)  # achromatic foreground: grey or black objects
    # the opening removes seams (edge padding: a group is not eroded by the image border); then give back the
    # corners it shaved off, per group, before the components are labelled
    return dilate_labels3(open_labels3(labels, pad="edge"), labels)


def hue_peaks(hues: np.ndarray, min_count: int) -> np.ndarray:
    """Hues (degrees) of the local maxima of a smoothed circular histogram that hold ≥ `min_count` pixels within
    ±PEAK_MIN_SEP_DEG/2; peaks closer than PEAK_MIN_SEP_DEG keep only the larger."""
    nbins = int(round(360 / HUE_BIN_DEG))
    hist = np.bincount((hues / HUE_BIN_DEG).astype(np.int64) % nbins, minlength=nbins).astype(np.float64)
    kernel = np.array([1, 4, 6, 4, 1], dtype=np.float64) / 16  # binomial ≈ Gaussian σ = 1 bin
    smooth = sum(k * np.roll(hist, s) for k, s in zip(kernel, range(-2, 3)))
    is_peak = (smooth >= np.roll(smooth, 1)) & (smooth > np.roll(smooth, -1)) & (smooth > 0)
    half = int(PEAK_MIN_SEP_DEG / HUE_BIN_DEG / 2)
    mass = sum(np.roll(hist, s) for s in range(-half, half + 1))
    cand = [i for i in np.flatnonzero(is_peak) if mass[i] >= min_count]
    cand.sort(key=lambda i: -smooth[i])
    chosen: list[int] = []
    for i in cand:
        if all(min(abs(i - j), nbins - abs(i - j)) * HUE_BIN_DEG >= PEAK_MIN_SEP_DEG for j in chosen):
            chosen.append(i)
    return np.array([(i + 0.5) * HUE_BIN_DEG for i in sorted(chosen)], dtype=np.float32)
