"""Multi-level ROIAlign (each ROI pooled from the FPN level that fits its size) and PerROI, which
applies a layer to every pooled ROI: the two pieces the box and mask heads share.

Two samplers compute the same bilinear crops (``tf.image.crop_and_resize``'s arithmetic):
``"crop_and_resize"`` (the training and ``detect()`` graphs: one op per level) and ``"gather"``
(the export graph: the four bilinear taps read with ``tf.gather`` from all levels at once, which
TFLite builtins, ONNX and XLA have; CropAndResize has no TFLite builtin nor XLA kernel).
:func:`roi_align_gather_tf` and its numpy twin :func:`roi_align_gather` are tested against
CropAndResize in ``tests/test_export_ops.py``.
"""

from __future__ import annotations

import numpy as np
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


def _sample_axis(start: float, stop: float, size: int, full: int):
    """crop_and_resize's samples along one axis of one box: start/stop normalised, ``size``
    samples on a ``full``-long axis -> (first tap [size], second tap, weight of the second,
    inside [size] bool: samples outside [0, full - 1] read 0)."""
    if size > 1:
        pos = start * (full - 1) + np.arange(size, dtype=np.float32) * np.float32(
            (stop - start) * (full - 1) / (size - 1)
        )
    else:
        pos = np.array([0.5 * (start + stop) * (full - 1)], np.float32)
    first = np.floor(pos)
    f = np.clip(first, 0, full - 1).astype(np.int64)
    return f, np.minimum(f + 1, full - 1), pos - first, (pos >= 0) & (pos <= full - 1)


def roi_align_gather(feature_maps, boxes, box_batch, levels, pool_shape) -> np.ndarray:
    """numpy twin of :func:`roi_align_gather_tf`: feature maps [B, H_l, W_l, C] for levels
    2, 3, ..., boxes [N, 4] normalised, box_batch [N], levels [N] (2..) -> [N, ph, pw, C]."""
    ph, pw = pool_shape
    out = np.zeros((len(boxes), ph, pw, feature_maps[0].shape[-1]), np.float32)
    for n, (box, b, lv) in enumerate(zip(np.asarray(boxes, np.float32), box_batch, levels)):
        fmap = np.asarray(feature_maps[int(lv) - 2][int(b)], np.float32)
        y0, y1, wy, iy = _sample_axis(box[0], box[2], ph, fmap.shape[0])
        x0, x1, wx, ix = _sample_axis(box[1], box[3], pw, fmap.shape[1])
        top = fmap[y0][:, x0] * (1 - wx)[None, :, None] + fmap[y0][:, x1] * wx[None, :, None]
        bottom = fmap[y1][:, x0] * (1 - wx)[None, :, None] + fmap[y1][:, x1] * wx[None, :, None]
        crop = top + (bottom - top) * wy[:, None, None]
        out[n] = crop * (iy[:, None] & ix[None, :])[..., None]
    return out


def roi_align_gather_tf(feature_maps, boxes, box_batch, levels, pool_shape):
    """Multi-level bilinear crops by gathers: feature maps [B, H_l, W_l, C] for levels 2, 3, ...,
    boxes [N, 4] normalised, box_batch [N] int32, levels [N] int32 (2..) -> float32 [N, ph, pw, C].

    Equals ``tf.image.crop_and_resize(fmap_level, boxes, box_batch, pool_shape)`` per box (bilinear,
    extrapolation 0), with all levels flattened into one [sum B*H_l*W_l, C] table so one gather
    per tap serves every ROI whatever its level: no per-level split, no scatter back.
    """
    ph, pw = (int(v) for v in pool_shape)
    maps = [tf.cast(f, tf.float32) for f in feature_maps]
    shapes = tf.stack([tf.shape(f)[:3] for f in maps])  # [L, 3] (B, H, W)
    sizes = tf.reduce_prod(shapes, axis=1)
    offsets = tf.concat([[0], tf.cumsum(sizes)[:-1]], 0)
    table = tf.concat([tf.reshape(f, [-1, tf.shape(f)[-1]]) for f in maps], 0)
    li = tf.cast(levels, tf.int32) - 2
    h, w, off = tf.gather(shapes[:, 1], li), tf.gather(shapes[:, 2], li), tf.gather(offsets, li)
    boxes = tf.cast(boxes, tf.float32)
    # Per-box axis lengths differ by level: sample with a float length, clip with a per-box bound.
    hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)

    def axis(start, stop, size, length_f, length):
        i = tf.cast(tf.range(size), tf.float32)[None, :]
        if size > 1:
            pos = start[:, None] * (length_f[:, None] - 1) + i * ((stop - start) * (length_f - 1) / (size - 1))[:, None]
        else:
            pos = (0.5 * (start + stop) * (length_f - 1))[:, None]
        inside = (pos >= 0) & (pos <= length_f[:, None] - 1)
        first = tf.floor(pos)
        f = tf.clip_by_value(tf.cast(first, tf.int32), 0, length[:, None] - 1)
        return f, tf.minimum(f + 1, length[:, None] - 1), pos - first, inside

    y0, y1, wy, iy = axis(boxes[:, 0], boxes[:, 2], ph, hf, h)
    x0, x1, wx, ix = axis(boxes[:, 1], boxes[:, 3], pw, wf, w)
    base = off + tf.cast(box_batch, tf.int32) * h * w  # [N]

    def tap(ys, xs):  # [N, ph], [N, pw] -> [N, ph, pw, C]
        idx = base[:, None, None] + ys[:, :, None] * w[:, None, None] + xs[:, None, :]
        return tf.gather(table, idx)

    wx_, wy_ = wx[:, None, :, None], wy[:, :, None, None]
    top = tap(y0, x0) * (1 - wx_) + tap(y0, x1) * wx_
    bottom = tap(y1, x0) * (1 - wx_) + tap(y1, x1) * wx_
    crop = top + (bottom - top) * wy_
    inside = tf.cast(iy[:, :, None] & ix[:, None, :], tf.float32)[..., None]
    return crop * inside


