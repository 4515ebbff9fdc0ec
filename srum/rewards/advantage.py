"""Stage 3b: reward maps → signed per-token training weights, relative to the other images of the same prompt.

The official map is a positive weight: a bad image is imitated a little less, never pushed away, so most of the
update re-learns the model's own mistakes (issue 11). Group-relative advantages (GRPO; Flow-GRPO, Liu et al. 2025,
arXiv 2505.05470) compare the K images drawn for one prompt instead: for image i of group g with token map M_i and
image reward R_i = mean_x M_i(x),

    A_i(x) = clip((M_i(x) − mean_g R) / max(std_g R, floor), −c, c),

dense (a good region of a poor image still scores above its image) and signed (images worse than their group get
negative weight). The floor keeps a group whose images score alike from blowing up noise into ±c.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch


def _members(maps: Sequence[torch.Tensor], groups: Sequence[Hashable]) -> list[list[int]]:
    """The map indices of each group, groups in order of first appearance."""
    if len(maps) != len(groups):
        raise ValueError(f"{len(maps)} reward maps but {len(groups)} group keys: pass one key per map")
    members: dict[Hashable, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    return list(members.values())


def group_advantages(maps: Sequence[torch.Tensor], groups: Sequence[Hashable], std_floor: float,
                     clip: float) -> list[torch.Tensor]:
    """Per-token advantages A_i(x) (same shapes as `maps`), normalised within each group of `groups`."""
    if std_floor <= 0 or clip <= 0:
        raise ValueError(f"std_floor={std_floor} and clip={clip} must be > 0")
    out: list[torch.Tensor] = [torch.empty(0)] * len(maps)
    for idx in _members(maps, groups):
        rewards = torch.stack([maps[i].float().mean() for i in idx])
        mean = rewards.mean()
        std = rewards.std(unbiased=False).clamp(min=std_floor)
        for i in idx:
            out[i] = ((maps[i].float() - mean) / std).clamp(-clip, clip)
    return out


def optimality(advantage: torch.Tensor, clip: float) -> torch.Tensor:
    """DiffusionNFT's optimality probability r = 0.5 + 0.5·clip(A / c, −1, 1) ∈ [0, 1] (0.5: no preference)."""
    return 0.5 + 0.5 * (advantage / clip).clamp(-1.0, 1.0)


def best_in_group(maps: Sequence[torch.Tensor], groups: Sequence[Hashable], keep_top: int) -> list[bool]:
    """Which images rejection fine-tuning keeps (RAFT, Dong et al. 2023, arXiv 2304.06767; expert iteration): the
    `keep_top` of each group with the highest image reward R_i = mean_x M_i(x), and of those only images scoring
    above the group's lowest, so a group whose images all score alike adds nothing. Ties go to the earlier image."""
    if keep_top < 1:
        raise ValueError(f"keep_top={keep_top} must be >= 1")
    keep = [False] * len(maps)
    for idx in _members(maps, groups):
        rewards = {i: float(maps[i].float().mean()) for i in idx}
        lowest = min(rewards.values())
        for i in sorted(idx, key=lambda i: -rewards[i])[:keep_top]:  # sorted() is stable: ties keep job order
            keep[i] = rewards[i] > lowest
    return keep


def best_worst_pairs(maps: Sequence[torch.Tensor], groups: Sequence[Hashable], n_pairs: int) -> list[tuple[int, int]]:
    """Diffusion-DPO's preference pairs (winner, loser) within each group: its j-th best image by image reward
    R_i = mean_x M_i(x) against its j-th worst, for j < n_pairs, each image in at most one pair; a pair is kept only
    where the winner scores strictly higher (a tie prefers nothing). Groups in order of first appearance."""
    if n_pairs < 1:
        raise ValueError(f"n_pairs={n_pairs} must be >= 1")
    pairs = []
    for idx in _members(maps, groups):
        rewards = {i: float(maps[i].float().mean()) for i in idx}
        ranked = sorted(idx, key=lambda i: -rewards[i])  # stable: ties keep job order
        for j in range(min(n_pairs, len(idx) // 2)):
            win, lose = ranked[j], ranked[-1 - j]
            if rewards[win] > rewards[lose]:
                pairs.append((win, lose))
    return pairs
