"""Anchor pyramid generation (Matterport layout: level by level, cell by cell, ratio-major)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .boxes import norm_boxes


def generate_anchors(scale: float, ratios, shape, feature_stride: int, anchor_stride: int = 1) -> np.ndarray:
    """Anchors of one level in pixels, [rows * cols * len(ratios), 4] as (y1, x1, y2, x2).

    ``scale`` is the side of a square anchor in input pixels; ratios are width / height.
    """
    ratios = np.asarray(ratios, dtype=np.float64)
    heights = scale / np.sqrt(ratios)
    widths = scale * np.sqrt(ratios)
    ys = np.arange(0, shape[0], anchor_stride) * feature_stride
    xs = np.arange(0, shape[1], anchor_stride) * feature_stride
    cx, cy = np.meshgrid(xs, ys)  # [rows, cols]
    centers = np.stack([cy.ravel(), cx.ravel()], axis=1)[:, None, :]  # [cells, 1, 2]
    half = np.stack([heights, widths], axis=1)[None, :, :] / 2.0  # [1, ratios, 2]
    boxes = np.concatenate([centers - half, centers + half], axis=2)
    return boxes.reshape(-1, 4).astype(np.float32)


def generate_pyramid_anchors(scales, ratios, feature_shapes, feature_strides, anchor_stride: int = 1) -> np.ndarray:
    """Concatenate the anchors of every level: level i uses ``scales[i]`` on ``feature_shapes[i]``."""
    return np.concatenate(
        [
            generate_anchors(s, ratios, shp, fs, anchor_stride)
            for s, shp, fs in zip(scales, feature_shapes, feature_strides)
        ],
        axis=0,
    )


@dataclass(frozen=True)
class AnchorSpec:
    """The anchor settings of a config, read once: one square-equivalent side per pyramid level
    (``scales``, input pixels), the width/height ``ratios`` shared by every level, the level
    ``strides`` and Matterport's ``anchor_stride`` (cells between anchor centres). ``feature_shape_fn``:
    Matterport's ``COMPUTE_BACKBONE_SHAPE`` for a callable BACKBONE, else ``ceil(image / stride)``."""

    scales: tuple[float, ...]
    ratios: tuple[float, ...]
    strides: tuple[int, ...]
    anchor_stride: int = 1
    feature_shape_fn: Callable | None = None

    @classmethod
    def from_config(cls, config) -> AnchorSpec:
        return cls(
            tuple(config.RPN_ANCHOR_SCALES),
            tuple(float(r) for r in config.RPN_ANCHOR_RATIOS),
            tuple(int(s) for s in config.BACKBONE_STRIDES),
            int(config.RPN_ANCHOR_STRIDE),
            config.COMPUTE_BACKBONE_SHAPE if callable(config.BACKBONE) else None,
        )

    def feature_shapes(self, image_shape) -> np.ndarray:
        """Feature-map (height, width) of each pyramid level, [L, 2] int, for an input of ``image_shape``.
        The graph reads the same shapes from its feature maps (:class:`mrcnn.model.rpn.PyramidAnchors`)
        and checks them against this."""
        if self.feature_shape_fn is not None:
            return np.asarray(self.feature_shape_fn(image_shape), dtype=np.int64).reshape(-1, 2)
        return np.array(
            [[int(math.ceil(image_shape[0] / s)), int(math.ceil(image_shape[1] / s))] for s in self.strides]
        )

    def anchors_per_level(self, image_shape) -> list[int]:
        """How many anchors each level has at ``image_shape`` (the level boundaries of :meth:`anchors`)."""
        return [
            len(range(0, int(r), self.anchor_stride)) * len(range(0, int(c), self.anchor_stride)) * len(self.ratios)
            for r, c in self.feature_shapes(image_shape)
        ]

    def anchors(self, image_shape, normalized: bool = False) -> np.ndarray:
        """The anchor pyramid at ``image_shape`` [A, 4] (y1, x1, y2, x2): pixels, or the model's
        normalised coordinates with ``normalized=True``. Cached per input size."""
        image_shape = tuple(int(v) for v in image_shape[:2])
        shapes = tuple(tuple(int(v) for v in row) for row in self.feature_shapes(image_shape))
        anchors = _cached_anchors(self.scales, self.ratios, shapes, self.strides, self.anchor_stride)
        return norm_boxes(anchors, image_shape) if normalized else anchors.copy()


@lru_cache(maxsize=16)
def _cached_anchors(scales, ratios, feature_shapes, strides, anchor_stride):
    return generate_pyramid_anchors(scales, ratios, feature_shapes, strides, anchor_stride)


def compute_backbone_shapes(config, image_shape) -> np.ndarray:
    """Matterport's ``utils.compute_backbone_shapes``: :meth:`AnchorSpec.feature_shapes` of ``config``."""
    return AnchorSpec.from_config(config).feature_shapes(image_shape)


def get_anchors(config, image_shape=None, normalized: bool = False) -> np.ndarray:
    """Matterport's ``MaskRCNN.get_anchors``: :meth:`AnchorSpec.anchors` of ``config`` at ``image_shape``
    (default ``config.IMAGE_SHAPE``)."""
    return AnchorSpec.from_config(config).anchors(
        config.IMAGE_SHAPE if image_shape is None else image_shape, normalized
    )


def generate_pyramid_anchors_tf(scales, ratios, feature_shapes, feature_strides, anchor_stride: int = 1):
    """TF twin of :func:`generate_pyramid_anchors`: ``feature_shapes`` is an int tensor [L, 2]
    (possibly dynamic, e.g. read from the feature maps) -> pixel anchors [A, 4], same order."""
    import tensorflow as tf

    ratios = tf.constant(ratios, tf.float32)
    levels = []
    for level, (scale, stride) in enumerate(zip(scales, feature_strides)):
        heights = scale / tf.sqrt(ratios)
        widths = scale * tf.sqrt(ratios)
        rows, cols = feature_shapes[level][0], feature_shapes[level][1]
        ys = tf.cast(tf.range(0, rows, anchor_stride), tf.float32) * stride
        xs = tf.cast(tf.range(0, cols, anchor_stride), tf.float32) * stride
        cx, cy = tf.meshgrid(xs, ys)
        centers = tf.stack([tf.reshape(cy, [-1]), tf.reshape(cx, [-1])], axis=1)[:, None, :]
        half = tf.stack([heights, widths], axis=1)[None, :, :] / 2.0
        boxes = tf.concat([centers - half, centers + half], axis=2)
        levels.append(tf.reshape(boxes, [-1, 4]))
    return tf.concat(levels, axis=0)
