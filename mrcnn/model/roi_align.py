"""Multi-level ROIAlign (each ROI pooled from the FPN level that fits its size) and PerROI, which
applies a layer to every pooled ROI: the two pieces the box and mask heads share."""
from __future__ import annotations

import tensorflow as tf
from keras import layers, ops


def roi_levels(boxes: tf.Tensor, image_shape: tf.Tensor) -> tf.Tensor:
    """FPN level (2..5) of normalised boxes [..., 4], as in the FPN paper, relative to a 224 px
    ROI on a 1024 px image (so it scales with the input size)."""
    y1, x1, y2, x2 = tf.unstack(boxes, axis=-1)
    h, w = y2 - y1, x2 - x1
    image_area = tf.cast(image_shape[0] * image_shape[1], tf.float32)
    level = tf.math.log(tf.sqrt(tf.maximum(h * w, 1e-12)) / (224.0 / tf.sqrt(image_area))) / tf.math.log(2.0)
    return tf.clip_by_value(4 + tf.cast(tf.round(level), tf.int32), 2, 5)


class PyramidROIAlign(layers.Layer):
    """[boxes [B, N, 4], image [B, H, W, C] (for its size), P2, P3, P4, P5] -> [B, N, ph, pw, C].

    ``packed=True`` pools only the ROIs a mask selects, for heads that need no more (the mask
    head in training runs on the positive ROIs only): inputs [boxes [B, N, 4], keep [B, N]
    (bool), image, P2..P5] -> [1, K, ph, pw, C], the K kept ROIs in (image, ROI) order;
    :class:`UnpackROIs` puts a head's outputs back in their [B, N] slots.
    """

    def __init__(self, pool_shape, packed: bool = False, **kwargs):
        # Boxes stay float32 under a mixed policy (no autocast of the inputs); the pooled features
        # come out in the compute dtype, for the head convs.
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.pool_shape = tuple(int(v) for v in pool_shape)
        self.packed = bool(packed)

    def call(self, inputs):
        boxes = tf.cast(inputs[0], tf.float32)
        keep = inputs[1] if self.packed else None
        image, feature_maps = inputs[1 + self.packed], inputs[2 + self.packed:]
        batch, n = tf.shape(boxes)[0], tf.shape(boxes)[1]
        flat_boxes = tf.reshape(boxes, [-1, 4])
        box_batch = tf.repeat(tf.range(batch), n)
        if keep is not None:
            kept = tf.where(tf.reshape(keep, [-1]))[:, 0]
            flat_boxes, box_batch = tf.gather(flat_boxes, kept), tf.gather(box_batch, kept)
        levels = roi_levels(flat_boxes, tf.shape(image)[1:3])
        pooled, order = [], []
        for i, fmap in enumerate(feature_maps):
            idx = tf.where(tf.equal(levels, i + 2))[:, 0]
            crops = tf.image.crop_and_resize(
                tf.cast(fmap, tf.float32), tf.stop_gradient(tf.gather(flat_boxes, idx)),
                tf.stop_gradient(tf.cast(tf.gather(box_batch, idx), tf.int32)), self.pool_shape, method="bilinear")
            pooled.append(crops)
            order.append(idx)
        pooled = tf.concat(pooled, axis=0)
        order = tf.concat(order, axis=0)
        # Put the crops back in box order.
        pooled = tf.scatter_nd(tf.cast(order[:, None], tf.int32), pooled,
                               tf.concat([tf.shape(flat_boxes)[:1], tf.shape(pooled)[1:]], 0))
        leading = [1, tf.shape(flat_boxes)[0]] if keep is not None else [batch, n]
        out = tf.reshape(pooled, tf.concat([leading, tf.shape(pooled)[1:]], 0))
        return tf.cast(out, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        leading = (1, None) if self.packed else (input_shape[0][0], input_shape[0][1])
        return leading + self.pool_shape + (input_shape[-1][-1],)

    def get_config(self):
        return {**super().get_config(), "pool_shape": list(self.pool_shape), "packed": self.packed}


class UnpackROIs(layers.Layer):
    """[values [1, K, ...] of the kept ROIs, keep [B, N] (bool)] -> [B, N, ...], zeros where not
    kept: the inverse of ``PyramidROIAlign(packed=True)``."""

    def call(self, inputs):
        values, keep = inputs
        slots = tf.cast(tf.where(keep), tf.int32)
        return tf.scatter_nd(slots, values[0], tf.concat([tf.shape(keep), tf.shape(values)[2:]], 0))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1]) + tuple(input_shape[0][2:])


class PerROI(layers.Wrapper):
    """Apply a layer to every ROI: [B, N, ...] -> [B*N, ...] -> layer -> [B, N, ...].

    Keras 3's ``TimeDistributed`` unrolls a Python loop over a static time axis (one conv per
    ROI: a huge graph, several times slower on CPU); folding the ROIs into the batch axis is one
    op. Weights are the wrapped layer's, under this wrapper's name (Matterport's layer names).
    """

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build((None,) + tuple(input_shape[2:]))
        self.built = True

    def call(self, inputs, training=None):
        shape = ops.shape(inputs)
        flat = ops.reshape(inputs, (-1,) + tuple(inputs.shape[2:]))
        kwargs = {"training": training} if isinstance(self.layer, layers.BatchNormalization) else {}
        out = self.layer(flat, **kwargs)
        return ops.reshape(out, (shape[0], shape[1]) + tuple(out.shape[1:]))

    def compute_output_shape(self, input_shape):
        inner = self.layer.compute_output_shape((None,) + tuple(input_shape[2:]))
        return tuple(input_shape[:2]) + tuple(inner[1:])
