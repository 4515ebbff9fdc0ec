"""Group-relative advantages and DiffusionNFT optimality against hand-computed values."""

import pytest
import torch

from srum.rewards.advantage import group_advantages, optimality


def test_advantages_hand_values():
    # Group "a": image rewards 0.2 (map [0.0, 0.4]) and 0.6 (map [0.6, 0.6]): mean 0.4, population std 0.2.
    # Group "b": a single image: mean = its own reward 1.0, std 0 → floor 0.1.
    maps = [torch.tensor([0.0, 0.4]), torch.tensor([0.6, 0.6]), torch.tensor([1.0, 1.0])]
    adv = group_advantages(maps, ["a", "a", "b"], std_floor=0.1, clip=10.0)
    torch.testing.assert_close(adv[0], torch.tensor([-2.0, 0.0]))  # (0 − 0.4)/0.2, (0.4 − 0.4)/0.2
    torch.testing.assert_close(adv[1], torch.tensor([1.0, 1.0]))  # (0.6 − 0.4)/0.2
    torch.testing.assert_close(adv[2], torch.tensor([0.0, 0.0]))


def test_advantages_are_signed_dense_and_clipped():
    maps = [torch.tensor([0.0, 1.0]), torch.tensor([0.5, 0.5])]  # equal image rewards 0.5: std 0 → floor 0.1
    adv = group_advantages(maps, [0, 0], std_floor=0.1, clip=2.0)
    # (0 − 0.5)/0.1 = −5 → −2; (1 − 0.5)/0.1 = 5 → 2: a good region of an average image is still pulled, a bad one
    # pushed away
    torch.testing.assert_close(adv[0], torch.tensor([-2.0, 2.0]))
    torch.testing.assert_close(adv[1], torch.tensor([0.0, 0.0]))


def test_uniform_rewards_give_zero_advantage():
    adv = group_advantages([torch.ones(4)] * 3, ["p"] * 3, std_floor=0.1, clip=2.0)
    assert all(torch.equal(a, torch.zeros(4)) for a in adv)


def test_optimality_maps_clip_range_to_unit_interval():
    r = optimality(torch.tensor([-3.0, -2.0, -1.0, 0.0, 1.0, 2.0]), clip=2.0)
    torch.testing.assert_close(r, torch.tensor([0.0, 0.0, 0.25, 0.5, 0.75, 1.0]))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="one key per map"):
        group_advantages([torch.ones(2)], [0, 1], 0.1, 2.0)
    with pytest.raises(ValueError, match="std_floor"):
        group_advantages([torch.ones(2)], [0], 0.0, 2.0)
