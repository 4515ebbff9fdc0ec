"""Reward maps against hand-computed values (srum.md §2, §5.1, §5.6; style.md §2)."""

import logging

import numpy as np
import pytest
import torch

from srum.config import RewardConfig, RewardMapKind
from srum.rewards.judge import Judgement
from srum.rewards.regions import Region
from srum.rewards.reward_map import (
    binarize_scores,
    build_reward_map,
    official_reward_map,
    signed_reward_map,
    to_latent_grid,
)


def _region(box, mask=None) -> Region:
    return Region(box_xyxy=box, mask=mask, area=(box[2] - box[0]) * (box[3] - box[1]))


# ---------------------------------------------------------------------------------------------------- official


def test_official_map_style_example():
    m = official_reward_map(4, 4, [((0, 0, 2, 2), 0.9), ((2, 2, 4, 4), -0.8)], global_score=0.6)
    assert m.shape == (4, 4) and m.dtype == torch.float32
    assert m[0, 0].item() == pytest.approx(0.76)  # (0.9+1)/2 = 0.95, times (0.6+1)/2 = 0.8
    assert m[1, 1].item() == pytest.approx(0.76)
    assert m[3, 3].item() == pytest.approx(0.40)  # (-0.8+1)/2 = 0.1 loses to the 0.5 base; 0.5 * 0.8
    assert m[0, 3].item() == pytest.approx(0.40)  # background: 0.5 * 0.8


def test_official_map_overlap_takes_max():
    # A: s=0.2 → w=0.6 on x,y ∈ [0,3); B: s=0.6 → w=0.8 on x,y ∈ [1,4); g=1 → factor 1.
    m = official_reward_map(4, 4, [((0, 0, 3, 3), 0.2), ((1, 1, 4, 4), 0.6)], global_score=1.0)
    assert m[0, 0].item() == pytest.approx(0.6)
    assert m[1, 1].item() == pytest.approx(0.8)  # max(0.5, 0.6, 0.8)
    assert m[3, 3].item() == pytest.approx(0.8)
    assert m[0, 3].item() == pytest.approx(0.5)  # row 0, column 3: in neither box


def test_official_map_box_cast_clamp_and_skip():
    # (-2.7, 1.9, 10.2, 3) → int → (-2, 1, 10, 3) → clamped (0, 1, 4, 3): rows 1-2, every column.
    regions = [((-2.7, 1.9, 10.2, 3), 1.0), ((3, 0, 1, 4), 1.0), ((2, 2, 2, 4), 1.0)]  # last two: inverted, empty
    m = official_reward_map(4, 4, regions, global_score=1.0)
    expected = torch.full((4, 4), 0.5)
    expected[1:3, :] = 1.0
    torch.testing.assert_close(m, expected)


def test_official_map_global_factor_only():
    # No regions: 0.5 * (g+1)/2 everywhere; g = -1 zeroes the map.
    torch.testing.assert_close(official_reward_map(2, 3, [], 0.2), torch.full((2, 3), 0.3))
    torch.testing.assert_close(official_reward_map(2, 3, [((0, 0, 3, 2), 1.0)], -1.0), torch.zeros(2, 3))


def test_official_map_mask_variant():
    # An L-shaped mask inside the box (0,0,2,2): only its 3 pixels get 0.95*0.8 = 0.76; (1,1) stays 0.4.
    mask = np.zeros((4, 4), dtype=bool)
    mask[0, 0] = mask[0, 1] = mask[1, 0] = True
    m = official_reward_map(4, 4, [(mask, 0.9)], global_score=0.6)
    assert m[0, 0].item() == pytest.approx(0.76)
    assert m[1, 0].item() == pytest.approx(0.76)
    assert m[1, 1].item() == pytest.approx(0.40)
    assert int((m > 0.5).sum()) == 3
    with pytest.raises(ValueError, match="mask has shape"):
        official_reward_map(5, 4, [(mask, 0.9)], global_score=0.6)


# ---------------------------------------------------------------------------------------------------- signed


