"""Build the Keras graphs. Reads as the data flow: backbone -> FPN -> RPN -> proposals -> heads.

The config -> constructor-argument mapping for every layer lives here, in one place, so each
layer can be built and tested on its own without a Config.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from mrcnn.ops.anchors import compute_backbone_shapes
from mrcnn.ops.boxes import norm_boxes_tf

from .backbone import build_backbone
from .box_head import DetectionBoxes, DetectionLayer, classifier_head
from .fpn import fpn_graph
from .mask_head import PositiveROIs, mask_head
from .precision import Float32Layer
from .roi_targets import DetectionTargetLayer
from .rpn import ProposalLayer, PyramidAnchors, RPNHead


class NormalizeBoxes(Float32Layer):
    """Pixel boxes [B, N, 4] -> normalised, using the size of the image input."""

    def call(self, inputs):
        boxes, image = inputs
        return norm_boxes_tf(boxes, tf.shape(image)[1:3])

    def compute_output_shape(self, input_shape):
        return input_shape[0]


def _check_feature_shapes(image, feature_maps, config):
    """Where the input size is static, the feature maps must have the shapes the numpy anchors
    (RPN targets) assume, :func:`mrcnn.ops.anchors.compute_backbone_shapes`."""
    actual = [tuple(p.shape[1:3]) for p in feature_maps]
    if None in tuple(image.shape[1:3]) or any(v is None for shape in actual for v in shape):
        return
    expected = [tuple(int(v) for v in row) for row in compute_backbone_shapes(config, tuple(image.shape[1:3]))]
    if expected != actual:
        fix = "COMPUTE_BACKBONE_SHAPE" if callable(config.BACKBONE) else "BACKBONE_STRIDES"
        raise ValueError(
            f"the backbone's feature maps P2..P6 are {actual} but the config gives {expected}; "
            f"fix {fix} to match the backbone"
        )


def _features(image, config):
    c2, c3, c4, c5 = build_backbone(image, config)
    p2, p3, p4, p5, p6 = fpn_graph(c2, c3, c4, c5, config.TOP_DOWN_PYRAMID_SIZE)
    _check_feature_shapes(image, [p2, p3, p4, p5, p6], config)
    return [p2, p3, p4, p5, p6], [p2, p3, p4, p5]  # RPN sees P2..P6, the heads P2..P5


def _rpn_and_proposals(image, rpn_features, config, proposal_count, nms="op"):
    rpn = RPNHead(len(config.RPN_ANCHOR_RATIOS), depth=config.RPN_CONV_CHANNELS, anchor_stride=config.RPN_ANCHOR_STRIDE)
    rpn_logits, rpn_probs, rpn_deltas = rpn(rpn_features)
    anchors = PyramidAnchors(
        config.RPN_ANCHOR_SCALES,
        config.RPN_ANCHOR_RATIOS,
        config.BACKBONE_STRIDES,
        config.RPN_ANCHOR_STRIDE,
        name="anchors",
    )([image] + list(rpn_features))
    rpn_rois = ProposalLayer(
        proposal_count, config.RPN_NMS_THRESHOLD, config.PRE_NMS_LIMIT, config.RPN_BBOX_STD_DEV, nms=nms, name="ROI"
    )([rpn_probs, rpn_deltas, anchors])
    return rpn_logits, rpn_probs, rpn_deltas, rpn_rois


def _head_kwargs(config):
    return dict(num_classes=config.NUM_CLASSES, train_bn=config.TRAIN_BN)


def build_training_graph(config, model_class=keras.Model):
    """Inputs: the dict of :func:`mrcnn.data.pipeline.input_signature`. Outputs: a dict of the
    tensors the losses and diagnostics need."""
    from mrcnn.data.pipeline import input_signature

    spec = input_signature(config)
    inputs = {name: keras.Input(shape=s.shape, dtype=s.dtype, name=name) for name, s in spec.items()}
    image = inputs["input_image"]
    rpn_features, head_features = _features(image, config)
    rpn_logits, _, rpn_deltas, rpn_rois = _rpn_and_proposals(image, rpn_features, config, config.POST_NMS_ROIS_TRAINING)
    gt_boxes = NormalizeBoxes(name="gt_boxes_normalized")([inputs["input_gt_boxes"], image])
    rois, target_class_ids, target_bbox, target_mask = DetectionTargetLayer(
        config.TRAIN_ROIS_PER_IMAGE,
        config.ROI_POSITIVE_RATIO,
        config.BBOX_STD_DEV,
        config.MASK_SHAPE,
        config.USE_MINI_MASK,
        name="proposal_targets",
    )([rpn_rois, inputs["input_gt_class_ids"], gt_boxes, inputs["input_gt_masks"]])
    class_logits, _, bbox = classifier_head(
        rois,
        image,
        head_features,
        pool_size=config.POOL_SIZE,
        fc_size=config.FPN_CLASSIF_FC_LAYERS_SIZE,
        **_head_kwargs(config),
    )
    # Positives come first among the sampled ROIs: the mask head only needs those.
    max_positives = int(config.TRAIN_ROIS_PER_IMAGE * config.ROI_POSITIVE_RATIO)
    mask_class_ids = target_class_ids[:, :max_positives]
    masks = mask_head(
        rois[:, :max_positives],
        image,
        head_features,
        pool_size=config.MASK_POOL_SIZE,
        channels=config.MASK_HEAD_CHANNELS,
        keep=PositiveROIs(name="positive_rois")(mask_class_ids),
        **_head_kwargs(config),
    )
    outputs = {
        "rpn_class_logits": rpn_logits,
        "rpn_bbox": rpn_deltas,
        "rpn_rois": rpn_rois,
        "rois": rois,
        "target_class_ids": target_class_ids,
        "target_bbox": target_bbox,
        "target_mask": target_mask,
        "mask_class_ids": mask_class_ids,
        "mrcnn_class_logits": class_logits,
        "mrcnn_bbox": bbox,
        "mrcnn_mask": masks,
        "gt_boxes_normalized": gt_boxes,
    }
    return model_class(inputs=inputs, outputs=outputs, name="mask_rcnn")


def build_inference_graph(config, export: bool = False):
    """Inputs: molded images [B, H, W, 3] (any size divisible by 64) and image meta.
    Outputs: detections [B, D, 6] (normalised boxes, class id, score), class probs, box deltas,
    masks [B, D, mh, mw, C] and the RPN's proposals.

    ``export=True``: the same model (same layer names and weights, tested equal) built from ops
    that ONNX and TFLite builtins have: gather-based ROIAlign instead of CropAndResize, and
    :func:`mrcnn.ops.nms.nms_padded_tf` without map_fn instead of the NMS op (RPN and detections).
    """
    nms, sampler = ("padded", "gather") if export else ("op", "crop_and_resize")
    image = keras.Input(shape=(None, None, config.IMAGE_CHANNEL_COUNT), name="input_image")
    meta = keras.Input(shape=(config.IMAGE_META_SIZE,), name="input_image_meta")
    rpn_features, head_features = _features(image, config)
    _, rpn_probs, rpn_deltas, rpn_rois = _rpn_and_proposals(
        image, rpn_features, config, config.POST_NMS_ROIS_INFERENCE, nms=nms
    )
    _, class_probs, bbox = classifier_head(
        rpn_rois,
        image,
        head_features,
        pool_size=config.POOL_SIZE,
        fc_size=config.FPN_CLASSIF_FC_LAYERS_SIZE,
        sampler=sampler,
        **_head_kwargs(config),
    )
    detections = DetectionLayer(
        config.BBOX_STD_DEV,
        config.DETECTION_MIN_CONFIDENCE,
        config.DETECTION_NMS_THRESHOLD,
        config.DETECTION_MAX_INSTANCES,
        nms=nms,
        name="mrcnn_detection",
    )([rpn_rois, class_probs, bbox, meta])
    # The mask head runs on the real detections only (class id > 0), not on the zero padding up to
    # DETECTION_MAX_INSTANCES.
    masks = mask_head(
        DetectionBoxes(name="detection_boxes")(detections),
        image,
        head_features,
        pool_size=config.MASK_POOL_SIZE,
        channels=config.MASK_HEAD_CHANNELS,
        sampler=sampler,
        keep=PositiveROIs(name="real_detections")(detections[:, :, 4]),
        **_head_kwargs(config),
    )
    outputs = {
        "detections": detections,
        "mrcnn_class": class_probs,
        "mrcnn_bbox": bbox,
        "mrcnn_mask": masks,
        "rpn_rois": rpn_rois,
        "rpn_class": rpn_probs,
        "rpn_bbox": rpn_deltas,
    }
    return keras.Model(inputs={"input_image": image, "input_image_meta": meta}, outputs=outputs, name="mask_rcnn")
