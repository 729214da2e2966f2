"""The five Mask R-CNN losses as pure functions (batched tensors in, scalar out).

Each returns 0 (not NaN) when it has nothing to average over, e.g. an image without objects.
"""
from __future__ import annotations

import tensorflow as tf


def smooth_l1(y_true, y_pred):
    diff = tf.abs(y_true - y_pred)
    return tf.where(diff < 1.0, 0.5 * diff ** 2, diff - 0.5)


def _mean(values):
    return tf.math.divide_no_nan(tf.reduce_sum(values), tf.cast(tf.size(values), values.dtype))


def rpn_class_loss(rpn_match, rpn_class_logits):
    """rpn_match [B, A, 1] (1 pos, -1 neg, 0 ignore), logits [B, A, 2]: CE over non-neutral anchors."""
    match = tf.squeeze(rpn_match, -1)
    idx = tf.where(tf.not_equal(match, 0))
    labels = tf.cast(tf.equal(tf.gather_nd(match, idx), 1), tf.int32)
    logits = tf.cast(tf.gather_nd(rpn_class_logits, idx), tf.float32)
    return _mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))


def rpn_bbox_loss(target_bbox, rpn_match, rpn_bbox):
    """target_bbox [B, T, 4] (positives first, in anchor order), rpn_match [B, A, 1], rpn_bbox [B, A, 4]."""
    match = tf.squeeze(rpn_match, -1)
    idx = tf.where(tf.equal(match, 1))
    pred = tf.cast(tf.gather_nd(rpn_bbox, idx), tf.float32)
    counts = tf.reduce_sum(tf.cast(tf.equal(match, 1), tf.int32), axis=1)
    # Positives of image b are the first counts[b] rows of target_bbox[b].
    mask = tf.sequence_mask(counts, tf.shape(target_bbox)[1])
    target = tf.boolean_mask(target_bbox, mask)
    return _mean(smooth_l1(target, pred))


def mrcnn_class_loss(target_class_ids, pred_class_logits, active_class_ids, rois):
    """CE over sampled ROIs; padding ROIs (all-zero boxes) and classes not active in the image's
    source are ignored (Matterport's multi-dataset rule)."""
    target = tf.cast(target_class_ids, tf.int32)
    logits = tf.cast(pred_class_logits, tf.float32)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target, logits=logits)
    pred_ids = tf.argmax(logits, axis=2, output_type=tf.int32)
    active = tf.gather(tf.cast(active_class_ids, tf.float32), pred_ids, batch_dims=1)
    real = tf.cast(tf.reduce_any(tf.not_equal(rois, 0.0), axis=-1), tf.float32)
    weight = active * real
    return tf.math.divide_no_nan(tf.reduce_sum(loss * weight), tf.reduce_sum(weight))


def mrcnn_bbox_loss(target_bbox, target_class_ids, pred_bbox):
    """Smooth-L1 on the deltas of the true class, positive ROIs only. pred_bbox [B, N, C, 4]."""
    target_class_ids = tf.reshape(tf.cast(target_class_ids, tf.int32), [-1])
    target_bbox = tf.reshape(tf.cast(target_bbox, tf.float32), [-1, 4])
    pred_bbox = tf.reshape(tf.cast(pred_bbox, tf.float32), [-1, tf.shape(pred_bbox)[2], 4])
    pos = tf.where(target_class_ids > 0)[:, 0]
    idx = tf.stack([pos, tf.cast(tf.gather(target_class_ids, pos), tf.int64)], axis=1)
    return _mean(smooth_l1(tf.gather(target_bbox, pos), tf.gather_nd(pred_bbox, idx)))


def _positive_masks(target_masks, target_class_ids, pred_masks):
    """(true, predicted) masks [P, h, w] of the positive ROIs, predicted for their true class."""
    target_class_ids = tf.reshape(tf.cast(target_class_ids, tf.int32), [-1])
    shape = tf.shape(target_masks)
    target_masks = tf.reshape(tf.cast(target_masks, tf.float32), [-1, shape[2], shape[3]])
    ps = tf.shape(pred_masks)
    pred = tf.transpose(tf.reshape(tf.cast(pred_masks, tf.float32), [-1, ps[2], ps[3], ps[4]]), [0, 3, 1, 2])
    pos = tf.where(target_class_ids > 0)[:, 0]
    idx = tf.stack([pos, tf.cast(tf.gather(target_class_ids, pos), tf.int64)], axis=1)
    return tf.gather(target_masks, pos), tf.gather_nd(pred, idx)


def mrcnn_mask_loss(target_masks, target_class_ids, pred_masks):
    """Per-pixel binary CE on the true class's mask, positive ROIs only.
    target_masks [B, N, h, w], pred_masks [B, N, h, w, C] (sigmoid probabilities)."""
    y_true, y_pred = _positive_masks(target_masks, target_class_ids, pred_masks)
    y_pred = tf.clip_by_value(y_pred, 1e-7, 1 - 1e-7)
    return _mean(-(y_true * tf.math.log(y_pred) + (1 - y_true) * tf.math.log(1 - y_pred)))


def mask_accuracy(target_masks, target_class_ids, pred_masks):
    """Pixel accuracy of positive-ROI masks at 0.5 (a diagnostic, as Detectron2 logs)."""
    y_true, y_pred = _positive_masks(target_masks, target_class_ids, pred_masks)
    return _mean(tf.cast(tf.equal(y_true > 0.5, y_pred > 0.5), tf.float32))