def test_signed_map_hand_values():
    # g=0.6; A (0,0,2,2) s=0.9; B (2,2,4,4) s=-0.8; C (1,1,3,3) s=0.5; D (3,3,4,4) s=-0.2. M = (g + r)/2.
    regions = [((0, 0, 2, 2), 0.9), ((2, 2, 4, 4), -0.8), ((1, 1, 3, 3), 0.5), ((3, 3, 4, 4), -0.2)]
    m = signed_reward_map(4, 4, regions, global_score=0.6)
    assert m[0, 0].item() == pytest.approx(0.75)  # A only: (0.6 + 0.9)/2
    assert m[1, 1].item() == pytest.approx(0.75)  # A and C, no negative: max 0.9
    assert m[1, 2].item() == pytest.approx(0.55)  # row 1, column 2: C only: (0.6 + 0.5)/2
    assert m[2, 2].item() == pytest.approx(-0.1)  # B and C: the negative wins: (0.6 - 0.8)/2
    assert m[3, 3].item() == pytest.approx(-0.1)  # B and D: the most negative, -0.8
    assert m[0, 3].item() == pytest.approx(0.3)  # background: g/2
    assert m[2, 2] < m[0, 3]  # a bad region lowers the map below the background, unlike the official map


def test_signed_map_range_and_clamp():
    # Scores are clamped to [-1, 1]: 3.0 acts as 1.0 → (0.6 + 1)/2 = 0.8; extremes reach ±1.
    assert signed_reward_map(2, 2, [((0, 0, 2, 2), 3.0)], 0.6)[0, 0].item() == pytest.approx(0.8)
    assert signed_reward_map(2, 2, [((0, 0, 2, 2), -1.0)], -1.0).min().item() == pytest.approx(-1.0)
    assert signed_reward_map(2, 2, [((0, 0, 2, 2), 1.0)], 1.0).max().item() == pytest.approx(1.0)


def test_signed_map_mask_variant():
    mask = np.zeros((3, 3), dtype=bool)
    mask[1, 1] = True
    m = signed_reward_map(3, 3, [(mask, -0.6)], 0.0)
    assert m[1, 1].item() == pytest.approx(-0.3)  # (0 - 0.6)/2
    assert m[0, 0].item() == pytest.approx(0.0)


# ---------------------------------------------------------------------------------------------------- helpers


def test_binarize_scores():
    out = binarize_scores(torch.tensor([0.3, 0.0, -0.2, 1e-6]))
    torch.testing.assert_close(out, torch.tensor([1.0, -1.0, -1.0, 1.0]))  # exactly 0 → -1, as official


def test_to_latent_grid_downsample_is_block_mean():
    # 4×4 → 2×2, align_corners=False: output centres sit at input coordinate (i + 0.5)·2 − 0.5 = 0.5, 2.5,
    # halfway between two pixels in each axis, so each output is the mean of a 2×2 block.
    m = torch.arange(16, dtype=torch.float32).reshape(4, 4)
    out = to_latent_grid(m, 2, 2)
    torch.testing.assert_close(out, torch.tensor([2.5, 4.5, 10.5, 12.5]))  # (0+1+4+5)/4, ... row-major


def test_to_latent_grid_upsample_edges_clamp():
    # 1×2 → 1×4: source x = (j + 0.5)·0.5 − 0.5 = −0.25, 0.25, 0.75, 1.25;
    # clamped to [0, 1] and interpolated → 0, .25, .75, 1.
    out = to_latent_grid(torch.tensor([[0.0, 1.0]]), 1, 4)
    torch.testing.assert_close(out, torch.tensor([0.0, 0.25, 0.75, 1.0]))


def test_to_latent_grid_row_major():
    # A 2×3 map mapped to its own size is unchanged, flattened row by row.
    m = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    torch.testing.assert_close(to_latent_grid(m, 2, 3), torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))


# ---------------------------------------------------------------------------------------------------- build


def _judgement(global_score, scores, regions) -> Judgement:
    return Judgement(global_score=global_score, region_scores=scores, regions=regions, raw=[])


