"""Write instance masks as a VIA 2.0.x project file, to correct predictions in the VGG Image Annotator.

Each instance becomes one polygon region (the outline of its largest connected part, simplified with
Douglas-Peucker to ``tolerance`` pixels), its class under ``class_key`` and its score under
``score_key`` as region attributes. The file opens with VIA 2.0.x's *Project > Load*; after
correcting, *Project > Save* (or *Annotation > Export as JSON*) gives a file that
:func:`mrcnn.data.via.read_via` and :class:`mrcnn.data.ViaDataset` read like any other.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence

import cv2
import numpy as np

VIA_VERSION = "2.0.10"


def mask_to_polygon(mask: np.ndarray, tolerance: float = 1.0) -> np.ndarray | None:
    """[H, W] bool -> the outline of its largest connected part as [N, 2] (x, y) points, N >= 3,
    through the centres of its boundary pixels, simplified to ``tolerance`` pixels (Douglas-Peucker).
    A part too thin for an outline (a dot, a line) gets the hull of its pixels' corners. None for
    an empty mask."""
    m = np.ascontiguousarray(mask, dtype=np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    if n <= 1:
        return None
    part = (labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
    contours, _ = cv2.findContours(part, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(contours, key=len)
    points = (cv2.approxPolyDP(contour, tolerance, True) if tolerance > 0 else contour).reshape(-1, 2)
    if len(points) >= 3 and cv2.contourArea(points) > 0:
        return points.astype(float)
    ys, xs = np.nonzero(part)
    corners = np.concatenate([np.stack([xs + dx, ys + dy], axis=1) for dx in (-0.5, 0.5) for dy in (-0.5, 0.5)])
    return cv2.convexHull(corners.astype(np.float32)).reshape(-1, 2).astype(float)


def _number(v: float):
    v = round(float(v), 1)
    return int(v) if v.is_integer() else v


def polygon_region(points: np.ndarray, attributes: dict) -> dict:
    """One VIA 2 region: a polygon with its region attributes (values as strings)."""
    return {
        "shape_attributes": {
            "name": "polygon",
            "all_points_x": [_number(x) for x in points[:, 0]],
            "all_points_y": [_number(y) for y in points[:, 1]],
        },
        "region_attributes": {k: str(v) for k, v in attributes.items()},
    }


def image_entry(filename: str, size: int, regions: Sequence[dict]) -> tuple[str, dict]:
    """(VIA key, entry) of one image; VIA keys images by file name + byte size."""
    return f"{filename}{size}", {
        "filename": filename,
        "size": int(size),
        "regions": list(regions),
        "file_attributes": {},
    }


def via_project(
    entries: Iterable[tuple[str, dict]],
    *,
    class_key: str,
    class_names: Sequence[str],
    score_key: str = "score",
    name: str = "predictions",
    image_folder: str = "",
) -> dict:
    """A VIA 2.0.x project: the images' regions plus the attribute definitions (the class as a
    dropdown of ``class_names``, the score as text), so VIA shows and edits them."""
    metadata = dict(entries)
    return {
        "_via_settings": {
            "ui": {
                "annotation_editor_height": 25,
                "annotation_editor_fontsize": 0.8,
                "leftsidebar_width": 18,
                "image_grid": {
                    "img_height": 80,
                    "rshape_fill": "none",
                    "rshape_fill_opacity": 0.3,
                    "rshape_stroke": "yellow",
                    "rshape_stroke_width": 2,
                    "show_region_shape": True,
                    "show_image_policy": "all",
                },
                "image": {
                    "region_label": class_key,
                    "region_color": class_key,
                    "region_label_font": "10px Sans",
                    "on_image_annotation_editor_placement": "NEAR_REGION",
                },
            },
            "core": {"buffer_size": 18, "filepath": {}, "default_filepath": image_folder},
            "project": {"name": name},
        },
        "_via_img_metadata": metadata,
        "_via_attributes": {
            "region": {
                class_key: {
                    "type": "dropdown",
                    "description": "class",
                    "options": {str(n): "" for n in class_names},
                    "default_options": {},
                },
                score_key: {"type": "text", "description": "detection score (model output)", "default_value": ""},
            },
            "file": {},
        },
        "_via_data_format_version": VIA_VERSION,
        "_via_image_id_list": list(metadata),
    }


def write_via_project(path: str, project: dict) -> None:
    """Write a project (from :func:`via_project`) as JSON, atomically."""
    from mrcnn.runs import write_text

    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    write_text(path, json.dumps(project))
