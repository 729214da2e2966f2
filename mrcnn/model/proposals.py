"""Anchors as a graph layer, and the ProposalLayer (decode RPN deltas, clip, NMS)."""
from __future__ import annotations

import tensorflow as tf
from keras import layers

from mrcnn.ops.anchors import generate_pyramid_anchors_tf
from mrcnn.ops.boxes import apply_box_deltas_tf, clip_boxes_tf, norm_boxes_tf


class PyramidAnchors(layers.Layer):
    """Normalised anchor pyramid [A, 4] for the (dynamic) size of the input image.

    Computed in the graph from the image shape, so the same model serves any input size and a
    SavedModel needs no anchors input. Same order as :func:`mrcnn.ops.anchors.get_anchors`.
    """

    def __init__(self, scales, ratios, strides, anchor_stride=1, **kwargs):
        super().__init__(**kwargs)
        self.scales = [float(s) for s in scales]
        self.ratios = [float(r) for r in ratios]
        self.strides = [int(s) for s in strides]
        self.anchor_stride = int(anchor_stride)

    def call(self, image):
        shape = tf.shape(image)[1:3]
        anchors = generate_pyramid_anchors_tf(self.scales, self.ratios, shape, self.strides, self.anchor_stride)
        return norm_boxes_tf(anchors, shape)

    def compute_output_shape(self, input_shape):
        return (None, 4)

    def get_config(self):
        return {**super().get_config(), "scales": self.scales, "ratios": self.ratios,
                "strides": self.strides, "anchor_stride": self.anchor_stride}


def propose(scores, deltas, anchors, *, proposal_count, nms_threshold, pre_nms_limit, std_dev):
    """Proposals for one image: top-k by score, decode, clip to [0, 1], NMS, zero-pad.

    scores [A], deltas [A, 4] (std-normalised), anchors [A, 4] normalised -> [proposal_count, 4].
    """
    k = tf.minimum(pre_nms_limit, tf.shape(anchors)[0])
    top_scores, idx = tf.math.top_k(scores, k=k, sorted=True)
    boxes = apply_box_deltas_tf(tf.gather(anchors, idx), tf.gather(deltas, idx) * std_dev)
    boxes = clip_boxes_tf(boxes, tf.constant([0.0, 0.0, 1.0, 1.0]))
    keep = tf.image.non_max_suppression(boxes, top_scores, proposal_count, nms_threshold)
    boxes = tf.gather(boxes, keep)
    pad = tf.maximum(proposal_count - tf.shape(boxes)[0], 0)
    return tf.pad(boxes, [(0, pad), (0, 0)])


class ProposalLayer(layers.Layer):
    """RPN outputs -> [B, proposal_count, 4] normalised ROIs (zero padded)."""

    def __init__(self, proposal_count, nms_threshold, pre_nms_limit, rpn_bbox_std_dev, **kwargs):
        super().__init__(**kwargs)
        self.proposal_count = int(proposal_count)
        self.nms_threshold = float(nms_threshold)
        self.pre_nms_limit = int(pre_nms_limit)
        self.rpn_bbox_std_dev = [float(v) for v in rpn_bbox_std_dev]

    def call(self, inputs):
        probs, deltas, anchors = inputs
        scores = tf.cast(probs[:, :, 1], tf.float32)
        deltas = tf.cast(deltas, tf.float32)
        std = tf.constant(self.rpn_bbox_std_dev, tf.float32)

        def one(args):
            s, d = args
            return propose(s, d, anchors, proposal_count=self.proposal_count, nms_threshold=self.nms_threshold,
                           pre_nms_limit=self.pre_nms_limit, std_dev=std)

        rois = tf.map_fn(one, (scores, deltas), fn_output_signature=tf.TensorSpec((None, 4), tf.float32))
        return tf.ensure_shape(rois, (None, self.proposal_count, 4))

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.proposal_count, 4)

    def get_config(self):
        return {**super().get_config(), "proposal_count": self.proposal_count, "nms_threshold": self.nms_threshold,
                "pre_nms_limit": self.pre_nms_limit, "rpn_bbox_std_dev": self.rpn_bbox_std_dev}
