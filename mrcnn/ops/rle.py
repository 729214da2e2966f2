"""COCO run-length encoding of masks, without TensorFlow (so an ONNX deployment's inference needs none)."""

from __future__ import annotations

import numpy as np


def encode_rle(masks: np.ndarray):
    """COCO RLE of bool masks with ``counts`` as str (JSON-ready): [H, W] -> dict, [H, W, N] -> list of N dicts."""
    from pycocotools import mask as mask_utils

    masks = np.asarray(masks)
    if masks.ndim == 3 and masks.shape[2] == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(masks.astype(np.uint8)))
    for rle in [rles] if isinstance(rles, dict) else rles:
        if isinstance(rle["counts"], bytes):
            rle["counts"] = rle["counts"].decode("ascii")
    return rles
