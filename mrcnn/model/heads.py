"""Box/class head and mask head on pooled ROI features (Matterport layer names)."""
from __future__ import annotations

from keras import layers, ops

from .backbone import BN_MOMENTUM, BatchNorm
from .roi_align import PyramidROIAlign


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


def classifier_head(rois, image, feature_maps, *, pool_size, num_classes, fc_size, train_bn):
    """rois [B, N, 4] -> (class logits [B, N, C], probs [B, N, C], deltas [B, N, C, 4]).

    Two "fully connected" layers implemented as a pool-size conv and a 1x1 conv, as Matterport.
    """
    x = PyramidROIAlign((pool_size, pool_size), name="roi_align_classifier")([rois, image] + list(feature_maps))
    x = PerROI(layers.Conv2D(fc_size, pool_size, padding="valid"), name="mrcnn_class_conv1")(x)
    x = PerROI(BatchNorm(train_bn=train_bn, epsilon=1e-3, momentum=BN_MOMENTUM), name="mrcnn_class_bn1")(x)
    x = layers.Activation("relu")(x)
    x = PerROI(layers.Conv2D(fc_size, 1), name="mrcnn_class_conv2")(x)
    x = PerROI(BatchNorm(train_bn=train_bn, epsilon=1e-3, momentum=BN_MOMENTUM), name="mrcnn_class_bn2")(x)
    x = layers.Activation("relu")(x)
    shared = layers.Reshape((-1, fc_size), name="pool_squeeze")(x)
    logits = PerROI(layers.Dense(num_classes), name="mrcnn_class_logits")(shared)
    probs = layers.Activation("softmax", name="mrcnn_class", dtype="float32")(logits)
    deltas = PerROI(layers.Dense(num_classes * 4, activation="linear"), name="mrcnn_bbox_fc")(shared)
    deltas = layers.Reshape((-1, num_classes, 4), name="mrcnn_bbox")(deltas)
    return logits, probs, deltas


def mask_head(rois, image, feature_maps, *, pool_size, num_classes, train_bn, channels=256):
    """rois [B, N, 4] -> per-class mask probabilities [B, N, 2*pool, 2*pool, C]."""
    x = PyramidROIAlign((pool_size, pool_size), name="roi_align_mask")([rois, image] + list(feature_maps))
    for i in range(1, 5):
        x = PerROI(layers.Conv2D(channels, 3, padding="same"), name=f"mrcnn_mask_conv{i}")(x)
        x = PerROI(BatchNorm(train_bn=train_bn, epsilon=1e-3, momentum=BN_MOMENTUM), name=f"mrcnn_mask_bn{i}")(x)
        x = layers.Activation("relu")(x)
    x = PerROI(layers.Conv2DTranspose(channels, 2, strides=2, activation="relu"), name="mrcnn_mask_deconv")(x)
    return PerROI(layers.Conv2D(num_classes, 1, activation="sigmoid", dtype="float32"),
                                  name="mrcnn_mask")(x)
