"""Region Proposal Network as one unit: the head layers, the in-graph anchors, the proposals
(decode, clip, NMS) and the RPN's two losses.

Shapes: B images, A anchors over all pyramid levels, P proposals per image. Boxes are
normalised (y1, x1, y2, x2).
"""

from __future__ import annotations

import tensorflow as tf
from keras import layers

from mrcnn.ops.anchors import generate_pyramid_anchors_tf
from mrcnn.ops.boxes import apply_box_deltas_tf, clip_boxes_tf, norm_boxes_tf
from mrcnn.ops.nms import nms_padded_tf

from .losses import mean_or_zero, smooth_l1
from .precision import Float32Layer


# ---------------------------------------------------------------------------------------- layers
class RPNHead:
    """3x3 shared conv, then per-anchor objectness logits and box deltas; reused on every level
    (Matterport names ``rpn_conv_shared``, ``rpn_class_raw``, ``rpn_bbox_pred``)."""

    def __init__(self, anchors_per_location: int, depth: int = 512, anchor_stride: int = 1):
        self.anchors_per_location = anchors_per_location
        self.shared = layers.Conv2D(
            depth, 3, padding="same", activation="relu", strides=anchor_stride, name="rpn_conv_shared"
        )
        self.class_raw = layers.Conv2D(2 * anchors_per_location, 1, name="rpn_class_raw")
        self.bbox_pred = layers.Conv2D(4 * anchors_per_location, 1, name="rpn_bbox_pred")

    def __call__(self, feature_maps):
        """[P2..P6] -> (logits [B, A, 2], probs [B, A, 2], deltas [B, A, 4]) over all levels."""
        logits, deltas = [], []
        for p in feature_maps:
            shared = self.shared(p)
            logits.append(layers.Reshape((-1, 2))(self.class_raw(shared)))
            deltas.append(layers.Reshape((-1, 4))(self.bbox_pred(shared)))
        logits = layers.Concatenate(axis=1, name="rpn_class_logits")(logits)
        probs = layers.Activation("softmax", name="rpn_class", dtype="float32")(logits)
        deltas = layers.Concatenate(axis=1, name="rpn_bbox")(deltas)
        return logits, probs, deltas


class PyramidAnchors(Float32Layer):
    """[image [B, H, W, C], P2..P6] -> normalised anchor pyramid [A, 4].

    The level shapes are read from the feature maps the RPN actually sees, so the anchors line up
    with the RPN outputs for any backbone and any (dynamic) input size, and a SavedModel needs no
    anchors input. Same order as :func:`mrcnn.ops.anchors.get_anchors` (which uses
    :func:`mrcnn.ops.anchors.compute_backbone_shapes`, honouring ``COMPUTE_BACKBONE_SHAPE``).
    """

    def __init__(self, scales, ratios, strides, anchor_stride=1, **kwargs):
        super().__init__(**kwargs)
        self.scales = [float(s) for s in scales]
        self.ratios = [float(r) for r in ratios]
        self.strides = [int(s) for s in strides]
        self.anchor_stride = int(anchor_stride)

    def call(self, inputs):
        image, feature_maps = inputs[0], inputs[1:]
        image_shape = tf.shape(image)[1:3]
        shapes = tf.stack([tf.shape(p)[1:3] for p in feature_maps])
        anchors = generate_pyramid_anchors_tf(self.scales, self.ratios, shapes, self.strides, self.anchor_stride)
        return norm_boxes_tf(anchors, image_shape)

    def compute_output_shape(self, input_shape):
        return (None, 4)

    def get_config(self):
        return {
            **super().get_config(),
            "scales": self.scales,
            "ratios": self.ratios,
            "strides": self.strides,
            "anchor_stride": self.anchor_stride,
        }


# ------------------------------------------------------------------------------------- proposals
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


def propose_padded(scores, deltas, anchors, *, proposal_count, nms_threshold, pre_nms_limit, std_dev):
    """Batched twin of :func:`propose` for the export graph (same proposals, tested): no map_fn and
    no NMS op, :func:`mrcnn.ops.nms.nms_padded_tf` instead. scores [B, A], deltas [B, A, 4],
    anchors [A, 4] -> [B, proposal_count, 4]."""
    k = tf.minimum(pre_nms_limit, tf.shape(anchors)[0])
    top_scores, idx = tf.math.top_k(scores, k=k, sorted=True)
    boxes = apply_box_deltas_tf(tf.gather(anchors, idx), tf.gather(deltas, idx, batch_dims=1) * std_dev)
    boxes = clip_boxes_tf(boxes, tf.constant([0.0, 0.0, 1.0, 1.0]))
    keep, ok = nms_padded_tf(boxes, top_scores, proposal_count, nms_threshold)
    return tf.gather(boxes, keep, batch_dims=1) * tf.cast(ok, tf.float32)[..., None]


