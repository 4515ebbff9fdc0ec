"""Moving the ViT to another patch grid: the learned position table is resampled, not re-learned."""

from __future__ import annotations

import pytest
import torch

from srum.models.bagel.vision import resize_position_table


def test_same_grid_is_unchanged_and_smooth_tables_stay_smooth():
    table = torch.randn(64, 5)
    assert torch.equal(resize_position_table(table, 8), table)
    constant = torch.full((16, 3), 0.25)
    assert torch.allclose(resize_position_table(constant, 8), torch.full((64, 3), 0.25))
    # A table that varies along columns only keeps doing so on the finer grid, in the same order.
    cols = torch.arange(4.0).repeat(4)[:, None]  # row-major 4x4, value = column index
    grid = resize_position_table(cols, 8).reshape(8, 8)
    assert torch.allclose(grid, grid[:1].expand(8, 8))
    assert torch.all(grid[0, 1:] >= grid[0, :-1]) and grid[0, 0] < 0.5 < 2.5 < grid[0, -1]


def test_non_square_table_is_refused():
    with pytest.raises(ValueError, match="not a square grid"):
        resize_position_table(torch.zeros(10, 2), 4)
