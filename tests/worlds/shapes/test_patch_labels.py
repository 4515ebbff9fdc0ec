"""Per-patch shape labels: hand-placed objects whose patch coverage is known exactly."""

from __future__ import annotations

import numpy as np

from srum.worlds.shapes.patch_labels import BACKGROUND, N_CLASSES, patch_shape_labels
from srum.worlds.shapes.scene import SHAPES, SQUARE_SIDE, Obj, Scene

SQUARE, CIRCLE = 1 + SHAPES.index("square"), 1 + SHAPES.index("circle")


def square_over_middle(depth: float) -> Obj:
    """A square of side 0.5 centred on the canvas: exactly patches 2..5 of an 8×8 grid in both directions."""
    return Obj("square", "red", size=0.5 / SQUARE_SIDE, depth=depth)


def test_a_square_labels_exactly_the_patches_it_covers():
    labels = patch_shape_labels(Scene((square_over_middle(0.0),)), grid=8).reshape(8, 8)
    expected = np.full((8, 8), BACKGROUND)
    expected[2:6, 2:6] = SQUARE
    np.testing.assert_array_equal(labels, expected)
    assert N_CLASSES == len(SHAPES) + 1


def test_the_nearest_object_owns_overlapping_patches():
    # A circle of radius 0.125 on the same centre covers ~78 % of each of the four central patches.
    circle = Obj("circle", "blue", size=0.25, depth=0.0)
    front = patch_shape_labels(Scene((square_over_middle(1.0), circle)), grid=8).reshape(8, 8)
    behind = patch_shape_labels(Scene((square_over_middle(0.0), Obj("circle", "blue", size=0.25, depth=1.0))),
                                grid=8).reshape(8, 8)
    assert (front[3:5, 3:5] == CIRCLE).all() and (front == CIRCLE).sum() == 4
    assert (front == SQUARE).sum() == 12
    assert (behind == SQUARE).sum() == 16 and (behind == CIRCLE).sum() == 0


def test_labels_follow_the_row_major_patch_order():
    # A square in the top-right quarter only: row-major order puts it in rows 0..3, columns 4..7.
    obj = Obj("square", "green", size=0.5 / SQUARE_SIDE, x=0.75, y=0.25)
    labels = patch_shape_labels(Scene((obj,)), grid=4)
    np.testing.assert_array_equal(labels, [0, 0, SQUARE, SQUARE, 0, 0, SQUARE, SQUARE] + [0] * 8)
