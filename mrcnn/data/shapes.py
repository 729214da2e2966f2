"""Rasterise VIA region shapes into boolean masks.

Coordinates are VIA's: x = column, y = row, in pixels of the image as
displayed. Shapes partly outside the image are clipped; a shape entirely
outside gives an empty mask (the caller decides what to do with it).

Pixel conventions:

* polygon / polyline: ``skimage.draw.polygon`` (polylines are closed).
* rect: rows ``round(y) .. round(y + height) - 1`` and the same for columns,
  so a rect of integer size w x h covers exactly w*h pixels.
* circle / ellipse: ``skimage.draw.ellipse``; VIA's ``theta`` (radians,
  clockwise on screen, i.e. rotating +x towards +y) is honoured.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from skimage import draw

__all__ = [
    "RegionError",
    "SkipRegion",
    "SHAPES",
    "region_to_mask",
    "region_pixels",
    "pixel_count",
    "region_bbox",
    "validate_region",
]

SHAPES = ("polygon", "polyline", "rect", "circle", "ellipse", "point")


class RegionError(ValueError):
    """A region's shape cannot be turned into a mask."""


class SkipRegion(Exception):
    """A valid region that has no area (a point); the caller should warn."""


def _prefix(where: str) -> str:
    return f"{where}: " if where else ""


def _number(attrs: dict, key: str, where: str) -> float:
    name = attrs.get("name")
    if key not in attrs:
        raise RegionError(f"{_prefix(where)}{name} region has no '{key}' (shape_attributes: {attrs})")
    value = attrs[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RegionError(f"{_prefix(where)}{name} region has non-numeric '{key}': {value!r}")
    return float(value)


def _points(attrs: dict, where: str) -> tuple[np.ndarray, np.ndarray]:
    name = attrs.get("name")
    coords = []
    for key in ("all_points_x", "all_points_y"):
        values = attrs.get(key)
        if not isinstance(values, (list, tuple)):
            raise RegionError(f"{_prefix(where)}{name} region has no list '{key}' (got {values!r})")
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in values):
            raise RegionError(f"{_prefix(where)}{name} region has non-numeric values in '{key}'")
        coords.append(np.asarray(values, dtype=np.float64))
    xs, ys = coords
    if len(xs) != len(ys):
        raise RegionError(f"{_prefix(where)}{name} region has {len(xs)} x but {len(ys)} y coordinates")
    if len(xs) < 3:
        raise RegionError(f"{_prefix(where)}{name} region has {len(xs)} point(s); a polygon needs at least 3")
    area = 0.5 * abs(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1)))
    if area == 0:
        raise RegionError(f"{_prefix(where)}{name} region has zero area (all points on one line)")
    return xs, ys


def _shape_name(attrs: Any, where: str) -> str:
    if not isinstance(attrs, dict) or not attrs:
        raise RegionError(f"{_prefix(where)}region has empty shape_attributes")
    name = attrs.get("name")
    if name not in SHAPES:
        raise RegionError(f"{_prefix(where)}unknown region shape {name!r}; expected one of {', '.join(SHAPES)}")
    return name


def _positive(value: float, label: str, name: str, where: str) -> float:
    if value <= 0:
        raise RegionError(f"{_prefix(where)}{name} region has zero area ({label} = {value:g})")
    return value


def validate_region(shape_attributes: dict, *, where: str = "") -> str:
    """Check a region without rasterising; return its shape name.

    Raises RegionError for bad regions and SkipRegion for points.
    """
    region_bbox(shape_attributes, where=where)
    if shape_attributes["name"] == "point":
        raise SkipRegion(f"{_prefix(where)}point region has no area")
    return shape_attributes["name"]


def region_bbox(shape_attributes: dict, *, where: str = "") -> tuple[float, float, float, float]:
    """Return the (y1, x1, y2, x2) extent of a region in image coordinates.

    Points give a zero-size box; invalid regions raise RegionError.
    """
    attrs = shape_attributes
    name = _shape_name(attrs, where)
    num = lambda key: _number(attrs, key, where)  # noqa: E731
    if name in ("polygon", "polyline"):
        xs, ys = _points(attrs, where)
        return float(ys.min()), float(xs.min()), float(ys.max()), float(xs.max())
    if name == "rect":
        x, y = num("x"), num("y")
        w = _positive(num("width"), "width", name, where)
        h = _positive(num("height"), "height", name, where)
        return y, x, y + h, x + w
    if name == "circle":
        cx, cy = num("cx"), num("cy")
        r = _positive(num("r"), "r", name, where)
        return cy - r, cx - r, cy + r, cx + r
    if name == "ellipse":
        cx, cy = num("cx"), num("cy")
        rx = _positive(num("rx"), "rx", name, where)
        ry = _positive(num("ry"), "ry", name, where)
        theta = num("theta") if "theta" in attrs else 0.0
        half_w = math.hypot(rx * math.cos(theta), ry * math.sin(theta))
        half_h = math.hypot(rx * math.sin(theta), ry * math.cos(theta))
        return cy - half_h, cx - half_w, cy + half_h, cx + half_w
    cx, cy = num("cx"), num("cy")  # point
    return cy, cx, cy, cx


def region_pixels(shape_attributes: dict, height: int, width: int, *, where: str = "") -> tuple:
    """The pixels of one VIA region inside a (height, width) image, as an index for
    ``mask[index] = True``: (rows, cols) arrays, or a pair of slices for a rect.

    Raises SkipRegion for points and RegionError for invalid regions.
    """
    attrs = shape_attributes
    shape = (height, width)
    if _shape_name(attrs, where) in ("polygon", "polyline"):
        xs, ys = _points(attrs, where)  # validates the points (checked once: they can be thousands)
        return draw.polygon(ys, xs, shape=shape)
    name = validate_region(attrs, where=where)
    if name == "rect":
        y1, x1 = round(attrs["y"]), round(attrs["x"])
        y2, x2 = round(attrs["y"] + attrs["height"]), round(attrs["x"] + attrs["width"])
        return slice(max(y1, 0), max(y2, 0)), slice(max(x1, 0), max(x2, 0))
    if name == "circle":
        r = float(attrs["r"])
        return draw.ellipse(attrs["cy"], attrs["cx"], r, r, shape=shape)
    theta = float(attrs.get("theta", 0.0))  # ellipse
    # skimage rotates counter-clockwise in (row, col); VIA clockwise.
    return draw.ellipse(attrs["cy"], attrs["cx"], attrs["ry"], attrs["rx"], shape=shape, rotation=-theta)


def pixel_count(index: tuple, height: int, width: int) -> int:
    """How many pixels a :func:`region_pixels` index covers."""
    rows, cols = index
    if isinstance(rows, slice):
        return len(range(*rows.indices(height))) * len(range(*cols.indices(width)))
    return len(rows)


def region_to_mask(shape_attributes: dict, height: int, width: int, *, where: str = "") -> np.ndarray:
    """Rasterise one VIA region to a bool (height, width) mask.

    Raises SkipRegion for points and RegionError for invalid regions.
    """
    mask = np.zeros((height, width), dtype=bool)
    mask[region_pixels(shape_attributes, height, width, where=where)] = True
    return mask
