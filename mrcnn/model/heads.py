"""Box/class head and mask head on pooled ROI features (Matterport layer names)."""
from __future__ import annotations

from keras import layers

from .backbone import BatchNorm
from .roi_align import PyramidROIAlign


def classifier_head(rois, image, feature_maps, *, pool_size, num_classes, fc_size, train_bn):
    """rois [B, N, 4] -> (class logits [B, N, C], probs [B, N, C], deltas [B, N, C, 4]).

    Two "fully connected" layers implemented as a pool-size conv and a 1x1 conv, as Matterport.
    """
    x = PyramidROIAlign((pool_size, pool_size), name="roi_align_classifier")([rois, image] + list(feature_maps))
    x = layers.TimeDistributed(layers.Conv2D(fc_size, pool_size, padding="valid"), name="mrcnn_class_conv1")(x)
    x = layers.TimeDistributed(BatchNorm(train_bn=train_bn, epsilon=1e-3), name="mrcnn_class_bn1")(x)
    x = layers.Activation("relu")(x)
    x = layers.TimeDistributed(layers.Conv2D(fc_size, 1), name="mrcnn_class_conv2")(x)
    x = layers.TimeDistributed(BatchNorm(train_bn=train_bn, epsilon=1e-3), name="mrcnn_class_bn2")(x)
    x = layers.Activation("relu")(x)
    shared = layers.Reshape((-1, fc_size), name="pool_squeeze")(x)
    logits = layers.TimeDistributed(layers.Dense(num_classes), name="mrcnn_class_logits")(shared)
    probs = layers.Activation("softmax", name="mrcnn_class", dtype="float32")(logits)
    deltas = layers.TimeDistributed(layers.Dense(num_classes * 4, activation="linear"), name="mrcnn_bbox_fc")(shared)
    deltas = layers.Reshape((-1, num_classes, 4), name="mrcnn_bbox")(deltas)
    return logits, probs, deltas


def mask_head(rois, image, feature_maps, *, pool_size, num_classes, train_bn):
    """rois [B, N, 4] -> per-class mask probabilities [B, N, 2*pool, 2*pool, C]."""
    x = PyramidROIAlign((pool_size, pool_size), name="roi_align_mask")([rois, image] + list(feature_maps))
    for i in range(1, 5):
        x = layers.TimeDistributed(layers.Conv2D(256, 3, padding="same"), name=f"mrcnn_mask_conv{i}")(x)
        x = layers.TimeDistributed(BatchNorm(train_bn=train_bn, epsilon=1e-3), name=f"mrcnn_mask_bn{i}")(x)
        x = layers.Activation("relu")(x)
    x = layers.TimeDistributed(layers.Conv2DTranspose(256, 2, strides=2, activation="relu"), name="mrcnn_mask_deconv")(x)
    return layers.TimeDistributed(layers.Conv2D(num_classes, 1, activation="sigmoid", dtype="float32"),
                                  name="mrcnn_mask")(x)
