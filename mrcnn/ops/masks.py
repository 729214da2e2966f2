"""Instance-mask math: IoU, mini-masks, pasting ("unmolding") masks into full images (numpy and
TF twins); COCO RLE encoding is TF-free in :mod:`mrcnn.ops.rle`."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from skimage.transform import resize as _sk_resize


def _resize(array: np.ndarray, shape, order: int) -> np.ndarray:
    return _sk_resize(
        array, shape, order=order, mode="constant", cval=0, clip=True, preserve_range=True, anti_aliasing=False
    )


def compute_overlaps_masks(masks1: np.ndarray, masks2: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Pairwise IoU of bool masks [H, W, N] x [H, W, M] -> [N, M]; empty masks give 0.

    A matrix product of the flattened masks, restricted to pixels that both sets touch (small
    memory on large images); pixel counts are exact.
    """
    m1 = np.asarray(masks1, dtype=bool)
    m2 = np.asarray(masks2, dtype=bool)
    n, m = m1.shape[-1], m2.shape[-1]
    if n == 0 or m == 0:
        return np.zeros((n, m), dtype=dtype)
    f1 = m1.reshape(-1, n)
    f2 = m2.reshape(-1, m)
    area1 = f1.sum(axis=0, dtype=np.int64)
    area2 = f2.sum(axis=0, dtype=np.int64)
    rows = f1.any(axis=1) & f2.any(axis=1)
    # float32 products are exact for counts < 2**24 pixels; use float64 beyond that.
    work = np.float32 if rows.sum() < 2**24 else np.float64
    inter = np.rint(f1[rows].astype(work).T @ f2[rows].astype(work)).astype(np.float64)
    union = area1[:, None] + area2[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return iou.astype(dtype)


def compute_overlaps_masks_tf(masks1: tf.Tensor, masks2: tf.Tensor) -> tf.Tensor:
    """TF twin of :func:`compute_overlaps_masks`."""
    m1 = tf.reshape(tf.cast(masks1, tf.float32), [-1, tf.shape(masks1)[-1]])
    m2 = tf.reshape(tf.cast(masks2, tf.float32), [-1, tf.shape(masks2)[-1]])
    inter = tf.matmul(m1, m2, transpose_a=True)
    union = tf.reduce_sum(m1, 0)[:, None] + tf.reduce_sum(m2, 0)[None, :] - inter
    return tf.math.divide_no_nan(inter, union)


def minimize_mask(bboxes: np.ndarray, masks: np.ndarray, mini_shape) -> np.ndarray:
    """Crop each mask [H, W, N] to its box and resize to ``mini_shape`` -> bool [h, w, N]."""
    out = np.zeros(tuple(mini_shape) + (masks.shape[-1],), dtype=bool)
    for i in range(masks.shape[-1]):
        y1, x1, y2, x2 = np.asarray(bboxes[i][:4]).astype(int)
        crop = masks[y1:y2, x1:x2, i]
        if crop.size == 0:
            continue
        out[:, :, i] = _resize(crop.astype(np.float32), mini_shape, order=1) >= 0.5
    return out


def expand_mask(bboxes: np.ndarray, mini_masks: np.ndarray, image_shape) -> np.ndarray:
    """Inverse of :func:`minimize_mask`: paste mini-masks back into full-size bool masks."""
    out = np.zeros(tuple(image_shape[:2]) + (mini_masks.shape[-1],), dtype=bool)
    for i in range(mini_masks.shape[-1]):
        y1, x1, y2, x2 = np.asarray(bboxes[i][:4]).astype(int)
        if y2 <= y1 or x2 <= x1:
            continue
        out[y1:y2, x1:x2, i] = _resize(mini_masks[:, :, i].astype(np.float32), (y2 - y1, x2 - x1), order=1) >= 0.5
    return out


def _paste_taps(start: int, stop: int, size: int, full: int) -> tuple[np.ndarray, np.ndarray, slice]:
    """Bilinear taps that resample a ``size``-long signal onto pixels [start, stop) of a
    ``full``-long axis, for the rows of that box inside [0, full): (first tap's index into the
    signal padded by one zero at each end, second tap's weight, those rows).

    The sampling is scikit-image's ``resize(order=1, mode="constant", cval=0)`` (scipy's ``zoom``
    with ``grid_mode=True``): pixel i of the box reads the signal at (i + 0.5) * size / length - 0.5,
    and samples beyond the signal's ends read 0. numpy twin of :func:`_interp_matrix`.
    """
    rows = slice(max(start, 0), min(stop, full))
    pos = np.arange(rows.start, max(rows.stop, rows.start), dtype=np.float64)
    s = (pos - start + 0.5) * (size / (stop - start)) - 0.5  # > -0.5 and < size - 0.5
    first = np.floor(s)
    return first.astype(np.int64) + 1, s - first, rows


def paste_masks(masks: np.ndarray, boxes: np.ndarray, image_shape, threshold: float = 0.5) -> np.ndarray:
    """Paste soft masks [N, mh, mw] into their integer boxes [N, 4] (y1, x1, y2, x2, may cross the
    border) of a full image -> bool [H, W, N]: Matterport's ``unmold_mask`` for N masks.

    Each mask is resized to its box as scikit-image's ``resize(order=1, mode="constant", cval=0,
    clip=True)`` does (Matterport's ``utils.resize``), two taps per axis over the box's pixels
    inside the image, then binarised ``>= threshold``: equal to the scikit-image path
    (``tests/test_ops_masks.py``) and many times faster for the 100 masks of a ``detect()``. The
    result is a view of an [N, H, W] array, so each ``masks[..., i]`` is contiguous.
    """
    masks = np.asarray(masks, dtype=np.float32)
    height, width = int(image_shape[0]), int(image_shape[1])
    full = np.zeros((len(masks), height, width), dtype=bool)
    for i, (mask, box) in enumerate(zip(masks, np.asarray(boxes).reshape(-1, 4))):
        y1, x1, y2, x2 = (int(v) for v in box)
        if y2 <= y1 or x2 <= x1:
            continue
        ty, fy, ys = _paste_taps(y1, y2, mask.shape[0], height)
        tx, fx, xs = _paste_taps(x1, x2, mask.shape[1], width)
        if len(ty) == 0 or len(tx) == 0:
            continue
        padded = np.pad(mask.astype(np.float64), 1)  # cval = 0 beyond the mask's ends
        cols = padded[:, tx] * (1.0 - fx) + padded[:, tx + 1] * fx
        # scipy computes in float64 and returns the input's float32; clip=True then clips into the
        # mask's value range, which undoes the fade to cval at the box's edges.
        soft = (cols[ty] * (1.0 - fy)[:, None] + cols[ty + 1] * fy[:, None]).astype(np.float32)
        np.clip(soft, mask.min(), mask.max(), out=soft)
        full[i, ys, xs] = soft >= threshold
    return np.moveaxis(full, 0, -1)  # Matterport's [H, W, N]


def unmold_mask(mask: np.ndarray, bbox, image_shape, threshold: float = 0.5) -> np.ndarray:
    """Paste a soft mask of the head's output size into its box in a full image -> bool [H, W]."""
    return paste_masks(np.asarray(mask)[None], np.asarray(bbox)[None], image_shape, threshold)[..., 0]


def _interp_matrix(start, stop, size, full):
    """([full, size] bilinear weights, [full] 0/1 inside-the-box) that paste a ``size``-long signal onto pixels
    [start, stop) of a ``full``-long axis (zero rows elsewhere), as scikit-image's
    ``resize(order=1, mode="constant", cval=0)`` samples it."""
    length = tf.cast(stop - start, tf.float32)
    pos = tf.range(full)
    inside = tf.logical_and(pos >= start, pos < stop)
    s = (tf.cast(pos - start, tf.float32) + 0.5) * (float(size) / length) - 0.5
    i0 = tf.cast(tf.floor(s), tf.int32)
    frac = s - tf.cast(i0, tf.float32)
    # Outside the signal the value is cval = 0 (one_hot of an index < 0 or >= size is all zero).
    weights = tf.one_hot(i0, size) * (1.0 - frac)[:, None] + tf.one_hot(i0 + 1, size) * frac[:, None]
    inside = tf.cast(inside, tf.float32)
    return weights * inside[:, None], inside


def paste_masks_tf(masks, boxes, height, width, threshold=0.5):
    """TF twin of :func:`paste_masks`: soft masks [N, mh, mw] into their integer
    boxes [N, 4] -> uint8 [N, height, width].

    Two interpolation matrices per mask (``Ry @ mask @ Rx^T``) reproduce scikit-image's
    ``resize(order=1, mode="constant", cval=0, clip=True)`` exactly, so the result equals the
    numpy path up to float32-vs-float64 rounding at the threshold.
    """
    mh, mw = masks.shape[1], masks.shape[2]

    def one(args):
        mask, box = args
        ry, in_y = _interp_matrix(box[0], box[2], mh, height)
        rx, in_x = _interp_matrix(box[1], box[3], mw, width)
        soft = tf.matmul(tf.matmul(ry, mask), rx, transpose_b=True)
        # scikit-image's clip=True: back into the input's value range (undoes the edge fade
        # wherever the mask's minimum is above 0) -- inside the box only.
        soft = tf.clip_by_value(soft, tf.reduce_min(mask), tf.reduce_max(mask)) * (in_y[:, None] * in_x[None, :])
        return tf.cast(soft >= threshold, tf.uint8)

    # No detection: map_fn cannot stack an empty list of [None, None] masks.
    return tf.cond(
        tf.shape(masks)[0] > 0,
        lambda: tf.map_fn(
            one,
            (tf.cast(masks, tf.float32), tf.cast(boxes, tf.int32)),
            fn_output_signature=tf.TensorSpec([None, None], tf.uint8),
        ),
        lambda: tf.zeros([0, height, width], tf.uint8),
    )


def _interp_matrices(start, stop, size, full):
    """Batched :func:`_interp_matrix`: start/stop int32 [N] -> ([N, full, size] weights, [N, full] 0/1)."""
    length = tf.cast(stop - start, tf.float32)[:, None]
    pos = tf.range(full)[None, :]
    inside = tf.cast(tf.logical_and(pos >= start[:, None], pos < stop[:, None]), tf.float32)
    s = (tf.cast(pos - start[:, None], tf.float32) + 0.5) * (float(size) / tf.maximum(length, 1.0)) - 0.5
    i0 = tf.cast(tf.floor(s), tf.int32)
    frac = tf.expand_dims(s - tf.cast(i0, tf.float32), -1)  # expand_dims: TFLite's slice has no new axis
    weights = tf.one_hot(i0, size) * (1.0 - frac) + tf.one_hot(i0 + 1, size) * frac
    return weights * tf.expand_dims(inside, -1), inside


def paste_masks_batched_tf(masks, boxes, height, width, threshold=0.5):
    """:func:`paste_masks_tf` without a loop (for ONNX/TFLite export; same values, tested): all
    masks at once as batched ``Ry @ mask @ Rx^T``. Holds N x height x width float32 at once."""
    masks = tf.cast(masks, tf.float32)
    boxes = tf.cast(boxes, tf.int32)
    mh, mw = masks.shape[1], masks.shape[2]
    ry, in_y = _interp_matrices(boxes[:, 0], boxes[:, 2], mh, height)
    rx, in_x = _interp_matrices(boxes[:, 1], boxes[:, 3], mw, width)
    soft = tf.matmul(tf.matmul(ry, masks), rx, transpose_b=True)  # [N, H, W]
    lo = tf.reduce_min(masks, axis=[1, 2])[:, None, None]
    hi = tf.reduce_max(masks, axis=[1, 2])[:, None, None]
    soft = tf.minimum(tf.maximum(soft, lo), hi) * (tf.expand_dims(in_y, 2) * tf.expand_dims(in_x, 1))
    return tf.cast(soft >= threshold, tf.uint8)
