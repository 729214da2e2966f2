"""Greedy non-maximum suppression with a fixed-size output, numpy and TF twins.

:func:`nms_padded_tf` is built from plain ops (top-k, a pairwise IoU matrix, a while loop of
matrix-vector products), so it converts to TFLite builtins and ONNX and has static output shapes;
it keeps exactly the boxes ``tf.image.non_max_suppression`` keeps, in the same order (score
descending, ties by lower index), with the same IoU rules: a box with zero (or negative) area
overlaps nothing, and a box is suppressed when its IoU with a kept, higher-scored box is
``> iou_threshold``. ``tests/test_export_ops.py`` checks both against that op.

Shapes: B images, K candidate boxes, M = ``max_output_size``. Boxes are (y1, x1, y2, x2) in any
corner order (canonicalised as TF's op does).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def _iou_np(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box [4] with boxes [K, 4], TF's NMS rules (zero area -> 0)."""

    def canon(b):
        return (
            np.minimum(b[..., 0], b[..., 2]),
            np.minimum(b[..., 1], b[..., 3]),
            np.maximum(b[..., 0], b[..., 2]),
            np.maximum(b[..., 1], b[..., 3]),
        )

    ay1, ax1, ay2, ax2 = canon(box)
    by1, bx1, by2, bx2 = canon(boxes)
    area_a = (ay2 - ay1) * (ax2 - ax1)
    area_b = (by2 - by1) * (bx2 - bx1)
    inter = np.maximum(np.minimum(ay2, by2) - np.maximum(ay1, by1), 0) * np.maximum(
        np.minimum(ax2, bx2) - np.maximum(ax1, bx1), 0
    )
    union = area_a + area_b - inter
    ok = (area_a > 0) & (area_b > 0) & (union > 0)
    return np.where(ok, inter / np.where(ok, union, 1.0), 0.0)


def nms(
    boxes: np.ndarray, scores: np.ndarray, max_output_size: int, iou_threshold: float, valid: np.ndarray | None = None
) -> np.ndarray:
    """numpy twin of :func:`nms_padded_tf` for one image: boxes [K, 4], scores [K], valid [K] bool
    (None: all) -> kept indices [<= M] int32, best first (plain greedy NMS)."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.asarray(scores, np.float32).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    if valid is not None:
        order = order[np.asarray(valid, bool)[order]]
    kept: list[int] = []
    for i in order:
        if len(kept) >= max_output_size:
            break
        if not kept or not np.any(_iou_np(boxes[i], boxes[kept]) > iou_threshold):
            kept.append(int(i))
    return np.asarray(kept, np.int32)


def pairwise_iou_tf(boxes: tf.Tensor) -> tf.Tensor:
    """IoU matrix of boxes [B, K, 4] -> [B, K, K], TF's NMS rules (zero area -> 0)."""
    y1, x1, y2, x2 = tf.unstack(tf.cast(boxes, tf.float32), axis=-1)
    y1, y2 = tf.minimum(y1, y2), tf.maximum(y1, y2)
    x1, x2 = tf.minimum(x1, x2), tf.maximum(x1, x2)
    area = (y2 - y1) * (x2 - x1)  # [B, K]
    ih = tf.maximum(tf.minimum(y2[:, :, None], y2[:, None, :]) - tf.maximum(y1[:, :, None], y1[:, None, :]), 0.0)
    iw = tf.maximum(tf.minimum(x2[:, :, None], x2[:, None, :]) - tf.maximum(x1[:, :, None], x1[:, None, :]), 0.0)
    inter = ih * iw
    union = area[:, :, None] + area[:, None, :] - inter
    ok = (area[:, :, None] > 0) & (area[:, None, :] > 0) & (union > 0)
    # Where not ok the IoU is 0: a zero-area box neither suppresses nor is suppressed (as TF's op),
    # and no 0/0 reaches the comparison.
    return tf.where(ok, inter / tf.maximum(union, 1e-30), 0.0)


def nms_padded_tf(boxes, scores, max_output_size: int, iou_threshold: float, valid=None):
    """Batched greedy NMS with a fixed-size output.

    boxes [B, K, 4], scores [B, K], valid [B, K] bool (None: all; invalid boxes are neither kept
    nor suppress others) -> (indices [B, M] int32 into K, best first; ok [B, M] bool, False on
    the padding slots, whose index is 0).

    The greedy rule "keep i unless a kept box before it overlaps it" is solved as a fixed point:
    keep <- valid & no kept earlier box with IoU > threshold, repeated until nothing changes
    (at most K rounds; in practice as many as the longest chain of suppressions, a few). The
    greedy result is the only fixed point, so this equals the sequential loop.
    """
    boxes = tf.cast(boxes, tf.float32)
    scores = tf.cast(scores, tf.float32)
    k = tf.shape(scores)[1]
    if valid is None:
        valid = tf.ones_like(scores, tf.bool)
    # Sort best first; invalid boxes go last (their score does not matter).
    ranked = tf.where(valid, scores, tf.fill(tf.shape(scores), -np.inf))
    _, order = tf.math.top_k(ranked, k=k, sorted=True)
    boxes_s = tf.gather(boxes, order, batch_dims=1)
    valid_s = tf.gather(valid, order, batch_dims=1)
    rank = tf.range(k)
    earlier = rank[:, None] < rank[None, :]  # [K, K]: row j comes before column i
    suppresses = tf.cast((pairwise_iou_tf(boxes_s) > iou_threshold) & earlier[None], tf.float32)
    valid_f = tf.cast(valid_s, tf.float32)

    def body(keep, _):
        hits = tf.squeeze(tf.matmul(tf.expand_dims(keep, 1), suppresses), 1)  # kept earlier boxes overlapping each box
        new = valid_f * tf.cast(hits < 0.5, tf.float32)
        return new, tf.reduce_any(tf.not_equal(new, keep))

    keep, _ = tf.while_loop(lambda keep, changed: changed, body, (valid_f, tf.constant(True)), maximum_iterations=k)
    # The first M kept positions, in rank order: top-k of (K - rank) over the kept ones.
    m = tf.minimum(max_output_size, k)
    key = keep * tf.cast(k - rank, tf.float32)[None]
    top, pos = tf.math.top_k(key, k=m, sorted=True)
    ok = top > 0
    indices = tf.where(ok, tf.gather(order, pos, batch_dims=1), 0)
    pad = max_output_size - m
    indices = tf.pad(indices, [[0, 0], [0, pad]])
    ok = tf.pad(ok, [[0, 0], [0, pad]])
    # reshape, not ensure_shape: TFLite has no EnsureShape builtin.
    return tf.reshape(indices, [-1, max_output_size]), tf.reshape(ok, [-1, max_output_size])
