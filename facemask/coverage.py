"""Face-mask coverage of one image's detections: how much of the image, and of the faces, the masks cover
(``summary.csv``'s ``mask_area_pct`` / ``masked_face_pct`` and the app's answer)."""

from __future__ import annotations

import numpy as np


def mask_coverage(result: dict, class_names: list[str], shape) -> tuple[float | None, float]:
    """(masked_face_pct, mask_area_pct) of one image's detections.

    mask_area_pct: pixels covered by any detected mask / image pixels * 100.
    masked_face_pct (only when a class is named "face"): the share of the face region covered
    by the other classes' masks, where the face region is the face masks plus the other masks'
    pixels inside face boxes (so it works whether face masks include the covered part or not);
    None without a face class or without a detected face.
    """
    h, w = shape[:2]
    masks = result["masks"]
    ids = np.asarray(result["class_ids"]).reshape(-1)
    if masks.shape[-1] == 0:
        area_pct = 0.0
    else:
        area_pct = float(masks.any(axis=-1).sum()) / float(h * w) * 100.0
    face_ids = [i for i, n in enumerate(class_names) if i > 0 and str(n).lower() == "face"]
    if not face_ids:
        return None, area_pct
    is_face = np.isin(ids, face_ids)
    if not is_face.any():
        return None, area_pct
    face = masks[..., is_face].any(axis=-1)
    covered = masks[..., ~is_face].any(axis=-1) if (~is_face).any() else np.zeros((h, w), bool)
    in_boxes = np.zeros((h, w), bool)
    for y1, x1, y2, x2 in np.asarray(result["rois"])[is_face].astype(int):
        in_boxes[max(0, y1) : y2, max(0, x1) : x2] = True
    region = face | (covered & in_boxes)
    face_pct = float((covered & region).sum()) / float(region.sum()) * 100.0 if region.any() else None
    return face_pct, area_pct