class PyramidROIAlign(layers.Layer):
    """[boxes [B, N, 4], image [B, H, W, C] (for its size), P2, P3, P4, P5] -> [B, N, ph, pw, C].

    ``packed=True`` pools only the ROIs a mask selects, for heads that need no more (the mask
    head in training runs on the positive ROIs only): inputs [boxes [B, N, 4], keep [B, N]
    (bool), image, P2..P5] -> [1, K, ph, pw, C], the K kept ROIs in (image, ROI) order;
    :class:`UnpackROIs` puts a head's outputs back in their [B, N] slots.

    ``sampler``: ``"crop_and_resize"`` or ``"gather"`` (the export graph; same values, see the module).
    """

    def __init__(self, pool_shape, packed: bool = False, sampler: str = "crop_and_resize", **kwargs):
        # Boxes stay float32 under a mixed policy (no autocast of the inputs); the pooled features
        # come out in the compute dtype, for the head convs.
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.pool_shape = tuple(int(v) for v in pool_shape)
        self.packed = bool(packed)
        if sampler not in ("crop_and_resize", "gather"):
            raise ValueError(f"sampler must be 'crop_and_resize' or 'gather', got {sampler!r}")
        self.sampler = sampler

    def call(self, inputs):
        boxes = tf.cast(inputs[0], tf.float32)
        keep = inputs[1] if self.packed else None
        image, feature_maps = inputs[1 + self.packed], inputs[2 + self.packed :]
        batch, n = tf.shape(boxes)[0], tf.shape(boxes)[1]
        flat_boxes = tf.reshape(boxes, [-1, 4])
        box_batch = tf.repeat(tf.range(batch), n)
        if keep is not None:
            kept = tf.where(tf.reshape(keep, [-1]))[:, 0]
            flat_boxes, box_batch = tf.gather(flat_boxes, kept), tf.gather(box_batch, kept)
        levels = roi_levels(flat_boxes, tf.shape(image)[1:3])
        leading = [1, tf.shape(flat_boxes)[0]] if keep is not None else [batch, n]
        if self.sampler == "gather":
            pooled = roi_align_gather_tf(feature_maps, tf.stop_gradient(flat_boxes), box_batch, levels, self.pool_shape)
            out = tf.reshape(pooled, tf.concat([leading, tf.shape(pooled)[1:]], 0))
            return tf.cast(out, self.compute_dtype)
        pooled, order = [], []
        for i, fmap in enumerate(feature_maps):
            idx = tf.where(tf.equal(levels, i + 2))[:, 0]
            crops = tf.image.crop_and_resize(
                tf.cast(fmap, tf.float32),
                tf.stop_gradient(tf.gather(flat_boxes, idx)),
                tf.stop_gradient(tf.cast(tf.gather(box_batch, idx), tf.int32)),
                self.pool_shape,
                method="bilinear",
            )
            pooled.append(crops)
            order.append(idx)
        pooled = tf.concat(pooled, axis=0)
        order = tf.concat(order, axis=0)
        # Put the crops back in box order.
        pooled = tf.scatter_nd(
            tf.cast(order[:, None], tf.int32), pooled, tf.concat([tf.shape(flat_boxes)[:1], tf.shape(pooled)[1:]], 0)
        )
        out = tf.reshape(pooled, tf.concat([leading, tf.shape(pooled)[1:]], 0))
        return tf.cast(out, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        leading = (1, None) if self.packed else (input_shape[0][0], input_shape[0][1])
        return leading + self.pool_shape + (input_shape[-1][-1],)

    def get_config(self):
        return {
            **super().get_config(),
            "pool_shape": list(self.pool_shape),
            "packed": self.packed,
            "sampler": self.sampler,
        }


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
