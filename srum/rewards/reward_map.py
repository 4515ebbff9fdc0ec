"""Stage 3: judge scores → per-pixel reward map → per-latent-token weights (srum.md §1.5-1.6, §2, §5.1-5.6).

Pure functions: tensors in, tensors out, `device` passed. Maps are (H, W) float32 in the training image's pixels.
A region's *support* is either its box `(x1, y1, x2, y2)` in pixels, filled as [x1, x2) × [y1, y2) (whether x2 is
the region's last pixel or one past it is the proposer's `regions.box_end`, srum.rewards.regions) or its (H, W) bool
mask; every map function accepts both, so the mask variant (§5.6) is the same code path.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Union

import numpy as np
import torch
import torch.nn.functional as F

from srum.config import RewardConfig, RewardMapKind

if TYPE_CHECKING:  # only for type hints: the judge module pulls in PIL and the region proposers
    from srum.rewards.judge import Judgement

logger = logging.getLogger(__name__)

BoxXYXY = tuple[float, float, float, float]
# A region's support: a pixel box, or a bool mask of the map's shape.
Support = Union[BoxXYXY, Sequence[float], np.ndarray, torch.Tensor]
ScoredRegion = tuple[Support, float]

NEUTRAL_BASE = 0.5  # official map value where no region beats it: w = (0 + 1)/2, a neutral score


def support_mask(support: Support, height: int, width: int,
                 device: torch.device | str | None = None) -> torch.Tensor | None:
    """(H, W) bool tensor for a box or mask; None for an empty box (official skips those)."""
    if isinstance(support, (np.ndarray, torch.Tensor)) and support.ndim == 2:
        mask = torch.as_tensor(support, device=device)
        if tuple(mask.shape) != (height, width):
            raise ValueError(
                f"region mask has shape {tuple(mask.shape)} but the reward map is {(height, width)}: "
                "resize masks with the image, or use boxes (reward.use_masks=false)"
            )
        return mask.to(torch.bool) if mask.any() else None
    if len(support) != 4:
        raise ValueError(f"region box {support!r} is not (x1, y1, x2, y2)")
    # Official: cast to int (truncation), clamp to [0, W] × [0, H], skip empty or inverted boxes.
    x1, y1, x2, y2 = (int(v) for v in support)
    x1, x2 = min(max(x1, 0), width), min(max(x2, 0), width)
    y1, y2 = min(max(y1, 0), height), min(max(y2, 0), height)
    if x2 <= x1 or y2 <= y1:
        return None
    mask = torch.zeros(height, width, dtype=torch.bool, device=device)
    mask[y1:y2, x1:x2] = True
    return mask


def official_reward_map(height: int, width: int, regions: Sequence[ScoredRegion], global_score: float,
                        device: torch.device | str | None = None) -> torch.Tensor:
    """The official map (srum.md §2): max(0.5, max over covering regions of (s+1)/2), times (g+1)/2.

    Returns (H, W) float32. Region scores ≤ 0 never beat the 0.5 base, so they have no effect (§5.1); for scores
    in [-1, 1] the range is [0, 1]. Scores are used as given (official never clamps).
    """
    reward_map = torch.full((height, width), NEUTRAL_BASE, dtype=torch.float32, device=device)
    for support, score in regions:
        mask = support_mask(support, height, width, device)
        if mask is None:
            continue
        w = (float(score) + 1.0) / 2.0
        reward_map[mask] = reward_map[mask].clamp(min=w)  # map = max(map, w) inside the region
    return reward_map * ((float(global_score) + 1.0) / 2.0)


def signed_reward_map(height: int, width: int, regions: Sequence[ScoredRegion], global_score: float,
                      device: torch.device | str | None = None) -> torch.Tensor:
    """A map centred at 0 in which bad regions lower the weight: M = (g + r(x)) / 2, range [-1, 1].

    r(x) is 0 where no region covers x. Where regions overlap, the most negative score wins if any covering score
    is negative, otherwise the largest positive score wins ("a flaw overrides context"): SAM's top-by-area boxes
    are mostly large background segments (§5.7) that cover the objects, so a max rule would hide exactly the local
    defects the regional judge exists to find, recreating the official map's inertness (§5.1). Neutral scores (0)
    equal the background, so irrelevant-but-harmless regions change nothing.

    The global term is added, not multiplied: with signed factors a bad layout times a bad region would give a
    positive weight. Halving keeps M in the scores' own range [-1, 1] with layout and region evidence weighted
    equally. Scores are clamped to [-1, 1] first so the range holds for unclamped text-mode scores.

    In the loss, the effective per-token weight is M + λ (anchor λ, srum.md §3.3); where M < -λ the token is pushed
    away from the sample, so with λ = 0.5 only clearly bad regions under a poor layout repel. λ ≥ 1 turns the map
    into pure down-weighting (no repulsion).
    """
    g = min(max(float(global_score), -1.0), 1.0)
    neg = torch.zeros(height, width, dtype=torch.float32, device=device)  # most negative covering score, else 0
    pos = torch.zeros(height, width, dtype=torch.float32, device=device)  # largest positive covering score, else 0
    for support, score in regions:
        mask = support_mask(support, height, width, device)
        if mask is None:
            continue
        s = min(max(float(score), -1.0), 1.0)
        if s < 0:
            neg[mask] = neg[mask].clamp(max=s)
        else:
            pos[mask] = pos[mask].clamp(min=s)
    region_term = torch.where(neg < 0, neg, pos)
    return (g + region_term) / 2.0


def binarize_scores(scores: torch.Tensor) -> torch.Tensor:
    """+1 where score > 0, else -1 (srum.md §1.6; a score of exactly 0 becomes -1, as official)."""
    return torch.where(scores > 0, torch.ones_like(scores), -torch.ones_like(scores))


def to_latent_grid(reward_map: torch.Tensor, grid_h: int, grid_w: int) -> torch.Tensor:
    """(H, W) map → (grid_h·grid_w,) token weights: bilinear, align_corners=False, no antialias, row-major.

    Row-major flattening matches BAGEL's latent-token order (official resizes the same way in the model forward).
    """
    if reward_map.ndim != 2:
        raise ValueError(f"reward_map must be (H, W), got shape {tuple(reward_map.shape)}")
    resized = F.interpolate(reward_map[None, None].float(), size=(grid_h, grid_w), mode="bilinear",
                            align_corners=False, antialias=False)
    return resized.reshape(grid_h * grid_w)


def build_reward_map(judgement: Judgement, height: int, width: int, cfg: RewardConfig,
                     grid: tuple[int, int] | None = None,
                     device: torch.device | str | None = None) -> torch.Tensor | None:
    """Apply the reward config to one judged image: (grid_h·grid_w,) weights, or the (H, W) map when grid is None.

    `reward.source=uniform` gives weight 1 everywhere (plain SFT on own samples); `use_regions=false` ignores
    region scores.

    Returns None when the image is dropped, as the official formatter does (srum.md §1.5): its global score is
    exactly 0 (with `drop_zero_global`; this includes text-mode global parse failures, which score 0.0), it is below
    `min_global` (rejection sampling), or it has neither a global score nor any scored region. A missing global score
    uses `cfg.missing_global_score`. Regions whose score did not parse (None) are left out. Boxes are taken as
    given, in the judged image's pixels (official does not rescale them when the training transform resizes, §5.5).
    """
    if cfg.source == "uniform":  # self-distillation: every image, every token, weight 1
        return torch.ones(grid[0] * grid[1], device=device) if grid else torch.ones(height, width, device=device)
    scored = [(r, s) for r, s in zip(judgement.regions, judgement.region_scores)
              if s is not None and cfg.use_regions]
    if judgement.global_score is None and not scored:
        return None
    g = cfg.missing_global_score if judgement.global_score is None else judgement.global_score
    if (cfg.drop_zero_global and g == 0) or (cfg.min_global is not None and g < cfg.min_global):
        return None
    scores = [s for _, s in scored]
    if cfg.binarize and scores:
        scores = binarize_scores(torch.tensor(scores, dtype=torch.float64)).tolist()
    supports: list[Support] = []
    mask_fallbacks = 0
    for region, _ in scored:
        if cfg.use_masks and region.mask is not None:
            supports.append(region.mask)
        else:
            mask_fallbacks += cfg.use_masks  # asked for masks but this region only has a box
            supports.append(region.box_xyxy)
    if mask_fallbacks:
        logger.warning("stage=reward mask_fallbacks=%d regions=%d: regions without a mask use their box",
                       mask_fallbacks, len(scored))
    make = official_reward_map if cfg.map == RewardMapKind.official else signed_reward_map
    reward_map = make(height, width, list(zip(supports, scores)), g, device=device)
    if grid is None:
        return reward_map
    if not all(isinstance(n, int) and n > 0 for n in grid):
        raise ValueError(f"grid={grid!r} must be two positive ints (grid_h, grid_w)")
    return to_latent_grid(reward_map, *grid)
