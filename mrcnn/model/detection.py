"""DetectionLayer: refine ROIs with the class head, drop background/low scores, per-class NMS."""
from __future__ import annotations

import tensorflow as tf
from keras import layers

from mrcnn.ops.boxes import apply_box_deltas_tf, clip_boxes_tf


def refine_detections(rois, probs, deltas, window, *, bbox_std_dev, min_confidence, nms_threshold,
                      max_instances):
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
    detections = tf.concat([tf.gather(boxes, selected),
                            tf.cast(tf.gather(class_ids, selected), tf.float32)[:, None],
                            tf.gather(scores, selected)[:, None]], axis=1)
    pad = max_instances - tf.shape(detections)[0]
    return tf.pad(detections, [(0, pad), (0, 0)])


class DetectionLayer(layers.Layer):
    """Batched :func:`refine_detections`. Inputs: rois, class probs, box deltas, image meta."""

    def __init__(self, bbox_std_dev, min_confidence, nms_threshold, max_instances, **kwargs):
        super().__init__(**kwargs)
        self.bbox_std_dev = [float(v) for v in bbox_std_dev]
        self.min_confidence = float(min_confidence)
        self.nms_threshold = float(nms_threshold)
        self.max_instances = int(max_instances)

    def call(self, inputs):
        rois, probs, deltas, image_meta = inputs
        image_shape = image_meta[:, 4:6]
        window = image_meta[:, 7:11]
        # Window in normalised coordinates (Matterport's norm_boxes convention).
        h, w = image_shape[:, 0:1], image_shape[:, 1:2]
        scale = tf.concat([h, w, h, w], axis=1) - 1.0
        window = (window - tf.constant([0.0, 0.0, 1.0, 1.0])) / scale

        def one(args):
            r, p, d, win = args
            return refine_detections(r, p, d, win, bbox_std_dev=self.bbox_std_dev,
                                     min_confidence=self.min_confidence, nms_threshold=self.nms_threshold,
                                     max_instances=self.max_instances)

        dets = tf.map_fn(one, (tf.cast(rois, tf.float32), tf.cast(probs, tf.float32), tf.cast(deltas, tf.float32),
                               window), fn_output_signature=tf.TensorSpec((self.max_instances, 6), tf.float32))
        return dets

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.max_instances, 6)

    def get_config(self):
        return {**super().get_config(), "bbox_std_dev": self.bbox_std_dev, "min_confidence": self.min_confidence,
                "nms_threshold": self.nms_threshold, "max_instances": self.max_instances}


class DetectionBoxes(layers.Layer):
    """The box columns of the detections, for the mask head: [B, D, 6] -> [B, D, 4]."""

    def call(self, detections):
        return detections[..., :4]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (4,)
