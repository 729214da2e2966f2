"""Region Proposal Network head, shared across pyramid levels (``rpn_conv_shared`` etc.)."""
from __future__ import annotations

from keras import layers


class RPNHead:
    """3x3 shared conv, then per-anchor objectness logits and box deltas; reused on every level."""

    def __init__(self, anchors_per_location: int, depth: int = 512, anchor_stride: int = 1):
        self.anchors_per_location = anchors_per_location
        self.shared = layers.Conv2D(depth, 3, padding="same", activation="relu", strides=anchor_stride,
                                    name="rpn_conv_shared")
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
