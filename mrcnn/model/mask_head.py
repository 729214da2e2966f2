"""Mask head as one unit: its layers, its loss and accuracy (targets: :mod:`mrcnn.model.roi_targets`), and choosing
each detection's class mask at inference (pasting into the image is :func:`mrcnn.ops.masks.paste_masks`
and its TF twin :func:`mrcnn.ops.masks.paste_masks_tf`).

Shapes: B images, N ROIs per image, P positive ROIs, C classes, (mh, mw) = MASK_SHAPE
(twice MASK_POOL_SIZE). Boxes are normalised (y1, x1, y2, x2).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from .backbone import BN_MOMENTUM, BatchNorm
from .losses import mean_or_zero
from .roi_align import PerROI, PyramidROIAlign, UnpackROIs


# ---------------------------------------------------------------------------------------- layers
def mask_head(
    rois, image, feature_maps, *, pool_size, num_classes, train_bn, channels=256, keep=None, sampler="crop_and_resize"
):
    """rois [B, N, 4] -> per-class mask probabilities [B, N, 2*pool, 2*pool, C]
    (Matterport names ``mrcnn_mask_conv1..4``, ``mrcnn_mask_bn1..4``, ``mrcnn_mask_deconv``, ``mrcnn_mask``).

    ``keep`` [B, N] (bool, at least one true): run the head on those ROIs only and give the others
    all-zero masks. Training passes the positive ROIs (:class:`PositiveROIs`), the only ones the
    loss reads, and inference the real detections, so the head's cost follows them instead of the
    padded slots (as torchvision's). Its BatchNorm batch statistics (``TRAIN_BN`` None in training,
    True always) then come from real ROIs only.
    """
    if keep is None:
        x = PyramidROIAlign((pool_size, pool_size), sampler=sampler, name="roi_align_mask")(
            [rois, image] + list(feature_maps)
        )
    else:
        x = PyramidROIAlign((pool_size, pool_size), packed=True, sampler=sampler, name="roi_align_mask")(
            [rois, keep, image] + list(feature_maps)
        )
    for i in range(1, 5):
        x = PerROI(layers.Conv2D(channels, 3, padding="same"), name=f"mrcnn_mask_conv{i}")(x)
        x = PerROI(BatchNorm(train_bn=train_bn, epsilon=1e-3, momentum=BN_MOMENTUM), name=f"mrcnn_mask_bn{i}")(x)
        x = layers.Activation("relu")(x)
    x = PerROI(layers.Conv2DTranspose(channels, 2, strides=2, activation="relu"), name="mrcnn_mask_deconv")(x)
    masks = PerROI(layers.Conv2D(num_classes, 1, activation="sigmoid", dtype="float32"), name="mrcnn_mask")(x)
    return masks if keep is None else UnpackROIs(name="mrcnn_mask_unpack", dtype="float32")([masks, keep])


class PositiveROIs(layers.Layer):
    """class ids [B, N] (ROI targets in training, detections at inference; 0 = background or
    padding) -> keep [B, N]: the ids > 0, or the first slot when there are none (so the head never
    runs on an empty batch, whose BatchNorm mean is NaN)."""

    def call(self, class_ids):
        positive = class_ids > 0
        first = tf.scatter_nd([[0, 0]], [True], tf.shape(positive, out_type=tf.int32))
        return tf.logical_or(positive, tf.logical_and(first, tf.logical_not(tf.reduce_any(positive))))

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, class_ids):
        return keras.KerasTensor(class_ids.shape, dtype="bool")


# ---------------------------------------------------------------------------------------- losses
def _positive_masks(target_masks, target_class_ids, pred_masks):
    """(true, predicted) masks [P, mh, mw] of the positive ROIs, predicted for their true class."""
    target_class_ids = tf.reshape(tf.cast(target_class_ids, tf.int32), [-1])
    shape = tf.shape(target_masks)
    target_masks = tf.reshape(tf.cast(target_masks, tf.float32), [-1, shape[2], shape[3]])
    ps = tf.shape(pred_masks)
    pred = tf.reshape(tf.cast(pred_masks, tf.float32), [-1, ps[2], ps[3], ps[4]])
    pos = tf.where(target_class_ids > 0)[:, 0]
    return tf.gather(target_masks, pos), select_class_masks_tf(tf.gather(pred, pos), tf.gather(target_class_ids, pos))


def mrcnn_mask_loss(target_masks, target_class_ids, pred_masks):
    """target_masks [B, N, mh, mw], target_class_ids [B, N], pred_masks [B, N, mh, mw, C]
    (sigmoid probabilities) -> scalar: per-pixel binary CE on the true class's mask, positive ROIs only."""
    y_true, y_pred = _positive_masks(target_masks, target_class_ids, pred_masks)
    y_pred = tf.clip_by_value(y_pred, 1e-7, 1 - 1e-7)
    return mean_or_zero(-(y_true * tf.math.log(y_pred) + (1 - y_true) * tf.math.log(1 - y_pred)))


def mask_accuracy(target_masks, target_class_ids, pred_masks):
    """Same inputs as :func:`mrcnn_mask_loss` -> scalar: pixel accuracy of the positive ROIs'
    masks at 0.5 (a diagnostic, as Detectron2 logs)."""
    y_true, y_pred = _positive_masks(target_masks, target_class_ids, pred_masks)
    return mean_or_zero(tf.cast(tf.equal(y_true > 0.5, y_pred > 0.5), tf.float32))


def mask_losses(target_masks, target_class_ids, pred_masks) -> dict:
    """The mask head's loss by its Keras name (``mrcnn_mask_loss``)."""
    return {"mrcnn_mask_loss": mrcnn_mask_loss(target_masks, target_class_ids, pred_masks)}


# ------------------------------------------------------------------------------------- inference
def select_class_masks(masks: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
    """Each ROI's mask for its class: masks [N, mh, mw, C], class_ids [N] -> [N, mh, mw]."""
    return masks[np.arange(len(class_ids)), :, :, np.asarray(class_ids, dtype=np.int64)]


def select_class_masks_tf(masks, class_ids):
    """TF twin of :func:`select_class_masks`."""
    return tf.gather(tf.transpose(masks, [0, 3, 1, 2]), tf.cast(class_ids, tf.int32), batch_dims=1)
