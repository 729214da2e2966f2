"""Pure-TensorFlow twins of the numpy molding/unmolding, so a SavedModel serves raw images.

* :func:`mold_image_tf` mirrors ``mrcnn.ops.images.resize_image`` ("square" mode),
  ``mold_image`` and ``compose_image_meta`` (one uint8 [H, W, 3] image -> network inputs);
* :func:`unmold_detections_tf` mirrors ``MaskRCNN.unmold_detections`` and
  ``mrcnn.ops.masks.unmold_mask`` (padded detections -> boxes in original pixels, class ids,
  scores and full-size masks).

The geometry itself lives beside its numpy original: resize/pad and image meta in
:mod:`mrcnn.ops.images`, box unmolding in :mod:`mrcnn.ops.boxes`, mask pasting in
:mod:`mrcnn.ops.masks`, class-mask selection in :mod:`mrcnn.model.mask_head`.
"""

from __future__ import annotations

import tensorflow as tf

from mrcnn.model.mask_head import select_class_masks_tf
from mrcnn.ops.boxes import unmold_boxes_tf
from mrcnn.ops.images import compose_image_meta_tf, resize_image_tf
from mrcnn.ops.masks import paste_masks_batched_tf, paste_masks_tf


def mold_image_tf(image, *, min_dim, max_dim, min_scale, mean_pixel, num_classes, dtype=tf.float64):
    """uint8 [H, W, 3] -> (molded float32 [1, S, S, 3], meta float32 [1, 12 + C], window int32 [4])
    with S = ``max_dim`` (Matterport's "square" resize mode). ``dtype``: of the scale arithmetic
    (float32 for TFLite, see :func:`mrcnn.ops.images.compute_scale_tf`)."""
    padded, window, scale = resize_image_tf(image, min_dim, max_dim, min_scale, dtype)
    molded = padded - tf.constant(mean_pixel, tf.float32)
    meta = compose_image_meta_tf(
        0, tf.concat([tf.shape(image)[:2], [3]], 0), [max_dim, max_dim, 3], window, scale, tf.zeros([num_classes])
    )
    return molded[None], meta[None], window


def unmold_detections_tf(detections, mrcnn_mask, original_hw, molded_hw, window, threshold=0.5, batched_paste=False):
    """One image: detections [D, 6] (normalised boxes, class, score), masks [D, mh, mw, C],
    ``original_hw`` / ``molded_hw`` int32 [2], window int32 [4] ->
    dict boxes int32 [N, 4] (y1, x1, y2, x2; y2/x2 exclusive), class_ids int32 [N],
    scores float32 [N], masks uint8 [N, H, W]. ``batched_paste``: paste all masks in one batched
    matmul (no map_fn, for ONNX/TFLite; more memory), same masks."""
    class_col = detections[:, 4]
    is_pad = tf.equal(class_col, 0.0)
    d = tf.shape(detections)[0]
    n = tf.where(tf.reduce_any(is_pad), tf.cast(tf.argmax(tf.cast(is_pad, tf.int32)), tf.int32), d)
    boxes = detections[:n, :4]
    class_ids = tf.cast(class_col[:n], tf.int32)
    scores = detections[:n, 5]
    soft = select_class_masks_tf(mrcnn_mask[:n], class_ids)  # [n, mh, mw]
    pix = unmold_boxes_tf(boxes, window, molded_hw, original_hw)
    keep = tf.where(tf.logical_and(pix[:, 2] > pix[:, 0], pix[:, 3] > pix[:, 1]))[:, 0]
    pix = tf.gather(pix, keep)
    paste = paste_masks_batched_tf if batched_paste else paste_masks_tf
    masks = paste(tf.gather(soft, keep), pix, original_hw[0], original_hw[1], threshold)
    return {"boxes": pix, "class_ids": tf.gather(class_ids, keep), "scores": tf.gather(scores, keep), "masks": masks}
