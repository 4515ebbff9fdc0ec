"""Can the model finish its own picture? Re-drawing a sample around the objects its judge accepted.

Rewards re-weight the model's samples, but only 4–8% of them meet their prompt on ShapesWorld (docs/reward.md,
*Exploration*). This diagnostic asks whether the model can complete a partly correct picture: the tokens of the
regions the round's judge called correct are held at the sample's own clean latents and every other token is drawn
anew, conditioned on them through attention (x0 replacement: at each sampler step the clean estimate of a held token
is moved onto the known latent, so the step heads there, as inpainting with a diffusion model's clean-image estimate
does). Scored by the prompt world's exact judge against fresh draws of the same prompts with the same seeds, it says
how much more often a held, correct part leads to a correct picture. The judge that chose the regions is the
round's own (the model itself in a self-rewarding round), so nothing here needs the oracle but the score.
"""

from __future__ import annotations

import torch

from srum.models.interface import Guide
from srum.rewards.reward_map import support_mask


def repaint_guide(known: torch.Tensor, keep: torch.Tensor) -> Guide:
    """A sampler `Guide` that holds the tokens where `keep` (B, n) is true at `known` (B, n, C) clean latents: the
    shift moves their clean estimate onto them at every step, so the sampler ends there; other tokens are free."""
    def guide(x0: torch.Tensor, t: float) -> torch.Tensor:
        return keep[:, :, None].to(x0) * (known.to(x0) - x0)
    return guide


def accepted(score: float | None, above: float = 0.0) -> bool | None:
    """A region's verdict: correct above `above` (as binarized rewards read a score), wrong at or below it, None
    where it was not judged."""
    return None if score is None else score > above


def region_tokens(boxes: list[list[int]], scores: list[float | None], size: tuple[int, int],
                  grid: tuple[int, int], above: float = 0.0, verdict: bool = True) -> torch.Tensor:
    """(grid_h·grid_w,) bool, row-major like the latent tokens: the tokens whose pixel cell overlaps a box whose
    `accepted` verdict is `verdict` (correct, or with False wrong); unjudged boxes are neither. Boxes are pixel x1,
    y1, x2, y2 on an image of `size` = (height, width)."""
    (h, w), (gh, gw) = size, grid
    if h % gh or w % gw:
        raise ValueError(f"image size {size} is not a whole number of latent cells {grid}")
    pixels = torch.zeros(h, w, dtype=torch.bool)
    for box, score in zip(boxes, scores):
        if accepted(score, above) is verdict and (mask := support_mask(box, h, w)) is not None:
            pixels |= mask
    return pixels.reshape(gh, h // gh, gw, w // gw).any(dim=3).any(dim=1).reshape(-1)


def held_tokens(boxes: list[list[int]], scores: list[float | None], size: tuple[int, int],
                grid: tuple[int, int], above: float = 0.0) -> torch.Tensor:
    """The tokens to hold: those of accepted regions that touch no rejected one, so that no part of a wrong object
    is kept where boxes overlap."""
    return (region_tokens(boxes, scores, size, grid, above)
            & ~region_tokens(boxes, scores, size, grid, above, verdict=False))
