"""Pure-TensorFlow twins of the numpy molding/unmolding, so a SavedModel serves raw images.

* :func:`mold_image_tf` mirrors ``mrcnn.ops.images.resize_image`` ("square" mode),
  ``mold_image`` and ``compose_image_meta`` (one uint8 [H, W, 3] image -> network inputs);
* :func:`unmold_detections_tf` mirrors ``MaskRCNN.unmold_detections`` and
  ``mrcnn.ops.masks.unmold_mask`` (padded detections -> boxes in original pixels, class ids,
  scores and full-size masks).

Matching the numpy path:

* image resize: ``tf.image.resize`` bilinear (half-pixel centres, edges clamped) is the same
  sampling as ``cv2.resize(INTER_LINEAR)``; OpenCV computes uint8 in 11-bit fixed point, so the
  resized pixels may differ by 1 (we round to the nearest integer as OpenCV does);
* mask paste: done with two interpolation matrices per detection (``Ry @ mask @ Rx^T``) that
  reproduce scikit-image's ``resize(order=1, mode="constant", cval=0, clip=True)`` exactly
  (edge half-pixels blend towards 0, then the result is clipped to the mask's range) -- so the pasted
  masks equal the numpy path's up to float32-vs-float64 rounding at the 0.5 threshold.
"""
from __future__ import annotations

import tensorflow as tf


def compute_scale_tf(h, w, min_dim, max_dim, min_scale=0.0):
    """``mrcnn.ops.images.compute_scale`` in "square" mode, in float64 like Python."""
    h = tf.cast(h, tf.float64)
    w = tf.cast(w, tf.float64)
    scale = tf.constant(1.0, tf.float64)
    if min_dim:
        scale = tf.maximum(scale, float(min_dim) / tf.minimum(h, w))
    if min_scale:
        scale = tf.maximum(scale, float(min_scale))
    if max_dim:
        long_side = tf.maximum(h, w)
        scale = tf.where(tf.round(long_side * scale) > float(max_dim), float(max_dim) / long_side, scale)
    return scale


def mold_image_tf(image, *, min_dim, max_dim, min_scale, mean_pixel, num_classes):
    """uint8 [H, W, 3] -> (molded float32 [1, S, S, 3], meta float32 [1, 12 + C], window int32 [4])
    with S = ``max_dim`` (Matterport's "square" resize mode)."""
    shape = tf.shape(image)
    h, w = shape[0], shape[1]
    scale = compute_scale_tf(h, w, min_dim, max_dim, min_scale)
    h2 = tf.cast(tf.round(tf.cast(h, tf.float64) * scale), tf.int32)
    w2 = tf.cast(tf.round(tf.cast(w, tf.float64) * scale), tf.int32)
    img = tf.cast(image, tf.float32)
    resized = tf.cond(
        tf.logical_and(tf.equal(h2, h), tf.equal(w2, w)),
        lambda: img,
        # OpenCV rounds its fixed-point uint8 result to the nearest integer.
        lambda: tf.clip_by_value(tf.round(tf.image.resize(img, tf.stack([h2, w2]), method="bilinear")),
                                 0.0, 255.0))
    top = (max_dim - h2) // 2
    left = (max_dim - w2) // 2
    padded = tf.pad(resized, [[top, max_dim - h2 - top], [left, max_dim - w2 - left], [0, 0]])
    padded = tf.ensure_shape(padded, [max_dim, max_dim, 3])
    molded = padded - tf.constant(mean_pixel, tf.float32)
    window = tf.stack([top, left, top + h2, left + w2])
    meta = tf.concat([
        tf.zeros([1], tf.float32),  # image id
        tf.cast(tf.stack([h, w, 3]), tf.float32),
        tf.constant([max_dim, max_dim, 3], tf.float32),
        tf.cast(window, tf.float32),
        tf.reshape(tf.cast(scale, tf.float32), [1]),
        tf.zeros([num_classes], tf.float32),
    ], axis=0)
    return molded[None], meta[None], window


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
    """Soft masks [N, mh, mw] into their integer boxes [N, 4] -> uint8 [N, height, width]."""
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

    return tf.map_fn(one, (tf.cast(masks, tf.float32), tf.cast(boxes, tf.int32)),
                     fn_output_signature=tf.TensorSpec([None, None], tf.uint8))


def unmold_detections_tf(detections, mrcnn_mask, original_hw, molded_hw, window, threshold=0.5):
    """One image: detections [D, 6] (normalised boxes, class, score), masks [D, mh, mw, C],
    ``original_hw`` / ``molded_hw`` int32 [2], window int32 [4] ->
    dict boxes int32 [N, 4] (y1, x1, y2, x2; y2/x2 exclusive), class_ids int32 [N],
    scores float32 [N], masks uint8 [N, H, W]."""
    class_col = detections[:, 4]
    is_pad = tf.equal(class_col, 0.0)
    d = tf.shape(detections)[0]
    n = tf.where(tf.reduce_any(is_pad), tf.cast(tf.argmax(tf.cast(is_pad, tf.int32)), tf.int32), d)
    boxes = detections[:n, :4]
    class_ids = tf.cast(class_col[:n], tf.int32)
    scores = detections[:n, 5]
    soft = tf.gather(tf.transpose(mrcnn_mask[:n], [0, 3, 1, 2]), class_ids, batch_dims=1)  # [n, mh, mw]

    shift01 = tf.constant([0.0, 0.0, 1.0, 1.0])
    mh_f = tf.cast(molded_hw, tf.float32) - 1.0
    win = (tf.cast(window, tf.float32) - shift01) / tf.stack([mh_f[0], mh_f[1], mh_f[0], mh_f[1]])
    shift = tf.stack([win[0], win[1], win[0], win[1]])
    scale = tf.stack([win[2] - win[0], win[3] - win[1], win[2] - win[0], win[3] - win[1]])
    oh_f = tf.cast(original_hw, tf.float32) - 1.0
    pix = tf.cast(tf.round((boxes - shift) / scale * tf.stack([oh_f[0], oh_f[1], oh_f[0], oh_f[1]]) + shift01),
                  tf.int32)
    keep = tf.where(tf.logical_and(pix[:, 2] > pix[:, 0], pix[:, 3] > pix[:, 1]))[:, 0]
    pix = tf.gather(pix, keep)
    masks = paste_masks_tf(tf.gather(soft, keep), pix, original_hw[0], original_hw[1], threshold)
    return {"boxes": pix, "class_ids": tf.gather(class_ids, keep), "scores": tf.gather(scores, keep),
            "masks": masks}
