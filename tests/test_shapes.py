"""VIA shapes -> masks, against hand-computed pixel sets."""

import math

import numpy as np
import pytest

from mrcnn.data.shapes import RegionError, SkipRegion, region_bbox, region_to_mask, validate_region


def _extent(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(mask)
    return rows.min(), cols.min(), rows.max(), cols.max()


def test_rect_covers_width_times_height() -> None:
    mask = region_to_mask({"name": "rect", "x": 2, "y": 3, "width": 4, "height": 5}, 20, 20)
    assert mask.dtype == bool and mask.shape == (20, 20)
    assert mask.sum() == 20
    assert _extent(mask) == (3, 2, 7, 5)


def test_polygon_square_includes_vertices() -> None:
    attrs = {"name": "polygon", "all_points_x": [2, 6, 6, 2], "all_points_y": [2, 2, 6, 6]}
    mask = region_to_mask(attrs, 20, 20)
    assert mask.sum() == 25  # 5 x 5 lattice points incl. boundary
    assert _extent(mask) == (2, 2, 6, 6)


def test_polygon_triangle() -> None:
    attrs = {"name": "polygon", "all_points_x": [0, 10, 0], "all_points_y": [0, 0, 10]}
    mask = region_to_mask(attrs, 20, 20)
    assert mask.sum() == 11 * 12 // 2  # lattice points with x, y >= 0, x + y <= 10
    assert mask[0, 10] and mask[10, 0] and not mask[6, 6]


def test_polyline_is_closed_like_polygon() -> None:
    xs, ys = [2, 6, 6, 2], [2, 2, 6, 6]
    poly = region_to_mask({"name": "polygon", "all_points_x": xs, "all_points_y": ys}, 10, 10)
    line = region_to_mask({"name": "polyline", "all_points_x": xs, "all_points_y": ys}, 10, 10)
    np.testing.assert_array_equal(poly, line)


def test_circle() -> None:
    mask = region_to_mask({"name": "circle", "cx": 10, "cy": 10, "r": 3}, 20, 20)
    rows, cols = np.mgrid[:20, :20]
    expected = (rows - 10) ** 2 + (cols - 10) ** 2 < 9
    np.testing.assert_array_equal(mask, expected)
    assert mask.sum() == 25


def test_ellipse_axis_aligned() -> None:
    mask = region_to_mask({"name": "ellipse", "cx": 10, "cy": 10, "rx": 6, "ry": 2}, 20, 20)
    assert _extent(mask) == (9, 5, 11, 15)
    assert mask.sum() == 33  # 11 per row for dy in -1, 0, 1


def test_ellipse_theta_rotates_x_towards_y() -> None:
    base = {"name": "ellipse", "cx": 10, "cy": 10, "rx": 6, "ry": 2}
    vertical = region_to_mask({**base, "theta": math.pi / 2}, 20, 20)
    assert _extent(vertical) == (5, 9, 15, 11)
    diagonal = region_to_mask({**base, "theta": math.pi / 4}, 20, 20)
    assert diagonal[13, 13] and diagonal[7, 7]  # down-right / up-left
    assert not diagonal[7, 13] and not diagonal[13, 7]


def test_shapes_partly_outside_are_clipped() -> None:
    rect = region_to_mask({"name": "rect", "x": -5, "y": 8, "width": 10, "height": 10}, 10, 10)
    assert rect.sum() == 5 * 2
    poly = region_to_mask(
        {"name": "polygon", "all_points_x": [-10, 30, 30, -10], "all_points_y": [-10, -10, 30, 30]}, 10, 10
    )
    assert poly.all()
    circle = region_to_mask({"name": "circle", "cx": 0, "cy": 0, "r": 3}, 10, 10)
    assert circle.sum() == 9  # the quarter: 0 <= dx, dy <= 2 (2*2 + 2*2 = 8 < 9)


def test_shape_entirely_outside_gives_empty_mask() -> None:
    attrs = {"name": "polygon", "all_points_x": [50, 60, 60], "all_points_y": [50, 50, 60]}
    assert not region_to_mask(attrs, 10, 10).any()
    rect = {"name": "rect", "x": -20, "y": -20, "width": 5, "height": 5}
    assert not region_to_mask(rect, 10, 10).any()


def test_float_coordinates() -> None:
    attrs = {"name": "polygon", "all_points_x": [1.5, 5.5, 5.5, 1.5], "all_points_y": [1.5, 1.5, 4.5, 4.5]}
    assert region_to_mask(attrs, 10, 10).sum() == 4 * 3


def test_point_raises_skip() -> None:
    with pytest.raises(SkipRegion, match="a.jpg"):
        region_to_mask({"name": "point", "cx": 1, "cy": 2}, 10, 10, where="a.jpg")
    with pytest.raises(SkipRegion):
        validate_region({"name": "point", "cx": 1, "cy": 2})


@pytest.mark.parametrize(
    "attrs,message",
    [
        ({"name": "polygon", "all_points_x": [1, 2], "all_points_y": [1, 2]}, "at least 3"),
        ({"name": "polygon", "all_points_x": [0, 1, 2], "all_points_y": [0, 1, 2]}, "zero area"),
        ({"name": "polygon", "all_points_x": [0, 1, 2], "all_points_y": [0, 1]}, "3 x but 2 y"),
        ({"name": "polygon", "all_points_y": [0, 1, 2]}, "all_points_x"),
        ({"name": "polygon", "all_points_x": [0, "a", 2], "all_points_y": [0, 1, 5]}, "non-numeric"),
        ({"name": "rect", "x": 0, "y": 0, "width": 0, "height": 5}, "zero area"),
        ({"name": "rect", "x": 0, "y": 0, "height": 5}, "'width'"),
        ({"name": "rect", "x": "1", "y": 0, "width": 2, "height": 5}, "non-numeric 'x'"),
        ({"name": "circle", "cx": 3, "cy": 3, "r": 0}, "zero area"),
        ({"name": "ellipse", "cx": 3, "cy": 3, "rx": 2}, "'ry'"),
        ({"name": "star", "cx": 3}, "unknown region shape 'star'"),
        ({}, "empty shape_attributes"),
    ],
)
def test_invalid_regions_name_location(attrs: dict, message: str) -> None:
    where = "f.json, image 'a.jpg', region 3"
    with pytest.raises(RegionError, match=message) as info:
        region_to_mask(attrs, 10, 10, where=where)
    assert where in str(info.value)
    assert isinstance(info.value, ValueError)


def test_region_bbox() -> None:
    assert region_bbox({"name": "rect", "x": 1, "y": 2, "width": 3, "height": 4}) == (2, 1, 6, 4)
    assert region_bbox({"name": "polygon", "all_points_x": [1, 5, 3], "all_points_y": [7, 8, 2]}) == (2, 1, 8, 5)
    assert region_bbox({"name": "circle", "cx": 5, "cy": 6, "r": 2}) == (4, 3, 8, 7)
    assert region_bbox({"name": "point", "cx": 5, "cy": 6}) == (6, 5, 6, 5)
    y1, x1, y2, x2 = region_bbox({"name": "ellipse", "cx": 10, "cy": 10, "rx": 6, "ry": 2, "theta": math.pi / 2})
    assert (y1, x1, y2, x2) == pytest.approx((4, 8, 16, 12))
    with pytest.raises(RegionError):
        region_bbox({"name": "rect", "x": 1})