class ProposalLayer(Float32Layer):
    """Batched :func:`propose`: [probs [B, A, 2], deltas [B, A, 4], anchors [A, 4]]
    -> [B, proposal_count, 4] normalised ROIs (zero padded). ``nms="padded"``:
    :func:`propose_padded` (the export graph)."""

    def __init__(self, proposal_count, nms_threshold, pre_nms_limit, rpn_bbox_std_dev, nms="op", **kwargs):
        super().__init__(**kwargs)
        self.nms = nms
        self.proposal_count = int(proposal_count)
        self.nms_threshold = float(nms_threshold)
        self.pre_nms_limit = int(pre_nms_limit)
        self.rpn_bbox_std_dev = [float(v) for v in rpn_bbox_std_dev]

    def call(self, inputs):
        probs, deltas, anchors = inputs
        scores = tf.cast(probs[:, :, 1], tf.float32)
        deltas = tf.cast(deltas, tf.float32)
        std = tf.constant(self.rpn_bbox_std_dev, tf.float32)
        if self.nms == "padded":
            return propose_padded(
                scores,
                deltas,
                anchors,
                proposal_count=self.proposal_count,
                nms_threshold=self.nms_threshold,
                pre_nms_limit=self.pre_nms_limit,
                std_dev=std,
            )

        def one(args):
            s, d = args
            return propose(
                s,
                d,
                anchors,
                proposal_count=self.proposal_count,
                nms_threshold=self.nms_threshold,
                pre_nms_limit=self.pre_nms_limit,
                std_dev=std,
            )

        rois = tf.map_fn(one, (scores, deltas), fn_output_signature=tf.TensorSpec((None, 4), tf.float32))
        return tf.ensure_shape(rois, (None, self.proposal_count, 4))

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.proposal_count, 4)

    def get_config(self):
        return {
            **super().get_config(),
            "proposal_count": self.proposal_count,
            "nms_threshold": self.nms_threshold,
            "pre_nms_limit": self.pre_nms_limit,
            "rpn_bbox_std_dev": self.rpn_bbox_std_dev,
            "nms": self.nms,
        }


# ---------------------------------------------------------------------------------------- losses
def rpn_class_loss(rpn_match, rpn_class_logits):
    """rpn_match [B, A, 1] (1 pos, -1 neg, 0 ignore), logits [B, A, 2] -> scalar: mean
    cross-entropy over the non-neutral anchors."""
    match = tf.squeeze(rpn_match, -1)
    idx = tf.where(tf.not_equal(match, 0))
    labels = tf.cast(tf.equal(tf.gather_nd(match, idx), 1), tf.int32)
    logits = tf.cast(tf.gather_nd(rpn_class_logits, idx), tf.float32)
    return mean_or_zero(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))


def rpn_bbox_loss(target_bbox, rpn_match, rpn_bbox):
    """target_bbox [B, T, 4] (positives first, in anchor order), rpn_match [B, A, 1],
    rpn_bbox [B, A, 4] -> scalar: mean smooth-L1 over the positive anchors' deltas."""
    match = tf.squeeze(rpn_match, -1)
    idx = tf.where(tf.equal(match, 1))
    pred = tf.cast(tf.gather_nd(rpn_bbox, idx), tf.float32)
    counts = tf.reduce_sum(tf.cast(tf.equal(match, 1), tf.int32), axis=1)
    # Positives of image b are the first counts[b] rows of target_bbox[b].
    mask = tf.sequence_mask(counts, tf.shape(target_bbox)[1])
    target = tf.boolean_mask(target_bbox, mask)
    return mean_or_zero(smooth_l1(target, pred))


def rpn_losses(rpn_match, rpn_target_bbox, rpn_class_logits, rpn_bbox) -> dict:
    """The RPN's two losses by their Keras names (``rpn_class_loss``, ``rpn_bbox_loss``)."""
    return {
        "rpn_class_loss": rpn_class_loss(rpn_match, rpn_class_logits),
        "rpn_bbox_loss": rpn_bbox_loss(rpn_target_bbox, rpn_match, rpn_bbox),
    }
