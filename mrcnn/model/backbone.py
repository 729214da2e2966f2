"""Backbones returning the C2..C5 feature maps.

ResNet-50/101 keep Matterport's layer names (``conv1``, ``bn_conv1``, ``res2a_branch2a`` ...), so
``mask_rcnn_coco.h5`` loads by name. ResNet-18/34 (basic blocks, same naming scheme) and
MobileNetV2 (keras.applications) are small backbones for CPU demos. ``BACKBONE_STRIDES`` for any
backbone can be derived with :func:`derive_strides` instead of typed by hand.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

RESNET_BLOCKS = {
    "resnet18": (2, 2, 2, 2),
    "resnet34": (3, 4, 6, 3),
    "resnet50": (3, 4, 6, 3),
    "resnet101": (3, 4, 23, 3),
}
BOTTLENECK = {"resnet50", "resnet101"}


#: Moving-average momentum. Keras' 0.99 lags for hundreds of steps, which leaves the moving
#: statistics (used at validation/inference) far behind when BN trains from scratch on short
#: CPU runs; 0.9 catches up within tens of steps. Frozen BN (TRAIN_BN=False) never updates them.
BN_MOMENTUM = 0.9


class BatchNorm(layers.BatchNormalization):
    """BatchNormalization that can be frozen (inference mode) while the rest trains.

    Matterport trains with small batches, so BN statistics and affine terms stay frozen by default
    (``TRAIN_BN = False``): the layer then always normalises with its moving averages.
    """

    def __init__(self, *args, train_bn: bool | None = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.train_bn = train_bn

    def call(self, inputs, training=None):
        # Matterport's TRAIN_BN: False = frozen (always inference mode), None = normal
        # (batch statistics while training), True = batch statistics even at inference.
        if self.train_bn is False:
            training = False
        elif self.train_bn is True:
            training = True
        if len(inputs.shape) != 4 or self.axis not in (-1, 3) or not (self.scale and self.center) or self.renorm:
            return super().call(inputs, training=training)
        return self._fused(inputs, bool(training and self.trainable))

    def _fused(self, inputs, batch_statistics: bool):
        """Keras' BatchNormalization on NHWC maps as one ``FusedBatchNormV3`` kernel.

        Keras 3 normalises with separate moment, multiply and add ops, each a pass over the map
        forward and more backward; the fused kernel does one pass each way (its gradient also
        gives gamma's and beta's), and in inference graphs oneDNN folds it into the conv before
        it. Same arithmetic, same moving-average rule as Keras (biased batch variance).
        """
        x = tf.cast(inputs, tf.float32)  # as Keras: statistics in float32 under mixed precision
        gamma, beta = tf.convert_to_tensor(self.gamma), tf.convert_to_tensor(self.beta)
        if not batch_statistics:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                x,
                gamma,
                beta,
                mean=tf.convert_to_tensor(self.moving_mean),
                variance=tf.convert_to_tensor(self.moving_variance),
                epsilon=self.epsilon,
                is_training=False,
            )
            return tf.cast(y, self.compute_dtype)
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, epsilon=self.epsilon, is_training=True)
        # The kernel returns the Bessel-corrected variance (n / (n - 1), 1 when n == 1); Keras
        # averages the biased one into its moving variance.
        n = tf.cast(tf.size(x, out_type=tf.int64) // tf.cast(tf.shape(x)[-1], tf.int64), tf.float32)
        variance = variance * tf.maximum(n - 1.0, 1.0) / n
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return tf.cast(y, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "train_bn": self.train_bn}


def _bn(name, train_bn):
    return BatchNorm(name=name, train_bn=train_bn, epsilon=1e-3, momentum=BN_MOMENTUM)


def _bottleneck(x, filters, stage, block, strides, train_bn, projection):
    f1, f2, f3 = filters
    base, bn = f"res{stage}{block}_branch", f"bn{stage}{block}_branch"
    shortcut = x
    y = layers.Conv2D(f1, 1, strides=strides, name=base + "2a")(x)
    y = layers.Activation("relu")(_bn(bn + "2a", train_bn)(y))
    y = layers.Conv2D(f2, 3, padding="same", name=base + "2b")(y)
    y = layers.Activation("relu")(_bn(bn + "2b", train_bn)(y))
    y = layers.Conv2D(f3, 1, name=base + "2c")(y)
    y = _bn(bn + "2c", train_bn)(y)
    if projection:
        shortcut = layers.Conv2D(f3, 1, strides=strides, name=base + "1")(x)
        shortcut = _bn(bn + "1", train_bn)(shortcut)
    return layers.Activation("relu", name=f"res{stage}{block}_out")(layers.Add()([y, shortcut]))


def _basic(x, filters, stage, block, strides, train_bn, projection):
    f = filters[-1]
    base, bn = f"res{stage}{block}_branch", f"bn{stage}{block}_branch"
    shortcut = x
    y = layers.Conv2D(f, 3, strides=strides, padding="same", name=base + "2a")(x)
    y = layers.Activation("relu")(_bn(bn + "2a", train_bn)(y))
    y = layers.Conv2D(f, 3, padding="same", name=base + "2b")(y)
    y = _bn(bn + "2b", train_bn)(y)
    if projection:
        shortcut = layers.Conv2D(f, 1, strides=strides, name=base + "1")(x)
        shortcut = _bn(bn + "1", train_bn)(shortcut)
    return layers.Activation("relu", name=f"res{stage}{block}_out")(layers.Add()([y, shortcut]))


def resnet_graph(input_image, architecture: str, train_bn: bool | None = False):
    """ResNet C2..C5 with Matterport's layer names. ``architecture`` in RESNET_BLOCKS."""
    if architecture not in RESNET_BLOCKS:
        raise ValueError(f"unknown ResNet {architecture!r}; choose one of {sorted(RESNET_BLOCKS)}")
    bottleneck = architecture in BOTTLENECK
    block_fn = _bottleneck if bottleneck else _basic
    x = layers.ZeroPadding2D((3, 3))(input_image)
    x = layers.Conv2D(64, 7, strides=2, name="conv1")(x)
    x = layers.Activation("relu")(_bn("bn_conv1", train_bn)(x))
    x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    outputs = []
    for stage, count in zip((2, 3, 4, 5), RESNET_BLOCKS[architecture]):
        width = 64 * 2 ** (stage - 2)
        filters = (width, width, width * 4) if bottleneck else (width,)
        for i in range(count):
            strides = (2 if stage > 2 else 1) if i == 0 else 1
            projection = i == 0 and (bottleneck or stage > 2)
            x = block_fn(x, filters, stage, chr(ord("a") + i), strides, train_bn, projection)
        outputs.append(x)
    return outputs


