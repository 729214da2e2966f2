"""Reductions shared by the heads' losses (each head's losses live beside its layers)."""

from __future__ import annotations

import tensorflow as tf


def smooth_l1(y_true, y_pred):
    """Element-wise smooth-L1 (Huber with delta 1), same shape as the inputs."""
    diff = tf.abs(y_true - y_pred)
    return tf.where(diff < 1.0, 0.5 * diff**2, diff - 0.5)


def mean_or_zero(values):
    """Mean of all elements, 0 (not NaN) when ``values`` is empty (e.g. an image without objects)."""
    return tf.math.divide_no_nan(tf.reduce_sum(values), tf.cast(tf.size(values), values.dtype))
