import numpy as np

from srum.utils.pixels import (
    border_color,
    box_filter3,
    dilate3,
    dilate_labels3,
    erode3,
    hue_degrees,
    label_components,
    open_labels3,
)


def test_label_components_u_shape_is_one_component_and_diagonals_do_not_connect():
    groups = np.array([
        [0, -1, 0, -1],
        [0, -1, 0, -1],
        [0, 0, 0, -1],
        [-1, -1, -1, 1],  # touches the U only diagonally: a separate component (4-connectivity)
    ])
    labels, n = label_components(groups)
    assert n == 2
    assert labels.dtype == np.int32
    expected = np.array([
        [0, -1, 0, -1],
        [0, -1, 0, -1],
        [0, 0, 0, -1],
        [-1, -1, -1, 1],
    ])
    np.testing.assert_array_equal(labels, expected)  # ids in raster order of each component's first pixel


def test_label_components_splits_equal_values_that_do_not_touch_and_different_values_that_do():
    groups = np.array([[0, 0, 1, -1, 0]])
    labels, n = label_components(groups)
    assert n == 3
    np.testing.assert_array_equal(labels, [[0, 0, 1, -1, 2]])


def test_erode_3x3_square_leaves_its_centre():
    mask = np.zeros((5, 5), dtype=bool)
    mask[1:4, 1:4] = True
    expected = np.zeros((5, 5), dtype=bool)
    expected[2, 2] = True
    np.testing.assert_array_equal(erode3(mask), expected)
    np.testing.assert_array_equal(erode3(mask, pad="edge"), expected)  # away from the border both agree
    np.testing.assert_array_equal(dilate3(erode3(mask)), mask)  # the opening of a 3×3 square is itself


def test_erode_padding_decides_what_the_border_does():
    full = np.ones((4, 4), dtype=bool)
    inner = np.zeros((4, 4), dtype=bool)
    inner[1:3, 1:3] = True
    np.testing.assert_array_equal(erode3(full), inner)  # outside counts as False
    np.testing.assert_array_equal(erode3(full, pad="edge"), full)  # outside repeats the border


def test_dilate_single_pixel_in_a_corner():
    mask = np.zeros((3, 3), dtype=bool)
    mask[0, 0] = True
    expected = np.zeros((3, 3), dtype=bool)
    expected[:2, :2] = True
    np.testing.assert_array_equal(dilate3(mask), expected)


def test_box_filter_spreads_a_single_bright_pixel_over_its_3x3():
    x = np.zeros((5, 5, 3), dtype=np.float32)
    x[2, 2] = [0.9, 0.0, 0.45]
    y = box_filter3(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    expected = np.zeros((5, 5), dtype=np.float32)
    expected[1:4, 1:4] = 1 / 9
    np.testing.assert_allclose(y[..., 0], 0.9 * expected, rtol=1e-6)
    np.testing.assert_allclose(y[..., 2], 0.45 * expected, rtol=1e-6)
    assert y[..., 1].max() == 0


def test_box_filter_edge_padding_keeps_a_flat_image_flat():
    x = np.full((4, 6, 3), 0.3, dtype=np.float32)
    np.testing.assert_allclose(box_filter3(x), x, rtol=1e-6)


def test_hue_of_primaries_and_grey():
    rgb = np.array([[[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0.5, 0.5, 0.5], [1, 0, 1e-7]]], dtype=np.float32)
    hue = hue_degrees(rgb)
    np.testing.assert_allclose(hue[0, :5], [0, 120, 240, 60, 0], atol=1e-4)
    assert hue[0, 5] == 0  # just below 360°, which float32 rounds to 360: folded back to 0


def test_border_color_is_the_median_of_the_frame():
    rgb = np.full((8, 8, 3), 0.5, dtype=np.float32)
    rgb[3:5, 3:5] = 1.0  # an object in the middle does not count
    rgb[0, 0] = 0.0  # one odd frame pixel does not move the median
    np.testing.assert_array_equal(border_color(rgb), [0.5, 0.5, 0.5])


def test_open_labels_removes_thin_seams_and_keeps_labels_apart():
    labels = np.full((7, 9), -1)
    labels[1:6, 1:4] = 0
    labels[1:6, 5:8] = 1
    labels[3, 4] = 2  # a 1 px seam between the two blocks
    opened = open_labels3(labels)
    expected = labels.copy()
    expected[3, 4] = -1
    np.testing.assert_array_equal(opened, expected)


def test_open_labels_border_padding():
    labels = np.zeros((4, 4), dtype=np.int32)
    assert (open_labels3(labels, pad="edge") == 0).all()  # no full 3×3 needed beyond the border
    assert (open_labels3(labels, pad="constant") == 0).all()  # the inner 2×2 cores dilate back over the frame
    labels[:, 0] = 1  # a 1 px column on the border: removed either way
    assert (open_labels3(labels, pad="edge")[:, 0] == -1).all()
    assert (open_labels3(labels, pad="constant")[:, 0] == -1).all()


def test_dilate_labels_stays_inside_each_label():
    labels = np.array([[0, 0, 1, 1]])
    seeds = np.array([[-1, 0, -1, -1]])
    np.testing.assert_array_equal(dilate_labels3(seeds, labels), [[0, 0, -1, -1]])