def test_build_drop_zero_global_and_missing():
    j = _judgement(0.0, [0.9], [_region((0, 0, 2, 2))])
    assert build_reward_map(j, 4, 4, RewardConfig(drop_zero_global=True)) is None
    m = build_reward_map(j, 4, 4, RewardConfig(drop_zero_global=False))
    assert m[0, 0].item() == pytest.approx(0.475)  # 0.95 * (0+1)/2
    # No global score: missing_global_score = 0.2 → factor 0.6 → 0.95 * 0.6 = 0.57.
    j = _judgement(None, [0.9], [_region((0, 0, 2, 2))])
    m = build_reward_map(j, 4, 4, RewardConfig(missing_global_score=0.2))
    assert m[0, 0].item() == pytest.approx(0.57)
    # Nothing scored at all: dropped, as the official formatter drops records with no rewards.
    assert build_reward_map(_judgement(None, [None], [_region((0, 0, 2, 2))]), 4, 4, RewardConfig()) is None


def test_build_skips_unparsed_regions_and_binarizes():
    regions = [_region((0, 0, 2, 2)), _region((2, 2, 4, 4))]
    j = _judgement(1.0, [0.3, None], regions)
    m = build_reward_map(j, 4, 4, RewardConfig())
    assert m[0, 0].item() == pytest.approx(0.65)  # (0.3+1)/2, g = 1
    assert m[3, 3].item() == pytest.approx(0.5)  # unparsed region: left out
    m = build_reward_map(j, 4, 4, RewardConfig(binarize=True))
    assert m[0, 0].item() == pytest.approx(1.0)  # 0.3 → +1 → w = 1


def test_build_signed_and_grid():
    j = _judgement(0.6, [-0.8], [_region((0, 0, 2, 2))])
    m = build_reward_map(j, 4, 4, RewardConfig(map=RewardMapKind.signed))
    assert m[0, 0].item() == pytest.approx(-0.1)  # (0.6 - 0.8)/2
    assert m[3, 3].item() == pytest.approx(0.3)
    w = build_reward_map(j, 4, 4, RewardConfig(map=RewardMapKind.signed), grid=(2, 2))
    # 2×2 block means: top-left block is all -0.1, the others all 0.3.
    torch.testing.assert_close(w, torch.tensor([-0.1, 0.3, 0.3, 0.3]))


def test_build_use_masks_and_fallback(caplog):
    mask = np.zeros((4, 4), dtype=bool)
    mask[0, 0] = True
    regions = [_region((0, 0, 2, 2), mask), _region((2, 2, 4, 4), None)]
    j = _judgement(1.0, [0.9, 0.9], regions)
    boxes = build_reward_map(j, 4, 4, RewardConfig(use_masks=False))
    assert boxes[1, 1].item() == pytest.approx(0.95)  # the whole box
    with caplog.at_level(logging.WARNING, logger="srum.rewards.reward_map"):
        masks = build_reward_map(j, 4, 4, RewardConfig(use_masks=True))
    assert masks[0, 0].item() == pytest.approx(0.95)
    assert masks[1, 1].item() == pytest.approx(0.5)  # in the box, not in the mask
    assert masks[3, 3].item() == pytest.approx(0.95)  # no mask: falls back to its box, counted
    assert "mask_fallbacks=1" in caplog.text


def test_uniform_and_global_only_switches():
    region = Region((0, 0, 2, 2), None, 4)
    j = Judgement(global_score=0.6, region_scores=[0.9], regions=[region], raw=[])
    uniform = build_reward_map(j, 4, 4, RewardConfig(source="uniform"), grid=(2, 2))
    assert uniform.tolist() == [1.0, 1.0, 1.0, 1.0]
    # global only: the region's 0.9 is ignored, so every pixel is 0.5 · (0.6 + 1) / 2 = 0.4
    glob = build_reward_map(j, 4, 4, RewardConfig(use_regions=False))
    assert torch.allclose(glob, torch.full((4, 4), 0.4))
    full = build_reward_map(j, 4, 4, RewardConfig())
    assert full[0, 0].item() == pytest.approx(0.76) and full[3, 3].item() == pytest.approx(0.4)
