"""Box/class head as one unit: its layers, its two losses, and the inference post-processing (refine,
drop background, per-class NMS). Its training targets come from :mod:`mrcnn.model.roi_targets`.

Shapes: B images, P proposals, R = TRAIN_ROIS_PER_IMAGE sampled ROIs, N ROIs, G GT boxes,
C classes, D = DETECTION_MAX_INSTANCES. Boxes are normalised (y1, x1, y2, x2).
"""

from __future__ import annotations

import math

import tensorflow as tf
from keras import layers, ops

from mrcnn.ops.boxes import apply_box_deltas_tf, clip_boxes_tf, norm_boxes_tf
from mrcnn.ops.images import parse_image_meta_tf
from mrcnn.ops.nms import nms_padded_tf

from .backbone import BN_MOMENTUM, BatchNorm
from .losses import mean_or_zero, smooth_l1
from .precision import Float32Layer
from .roi_align import PerROI, PyramidROIAlign


# ---------------------------------------------------------------------------------------- layers
def classifier_head(rois, image, feature_maps, *, pool_size, num_classes, fc_size, train_bn, sampler="crop_and_resize"):
    """rois [B, N, 4] -> (class logits [B, N, C], probs [B, N, C], deltas [B, N, C, 4]).

    Two "fully connected" layers implemented as a pool-size conv and a 1x1 conv, as Matterport
    (names ``mrcnn_class_conv1/2``, ``mrcnn_class_bn1/2``, ``mrcnn_class_logits``, ``mrcnn_bbox_fc``).
    """
    x = PyramidROIAlign((pool_size, pool_size), sampler=sampler, name="roi_align_classifier")(
        [rois, image] + list(feature_maps)
    )
    x = PerROI(WholeInputConv2D(fc_size, pool_size), name="mrcnn_class_conv1")(x)
    x = PerROI(BatchNorm(train_bn=train_bn, epsilon=1e-3, momentum=BN_MOMENTUM), name="mrcnn_class_bn1")(x)
    x = layers.Activation("relu")(x)
    x = PerROI(WholeInputConv2D(fc_size, 1), name="mrcnn_class_conv2")(x)
    x = PerROI(BatchNorm(train_bn=train_bn, epsilon=1e-3, momentum=BN_MOMENTUM), name="mrcnn_class_bn2")(x)
    x = layers.Activation("relu")(x)
    shared = layers.Reshape((-1, fc_size), name="pool_squeeze")(x)
    logits = PerROI(layers.Dense(num_classes), name="mrcnn_class_logits")(shared)
    probs = layers.Activation("softmax", name="mrcnn_class", dtype="float32")(logits)
    deltas = PerROI(layers.Dense(num_classes * 4, activation="linear"), name="mrcnn_bbox_fc")(shared)
    deltas = layers.Reshape((-1, num_classes, 4), name="mrcnn_bbox")(deltas)
    return logits, probs, deltas


class WholeInputConv2D(layers.Conv2D):
    """A "valid" conv whose kernel covers its whole input ([N, k, k, Cin] -> [N, 1, 1, Cout]),
    computed as the fully connected layer it is: one matmul on the flattened input.

    Same kernel variable and layout as ``Conv2D`` (Matterport's weights load unchanged), so the
    same result up to float summation order. On CPU oneDNN's direct conv for this shape made the
    box head 527 ms of a train step, the matmul 277 ms (bench/RESULTS.md, train-step profiles).
    """

    def __init__(self, filters, kernel_size, **kwargs):
        kwargs.pop("padding", None)
        super().__init__(filters, kernel_size, padding="valid", **kwargs)

    def call(self, inputs):
        if tuple(inputs.shape[1:3]) != tuple(self.kernel_size):
            raise ValueError(
                f"{self.name}: input {tuple(inputs.shape[1:3])} must equal the kernel {tuple(self.kernel_size)}"
            )
        flat = ops.reshape(inputs, (-1, math.prod(self.kernel.shape[:3])))
        out = ops.matmul(flat, ops.reshape(self.kernel, (-1, self.filters)))
        if self.use_bias:
            out = out + self.bias
        return self.activation(ops.reshape(out, (-1, 1, 1, self.filters)))


