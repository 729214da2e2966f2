"""Mixed precision: which Keras dtype policy a model is built under, and the layers that stay float32.

``Config.MIXED_PRECISION`` picks the policy: False -> "float32", True or "mixed_float16" -> float16
compute with float32 weights (GPUs; the optimizer then scales the loss), "mixed_bfloat16" -> bfloat16
compute (TPUs, Ampere+ GPUs, CPUs with AVX512-BF16/AMX; no loss scaling needed), "auto" ->
"mixed_bfloat16" where no GPU is visible and the CPU has bfloat16 instructions (oneDNN then runs the
convolutions about 1.5x faster than in float32), "float32" everywhere else. The policy is set only
while a model is built, so building one model never changes the dtype of the next.

Under a mixed policy the convolutions and dense layers compute in 16 bits; box geometry (anchors,
proposal decoding and NMS, IoUs and targets, detection refinement) stays in float32, as in torchvision's
autocast: float16 steps by 1/2048 between 0.5 and 1, half a pixel of a 1024 px image.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform

import keras
from keras import layers

from mrcnn.config import MIXED_PRECISION_POLICIES

#: /proc/cpuinfo flags of x86 CPUs with bfloat16 dot products (AMD Zen 4+, Intel Cooper Lake and
#: Sapphire Rapids+), which oneDNN uses for bfloat16 convolutions and matmuls. Elsewhere bfloat16 is
#: emulated and slower than float32.
CPU_BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")
#: ``ONEDNN_MAX_CPU_ISA`` caps below oneDNN's bfloat16 kernels (``AVX2`` emulates an AVX2-only CPU).
ONEDNN_ISAS_WITHOUT_BFLOAT16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags (Linux); empty where /proc/cpuinfo is absent (macOS, Windows)."""
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def auto_policy(flags, gpus: int, machine: str | None = None, onednn_max_isa: str | None = None) -> str:
    """What ``MIXED_PRECISION="auto"`` means on a machine: bfloat16 compute on an x86 CPU with
    bfloat16 instructions when no GPU is visible and ``onednn_max_isa`` (``ONEDNN_MAX_CPU_ISA``) does
    not cap oneDNN below them, float32 otherwise (on a GPU, pick True or "mixed_bfloat16" yourself)."""
    machine = (machine or platform.machine()).lower()
    capped = (onednn_max_isa or "").strip().upper() in ONEDNN_ISAS_WITHOUT_BFLOAT16
    if (
        gpus == 0
        and machine in ("x86_64", "amd64")
        and not capped
        and any(flag in flags for flag in CPU_BFLOAT16_FLAGS)
    ):
        return "mixed_bfloat16"
    return "float32"


@functools.cache
def _auto_policy_here() -> str:
    import tensorflow as tf

    return auto_policy(
        cpu_flags(),
        gpus=len(tf.config.list_physical_devices("GPU")),
        onednn_max_isa=os.environ.get("ONEDNN_MAX_CPU_ISA"),
    )


def policy_name(mixed_precision) -> str:
    """The Keras dtype policy for a ``Config.MIXED_PRECISION`` value (``Config.validate`` rejects others)."""
    if isinstance(mixed_precision, bool):
        return MIXED_PRECISION_POLICIES[0] if mixed_precision else "float32"
    if mixed_precision == "auto":
        return _auto_policy_here()
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