MOBILENETV2_TAPS = ("block_2_add", "block_5_add", "block_12_add", "out_relu")


def mobilenetv2_graph(input_image, mean_pixel, train_bn: bool | None = False, weights=None):
    """MobileNetV2 (keras.applications) feature taps at strides 4, 8, 16, 32.

    ``weights="imagenet"`` downloads the ImageNet weights on the user's machine. Its BatchNorm
    layers are frozen like ours unless ``train_bn``. The input is expected in [-1, 1]: the model
    rescales its molded input (image - MEAN_PIXEL) accordingly inside the graph.
    """
    # Bring molded pixels (x - mean) back to [0, 255], then to MobileNet's [-1, 1].
    x = AddConstant(mean_pixel, name="mobilenet_unmold")(input_image)
    x = layers.Rescaling(1 / 127.5, offset=-1.0, name="mobilenet_rescale")(x)
    base = keras.applications.MobileNetV2(input_tensor=x, include_top=False, weights=weights)
    for layer in base.layers:
        if isinstance(layer, layers.BatchNormalization) and train_bn is False:
            layer.trainable = False
    return [base.get_layer(name).output for name in MOBILENETV2_TAPS]


class AddConstant(layers.Layer):
    """Adds a fixed per-channel vector (e.g. MEAN_PIXEL) to its input."""

    def __init__(self, value, **kwargs):
        super().__init__(**kwargs)
        self.value = [float(v) for v in np.asarray(value).ravel()]

    def call(self, inputs):
        return inputs + keras.ops.convert_to_tensor(self.value, dtype=inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "value": self.value}


def build_backbone(input_image, config):
    """C2..C5 for ``config.BACKBONE`` (a known name or a callable ``f(input_image, config)``)."""
    if callable(config.BACKBONE):
        return list(config.BACKBONE(input_image, config))
    name = config.BACKBONE
    if name == "mobilenetv2":
        return mobilenetv2_graph(input_image, config.MEAN_PIXEL, config.TRAIN_BN)
    return resnet_graph(input_image, name, config.TRAIN_BN)


def derive_strides(config, probe_size: int = 256) -> list[int]:
    """Strides of P2..P6 for the configured backbone, measured on a symbolic probe input.

    P6 is P5 subsampled by 2, as in Matterport. Use this to set ``BACKBONE_STRIDES`` for a new
    backbone instead of typing it by hand.
    """
    probe = keras.Input((probe_size, probe_size, 3))
    feats = build_backbone(probe, config)
    strides = [int(round(probe_size / f.shape[1])) for f in feats]
    return strides + [strides[-1] * 2]