# ---------------------------------------------------------------------------------------- losses
def mrcnn_class_loss(target_class_ids, pred_class_logits, active_class_ids, rois):
    """target_class_ids [B, N], logits [B, N, C], active_class_ids [B, C], rois [B, N, 4] -> scalar:
    mean CE over the sampled ROIs; padding ROIs (all-zero boxes) and predictions of classes not
    active in the image's source are ignored (Matterport's multi-dataset rule)."""
    target = tf.cast(target_class_ids, tf.int32)
    logits = tf.cast(pred_class_logits, tf.float32)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target, logits=logits)
    pred_ids = tf.argmax(logits, axis=2, output_type=tf.int32)
    active = tf.gather(tf.cast(active_class_ids, tf.float32), pred_ids, batch_dims=1)
    real = tf.cast(tf.reduce_any(tf.not_equal(rois, 0.0), axis=-1), tf.float32)
    weight = active * real
    return tf.math.divide_no_nan(tf.reduce_sum(loss * weight), tf.reduce_sum(weight))


def mrcnn_bbox_loss(target_bbox, target_class_ids, pred_bbox):
    """target_bbox [B, N, 4], target_class_ids [B, N], pred_bbox [B, N, C, 4] -> scalar:
    smooth-L1 on the deltas of the true class, positive ROIs only."""
    target_class_ids = tf.reshape(tf.cast(target_class_ids, tf.int32), [-1])
    target_bbox = tf.reshape(tf.cast(target_bbox, tf.float32), [-1, 4])
    pred_bbox = tf.reshape(tf.cast(pred_bbox, tf.float32), [-1, tf.shape(pred_bbox)[2], 4])
    pos = tf.where(target_class_ids > 0)[:, 0]
    idx = tf.stack([pos, tf.cast(tf.gather(target_class_ids, pos), tf.int64)], axis=1)
    return mean_or_zero(smooth_l1(tf.gather(target_bbox, pos), tf.gather_nd(pred_bbox, idx)))


def box_losses(target_class_ids, target_bbox, class_logits, pred_bbox, active_class_ids, rois) -> dict:
    """The box head's two losses by their Keras names (``mrcnn_class_loss``, ``mrcnn_bbox_loss``)."""
    return {
        "mrcnn_class_loss": mrcnn_class_loss(target_class_ids, class_logits, active_class_ids, rois),
        "mrcnn_bbox_loss": mrcnn_bbox_loss(target_bbox, target_class_ids, pred_bbox),
    }


# ------------------------------------------------------------------------------------- inference
def refine_detections(rois, probs, deltas, window, *, bbox_std_dev, min_confidence, nms_threshold, max_instances):
    """One image: rois [N, 4], probs [N, C], deltas [N, C, 4], window [4] (normalised)
    -> [max_instances, 6] rows (y1, x1, y2, x2, class_id, score), sorted by score, zero padded.

    Per-class NMS is done in one call by shifting each class's boxes to its own region of the
    plane (boxes of different classes then never overlap).
    """
    class_ids = tf.argmax(probs, axis=1, output_type=tf.int32)
    idx = tf.stack([tf.range(tf.shape(probs)[0]), class_ids], axis=1)
    scores = tf.gather_nd(probs, idx)
    class_deltas = tf.gather_nd(deltas, idx) * tf.constant(bbox_std_dev, tf.float32)
    boxes = clip_boxes_tf(apply_box_deltas_tf(rois, class_deltas), window)

    valid = (class_ids > 0) & (scores >= min_confidence) & tf.reduce_any(tf.not_equal(rois, 0.0), axis=1)
    keep = tf.where(valid)[:, 0]
    boxes, class_ids, scores = tf.gather(boxes, keep), tf.gather(class_ids, keep), tf.gather(scores, keep)

    offset = tf.cast(class_ids, tf.float32)[:, None] * 2.0
    selected = tf.image.non_max_suppression(boxes + offset, scores, max_instances, nms_threshold)
    detections = tf.concat(
        [
            tf.gather(boxes, selected),
            tf.cast(tf.gather(class_ids, selected), tf.float32)[:, None],
            tf.gather(scores, selected)[:, None],
        ],
        axis=1,
    )
    pad = max_instances - tf.shape(detections)[0]
    return tf.pad(detections, [(0, pad), (0, 0)])


