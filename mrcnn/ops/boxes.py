"""Box math in (y1, x1, y2, x2) order: IoU, delta encode/decode, clipping, normalisation.

Each function has a numpy version (reference, used by the data pipeline and evaluation) and, where
the graph needs it, a TensorFlow twin with the ``_tf`` suffix. The twins are tested against each other.
The TF encode/decode use ``keras.utils.bounding_boxes`` (center_yxhw encoding with variances).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from keras.utils import bounding_boxes as kbb


# ---------------------------------------------------------------------------------------------- IoU
def compute_overlaps(boxes1: np.ndarray, boxes2: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Pairwise IoU, [N, 4] x [M, 4] -> [N, M] in ``dtype``. Degenerate boxes give 0."""
    boxes1 = np.asarray(boxes1, dtype=np.float64).reshape(-1, 4)
    boxes2 = np.asarray(boxes2, dtype=np.float64).reshape(-1, 4)
    area1 = np.clip(boxes1[:, 2] - boxes1[:, 0], 0, None) * np.clip(boxes1[:, 3] - boxes1[:, 1], 0, None)
    area2 = np.clip(boxes2[:, 2] - boxes2[:, 0], 0, None) * np.clip(boxes2[:, 3] - boxes2[:, 1], 0, None)
    y1 = np.maximum(boxes1[:, None, 0], boxes2[None, :, 0])
    x1 = np.maximum(boxes1[:, None, 1], boxes2[None, :, 1])
    y2 = np.minimum(boxes1[:, None, 2], boxes2[None, :, 2])
    x2 = np.minimum(boxes1[:, None, 3], boxes2[None, :, 3])
    inter = np.clip(y2 - y1, 0, None) * np.clip(x2 - x1, 0, None)
    union = area1[:, None] + area2[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return iou.astype(dtype)


def compute_overlaps_tf(boxes1: tf.Tensor, boxes2: tf.Tensor) -> tf.Tensor:
    """TF twin of :func:`compute_overlaps`: [..., N, 4] x [..., M, 4] -> [..., N, M] (leading batch dims allowed)."""
    b1 = tf.cast(boxes1, tf.float32)[..., :, None, :]
    b2 = tf.cast(boxes2, tf.float32)[..., None, :, :]
    inter_h = tf.maximum(tf.minimum(b1[..., 2], b2[..., 2]) - tf.maximum(b1[..., 0], b2[..., 0]), 0.0)
    inter_w = tf.maximum(tf.minimum(b1[..., 3], b2[..., 3]) - tf.maximum(b1[..., 1], b2[..., 1]), 0.0)
    inter = inter_h * inter_w
    area1 = (b1[..., 2] - b1[..., 0]) * (b1[..., 3] - b1[..., 1])
    area2 = (b2[..., 2] - b2[..., 0]) * (b2[..., 3] - b2[..., 1])
    union = area1 + area2 - inter
    return tf.math.divide_no_nan(inter, union)


# ------------------------------------------------------------------------------------ box deltas
def box_refinement(boxes: np.ndarray, gt_boxes: np.ndarray) -> np.ndarray:
    """Deltas (dy, dx, log dh, log dw) that turn ``boxes`` into ``gt_boxes`` (row by row)."""
    boxes = np.asarray(boxes, dtype=np.float32)
    gt_boxes = np.asarray(gt_boxes, dtype=np.float32)
    h = boxes[:, 2] - boxes[:, 0]
    w = boxes[:, 3] - boxes[:, 1]
    cy = boxes[:, 0] + 0.5 * h
    cx = boxes[:, 1] + 0.5 * w
    gh = gt_boxes[:, 2] - gt_boxes[:, 0]
    gw = gt_boxes[:, 3] - gt_boxes[:, 1]
    gcy = gt_boxes[:, 0] + 0.5 * gh
    gcx = gt_boxes[:, 1] + 0.5 * gw
    return np.stack([(gcy - cy) / h, (gcx - cx) / w, np.log(gh / h), np.log(gw / w)], axis=1)


def box_refinement_tf(boxes: tf.Tensor, gt_boxes: tf.Tensor) -> tf.Tensor:
    """TF twin of :func:`box_refinement` (unit variance)."""
    return kbb.encode_box_to_deltas(
        anchors=tf.cast(boxes, tf.float32),
        boxes=tf.cast(gt_boxes, tf.float32),
        anchor_format="yxyx",
        box_format="yxyx",
        encoding_format="center_yxhw",
        variance=[1.0, 1.0, 1.0, 1.0],
    )


#: Largest log-scale a delta may apply (torchvision's and Detectron2's ``log(1000 / 16)``): an
#: untrained or diverging head's dh/dw would otherwise overflow exp() into inf/NaN boxes.
MAX_DELTA_LOG_SCALE = float(np.log(1000.0 / 16))


def apply_box_deltas(boxes: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """Inverse of :func:`box_refinement`: move/scale ``boxes`` by ``deltas`` (dh, dw capped at
    :data:`MAX_DELTA_LOG_SCALE`)."""
    boxes = np.asarray(boxes, dtype=np.float32)
    deltas = np.asarray(deltas, dtype=np.float32).copy()
    deltas[:, 2:] = np.minimum(deltas[:, 2:], MAX_DELTA_LOG_SCALE)
    h = boxes[:, 2] - boxes[:, 0]
    w = boxes[:, 3] - boxes[:, 1]
    cy = boxes[:, 0] + 0.5 * h + deltas[:, 0] * h
    cx = boxes[:, 1] + 0.5 * w + deltas[:, 1] * w
    h = h * np.exp(deltas[:, 2])
    w = w * np.exp(deltas[:, 3])
    return np.stack([cy - 0.5 * h, cx - 0.5 * w, cy + 0.5 * h, cx + 0.5 * w], axis=1)


def apply_box_deltas_tf(boxes: tf.Tensor, deltas: tf.Tensor) -> tf.Tensor:
    """TF twin of :func:`apply_box_deltas` ([..., 4] boxes and deltas)."""
    deltas = tf.cast(deltas, tf.float32)
    deltas = tf.concat([deltas[..., :2], tf.minimum(deltas[..., 2:], MAX_DELTA_LOG_SCALE)], axis=-1)
    return kbb.decode_deltas_to_boxes(
        anchors=tf.cast(boxes, tf.float32),
        boxes_delta=deltas,
        anchor_format="yxyx",
        box_format="yxyx",
        encoded_format="center_yxhw",
        variance=[1.0, 1.0, 1.0, 1.0],
    )


# ------------------------------------------------------------------------ clipping / normalising
def clip_boxes(boxes: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Clip boxes [N, 4] to a window (y1, x1, y2, x2)."""
    wy1, wx1, wy2, wx2 = np.asarray(window, dtype=np.float32)
    boxes = np.asarray(boxes, dtype=np.float32)
    return np.stack(
        [
            np.clip(boxes[:, 0], wy1, wy2),
            np.clip(boxes[:, 1], wx1, wx2),
            np.clip(boxes[:, 2], wy1, wy2),
            np.clip(boxes[:, 3], wx1, wx2),
        ],
        axis=1,
    )


def clip_boxes_tf(boxes: tf.Tensor, window: tf.Tensor) -> tf.Tensor:
    """TF twin of :func:`clip_boxes`; ``boxes`` may have leading batch dims."""
    wy1, wx1, wy2, wx2 = tf.unstack(tf.cast(window, tf.float32))
    y1, x1, y2, x2 = tf.unstack(tf.cast(boxes, tf.float32), axis=-1)
    return tf.stack(
        [
            tf.clip_by_value(y1, wy1, wy2),
            tf.clip_by_value(x1, wx1, wx2),
            tf.clip_by_value(y2, wy1, wy2),
            tf.clip_by_value(x2, wx1, wx2),
        ],
        axis=-1,
    )


def norm_boxes(boxes: np.ndarray, shape) -> np.ndarray:
    """Pixel boxes -> normalised coordinates (Matterport convention: (y2, x2) are exclusive)."""
    h, w = shape[:2]
    scale = np.array([h - 1, w - 1, h - 1, w - 1], dtype=np.float32)
    shift = np.array([0, 0, 1, 1], dtype=np.float32)
    return ((np.asarray(boxes, dtype=np.float32) - shift) / scale).astype(np.float32)


def denorm_boxes(boxes: np.ndarray, shape) -> np.ndarray:
    """Normalised boxes -> integer pixel boxes; inverse of :func:`norm_boxes`."""
    h, w = shape[:2]
    scale = np.array([h - 1, w - 1, h - 1, w - 1], dtype=np.float32)
    shift = np.array([0, 0, 1, 1], dtype=np.float32)
    return np.around(np.asarray(boxes, dtype=np.float32) * scale + shift).astype(np.int32)


def norm_boxes_tf(boxes: tf.Tensor, shape: tf.Tensor) -> tf.Tensor:
    """TF twin of :func:`norm_boxes`; ``shape`` is (height, width)."""
    h, w = tf.unstack(tf.cast(shape[:2], tf.float32))
    scale = tf.stack([h, w, h, w]) - 1.0
    shift = tf.constant([0.0, 0.0, 1.0, 1.0])
    return tf.divide(tf.cast(boxes, tf.float32) - shift, scale)


def denorm_boxes_tf(boxes: tf.Tensor, shape: tf.Tensor) -> tf.Tensor:
    """TF twin of :func:`denorm_boxes`."""
    h, w = tf.unstack(tf.cast(shape[:2], tf.float32))
    scale = tf.stack([h, w, h, w]) - 1.0
    shift = tf.constant([0.0, 0.0, 1.0, 1.0])
    return tf.cast(tf.round(tf.cast(boxes, tf.float32) * scale + shift), tf.int32)


def unmold_boxes(boxes: np.ndarray, window, image_shape, original_shape) -> np.ndarray:
    """Normalised boxes [N, 4] on the network input (``image_shape``, the image inside ``window``,
    pixels) -> integer pixel boxes [N, 4] on the original image (``original_shape``)."""
    wy1, wx1, wy2, wx2 = norm_boxes(np.array([window]), image_shape[:2])[0]
    shift = np.array([wy1, wx1, wy1, wx1])
    scale = np.array([wy2 - wy1, wx2 - wx1, wy2 - wy1, wx2 - wx1])
    return denorm_boxes((np.asarray(boxes) - shift) / scale, original_shape[:2])


def unmold_boxes_tf(
    boxes: tf.Tensor, window: tf.Tensor, image_shape: tf.Tensor, original_shape: tf.Tensor
) -> tf.Tensor:
    """TF twin of :func:`unmold_boxes`."""
    wy1, wx1, wy2, wx2 = tf.unstack(norm_boxes_tf(window, image_shape))
    shift = tf.stack([wy1, wx1, wy1, wx1])
    scale = tf.stack([wy2 - wy1, wx2 - wx1, wy2 - wy1, wx2 - wx1])
    return denorm_boxes_tf((tf.cast(boxes, tf.float32) - shift) / scale, original_shape)


def extract_bboxes(masks: np.ndarray) -> np.ndarray:
    """Tight pixel boxes [N, 4] (y2, x2 exclusive) of bool masks [H, W, N]; empty masks give zeros."""
    masks = np.asarray(masks, dtype=bool)
    n = masks.shape[-1]
    boxes = np.zeros((n, 4), dtype=np.int32)
    if n == 0:
        return boxes
    rows = masks.any(axis=1)  # [H, N]
    cols = masks.any(axis=0)  # [W, N]
    has = rows.any(axis=0)
    y1 = rows.argmax(axis=0)
    y2 = masks.shape[0] - rows[::-1].argmax(axis=0)
    x1 = cols.argmax(axis=0)
    x2 = masks.shape[1] - cols[::-1].argmax(axis=0)
    boxes[:] = np.stack([y1, x1, y2, x2], axis=1)
    boxes[~has] = 0
    return boxes
