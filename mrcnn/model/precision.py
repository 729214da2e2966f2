"""Mixed precision: which Keras dtype policy a model is built under, and the layers that stay float32.

``Config.MIXED_PRECISION`` picks the policy: False -> "float32", True or "mixed_float16" -> float16
compute with float32 weights (GPUs; the optimizer then scales the loss), "mixed_bfloat16" -> bfloat16
compute (TPUs, Ampere+ GPUs, CPUs with AVX512-BF16/AMX; no loss scaling needed). The policy is set only
while a model is built, so building one model never changes the dtype of the next.

Under a mixed policy the convolutions and dense layers compute in 16 bits; box geometry (anchors,
proposal decoding and NMS, IoUs and targets, detection refinement) stays in float32, as in torchvision's
autocast: float16 steps by 1/2048 between 0.5 and 1, half a pixel of a 1024 px image.
"""
from __future__ import annotations

import contextlib

import keras
from keras import layers

from mrcnn.config import MIXED_PRECISION_POLICIES


def policy_name(mixed_precision) -> str:
    """The Keras dtype policy for a ``Config.MIXED_PRECISION`` value (``Config.validate`` rejects others)."""
    if isinstance(mixed_precision, bool):
        return MIXED_PRECISION_POLICIES[0] if mixed_precision else "float32"
    return mixed_precision


def needs_loss_scaling(mixed_precision) -> bool:
    """float16 gradients underflow without loss scaling; bfloat16 has float32's range."""
    return policy_name(mixed_precision) == "mixed_float16"


class LossScaleOptimizer(keras.mixed_precision.LossScaleOptimizer):
    """Keras' dynamic loss scaling, with every replica agreeing whether to apply a step.

    Keras checks the gradients for inf/NaN per replica, before the inner optimizer all-reduces them,
    then branches: apply (an all-reduce) or skip (none). Under MultiWorkerMirroredStrategy one worker
    whose float16 gradients overflowed skipped while the other waited in the all-reduce: training
    hung. Here the replicas all-reduce the flag first, so all skip when any overflowed."""

    def check_finite(self, grads):
        import tensorflow as tf

        finite = super().check_finite(grads)
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return finite
        overflowed = context.all_reduce(tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(finite, tf.float32))
        return tf.equal(overflowed, 0.0)


@contextlib.contextmanager
def build_policy(mixed_precision):
    """Build layers under the policy of ``mixed_precision``; the global policy is restored after."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy_name(mixed_precision))
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


class Float32Layer(layers.Layer):
    """Base of the box-geometry layers: they compute in float32 under any policy (their float inputs
    are cast up on the way in)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