def refine_detections_padded(
    rois, probs, deltas, window, *, bbox_std_dev, min_confidence, nms_threshold, max_instances
):
    """Batched twin of :func:`refine_detections` for the export graph (same rows, tested): rois
    [B, N, 4], probs [B, N, C], deltas [B, N, C, 4], window [B, 4] (normalised) -> [B, D, 6].
    The filtered-out ROIs stay in place as invalid boxes of :func:`mrcnn.ops.nms.nms_padded_tf`
    instead of being dropped (no dynamic shapes, no NMS op)."""
    class_ids = tf.argmax(probs, axis=2, output_type=tf.int32)
    scores = tf.gather(probs, class_ids, batch_dims=2)
    class_deltas = tf.gather(deltas, class_ids, batch_dims=2) * tf.constant(bbox_std_dev, tf.float32)
    boxes = apply_box_deltas_tf(rois, class_deltas)
    lo, hi = tf.tile(window[:, None, :2], [1, 1, 2]), tf.tile(window[:, None, 2:], [1, 1, 2])
    boxes = tf.minimum(tf.maximum(boxes, lo), hi)  # clip_boxes_tf with one window per image
    valid = (class_ids > 0) & (scores >= min_confidence) & tf.reduce_any(tf.not_equal(rois, 0.0), axis=2)
    offset = tf.cast(class_ids, tf.float32)[..., None] * 2.0
    keep, ok = nms_padded_tf(boxes + offset, scores, max_instances, nms_threshold, valid=valid)
    detections = tf.concat(
        [
            tf.gather(boxes, keep, batch_dims=1),
            tf.cast(tf.gather(class_ids, keep, batch_dims=1), tf.float32)[..., None],
            tf.gather(scores, keep, batch_dims=1)[..., None],
        ],
        axis=2,
    )
    return detections * tf.cast(ok, tf.float32)[..., None]


class DetectionLayer(Float32Layer):
    """Batched :func:`refine_detections`: [rois [B, N, 4], probs [B, N, C], deltas [B, N, C, 4],
    image_meta [B, META]] -> detections [B, D, 6]. ``nms="padded"``: :func:`refine_detections_padded`
    (the export graph)."""

    def __init__(self, bbox_std_dev, min_confidence, nms_threshold, max_instances, nms="op", **kwargs):
        super().__init__(**kwargs)
        self.nms = nms
        self.bbox_std_dev = [float(v) for v in bbox_std_dev]
        self.min_confidence = float(min_confidence)
        self.nms_threshold = float(nms_threshold)
        self.max_instances = int(max_instances)

    def call(self, inputs):
        rois, probs, deltas, image_meta = inputs
        meta = parse_image_meta_tf(image_meta)
        if self.nms == "padded":
            hw = meta["image_shape"][:, :2]
            scale = tf.concat([hw, hw], axis=1) - 1.0
            window = (meta["window"] - tf.constant([0.0, 0.0, 1.0, 1.0])) / scale  # norm_boxes_tf per image
            return refine_detections_padded(
                tf.cast(rois, tf.float32),
                tf.cast(probs, tf.float32),
                tf.cast(deltas, tf.float32),
                window,
                bbox_std_dev=self.bbox_std_dev,
                min_confidence=self.min_confidence,
                nms_threshold=self.nms_threshold,
                max_instances=self.max_instances,
            )

        def one(args):
            r, p, d, window, image_shape = args
            return refine_detections(
                r,
                p,
                d,
                norm_boxes_tf(window, image_shape),
                bbox_std_dev=self.bbox_std_dev,
                min_confidence=self.min_confidence,
                nms_threshold=self.nms_threshold,
                max_instances=self.max_instances,
            )

        return tf.map_fn(
            one,
            (
                tf.cast(rois, tf.float32),
                tf.cast(probs, tf.float32),
                tf.cast(deltas, tf.float32),
                meta["window"],
                meta["image_shape"],
            ),
            fn_output_signature=tf.TensorSpec((self.max_instances, 6), tf.float32),
        )

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.max_instances, 6)

    def get_config(self):
        return {
            **super().get_config(),
            "bbox_std_dev": self.bbox_std_dev,
            "min_confidence": self.min_confidence,
            "nms_threshold": self.nms_threshold,
            "max_instances": self.max_instances,
            "nms": self.nms,
        }


class DetectionBoxes(Float32Layer):
    """The box columns of the detections, for the mask head: [B, D, 6] -> [B, D, 4]."""

    def call(self, detections):
        return detections[..., :4]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (4,)
