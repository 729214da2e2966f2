"""The heads' pure functions on small hand-made tensors (targets, refinement, proposals, each loss,
mask selection), and the in-graph anchors against the numpy ones for a custom backbone."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import facemask
from mrcnn.config import Config
from mrcnn.model import MaskRCNN
from mrcnn.model.backbone import BatchNorm
from mrcnn.model.box_head import WholeInputConv2D, box_losses, mrcnn_bbox_loss, mrcnn_class_loss, refine_detections
from mrcnn.model.mask_head import (
    PositiveROIs,
    mask_accuracy,
    mask_head,
    mrcnn_mask_loss,
    select_class_masks,
    select_class_masks_tf,
)
from mrcnn.model.roi_targets import detection_targets
from mrcnn.model.rpn import propose, rpn_bbox_loss, rpn_class_loss, rpn_losses
from mrcnn.ops.anchors import get_anchors
from mrcnn.ops.boxes import box_refinement

LN2 = math.log(2.0)
STD = [0.1, 0.1, 0.2, 0.2]


def f32(x):
    return tf.constant(np.asarray(x, np.float32))


# ------------------------------------------------------------------------------------------ RPN
def test_rpn_class_loss_averages_cross_entropy_over_non_neutral_anchors():
    match = tf.constant([[[1], [-1], [0]]], tf.int32)
    # positive: p(fg) = 3/4; negative: p(bg) = 1/2; the neutral anchor's huge logits must not count.
    logits = f32([[[0.0, math.log(3.0)], [0.0, 0.0], [50.0, -50.0]]])
    want = (-math.log(0.75) + LN2) / 2
    assert rpn_class_loss(match, logits).numpy() == pytest.approx(want, rel=1e-6)
    assert rpn_class_loss(tf.zeros([1, 3, 1], tf.int32), logits).numpy() == 0.0  # nothing to average: 0, not NaN


def test_rpn_bbox_loss_pairs_positives_with_target_rows_in_anchor_order():
    match = tf.constant([[[1], [0], [1]]], tf.int32)
    targets = f32([[[0.5, 0, 0, 0], [2, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]])  # rows: anchor 0, anchor 2, padding
    pred = f32([[[0, 0, 0, 0], [9, 9, 9, 9], [2, 0, 0, 0]]])
    # anchor 0: smooth-L1(0.5) = 0.125; anchor 2 matches its target exactly; mean over 2 x 4 values.
    assert rpn_bbox_loss(targets, match, pred).numpy() == pytest.approx(0.125 / 8)
    losses = rpn_losses(match, targets, f32(np.zeros((1, 3, 2))), pred)
    assert set(losses) == {"rpn_class_loss", "rpn_bbox_loss"}


def test_propose_decodes_clips_and_suppresses():
    anchors = f32([[0.1, 0.1, 0.3, 0.3], [0.11, 0.1, 0.31, 0.3], [0.6, 0.6, 1.2, 0.9]])
    scores = f32([0.9, 0.8, 0.7])
    deltas = f32([[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])  # x std 0.1: anchor 0 moves down 0.1 * 0.2
    kwargs = dict(proposal_count=3, nms_threshold=0.7, std_dev=f32(STD))
    got = propose(scores, deltas, anchors, pre_nms_limit=3, **kwargs).numpy()
    # Anchor 1 overlaps the refined anchor 0 (IoU 0.9) and goes; anchor 2 is clipped to [0, 1]; zero padding.
    np.testing.assert_allclose(got, [[0.12, 0.1, 0.32, 0.3], [0.6, 0.6, 1.0, 0.9], [0, 0, 0, 0]], atol=1e-6)
    top1 = propose(scores, deltas, anchors, pre_nms_limit=1, **kwargs).numpy()  # top-k before NMS
    np.testing.assert_allclose(top1, [[0.12, 0.1, 0.32, 0.3], [0, 0, 0, 0], [0, 0, 0, 0]], atol=1e-6)


# ------------------------------------------------------------------------------------- box head
def test_detection_targets_samples_positives_negatives_and_skips_crowds():
    gt_boxes = f32([[0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9]])
    gt_class_ids = tf.constant([2, -1], tf.int32)  # the second box is a crowd
    gt_masks = tf.ones([8, 8, 2], tf.bool)
    proposals = f32(
        [
            [0.1, 0.1, 0.5, 0.55],  # IoU 0.89 with GT 0: positive
            [0.0, 0.6, 0.2, 0.9],  # IoU 0: negative
            [0, 0, 0, 0],  # padding
            [0.55, 0.55, 0.8, 0.8],
        ]
    )  # touches the crowd: neither
    rois, class_ids, deltas, masks = detection_targets(
        proposals,
        gt_class_ids,
        gt_boxes,
        gt_masks,
        rois_per_image=4,
        positive_ratio=0.5,
        bbox_std_dev=STD,
        mask_shape=(4, 4),
        use_mini_mask=False,
        append_gt=False,
    )
    np.testing.assert_allclose(rois.numpy(), [[0.1, 0.1, 0.5, 0.55], [0.0, 0.6, 0.2, 0.9], [0] * 4, [0] * 4])
    np.testing.assert_array_equal(class_ids.numpy(), [2, 0, 0, 0])
    want = box_refinement(np.array([[0.1, 0.1, 0.5, 0.55]]), np.array([[0.1, 0.1, 0.5, 0.5]])) / STD
    np.testing.assert_allclose(deltas.numpy()[0], want[0], atol=1e-6)
    np.testing.assert_array_equal(deltas.numpy()[1:], 0)
    assert masks.shape == (2, 4, 4)  # only the positive slots have mask targets
    np.testing.assert_array_equal(masks.numpy(), np.stack([np.ones((4, 4)), np.zeros((4, 4))]))


def test_detection_targets_appends_gt_as_proposals():
    rois, class_ids, _, _ = detection_targets(
        f32([[0.0, 0.6, 0.2, 0.9]]),
        tf.constant([1], tf.int32),
        f32([[0.1, 0.1, 0.5, 0.5]]),
        tf.ones([8, 8, 1], tf.bool),
        rois_per_image=4,
        positive_ratio=0.5,
        bbox_std_dev=STD,
        mask_shape=(4, 4),
        use_mini_mask=False,
    )
    np.testing.assert_array_equal(class_ids.numpy(), [1, 0, 0, 0])
    np.testing.assert_allclose(rois.numpy()[:2], [[0.1, 0.1, 0.5, 0.5], [0.0, 0.6, 0.2, 0.9]])


def test_mrcnn_class_loss_ignores_padding_and_inactive_classes():
    target = tf.constant([[1, 0, 0]], tf.int32)
    logits = f32([[[0, 2], [0, 0], [9, -9]]])
    rois = f32([[[0.1, 0.1, 0.2, 0.2], [0.3, 0.3, 0.4, 0.4], [0, 0, 0, 0]]])
    both = mrcnn_class_loss(target, logits, f32([[1, 1]]), rois).numpy()
    assert both == pytest.approx((math.log(1 + math.exp(-2)) + LN2) / 2, rel=1e-6)
    # Class 1 inactive in this image's source: the ROI predicted as class 1 is not counted.
    assert mrcnn_class_loss(target, logits, f32([[1, 0]]), rois).numpy() == pytest.approx(LN2, rel=1e-6)


def test_mrcnn_bbox_loss_uses_the_true_class_deltas_of_positives_only():
    target_ids = tf.constant([[1, 0]], tf.int32)
    target_bbox = f32([[[1, 0, 0, 0], [5, 5, 5, 5]]])
    pred = np.zeros((1, 2, 2, 4), np.float32)
    pred[0, 0, 1] = [1, 0, 0, 3]  # class 1 of the positive: off by 3 in one value -> smooth-L1 2.5
    pred[0, 0, 0] = [99, 99, 99, 99]  # another class: ignored
    assert mrcnn_bbox_loss(target_bbox, target_ids, f32(pred)).numpy() == pytest.approx(2.5 / 4)
    no_positives = mrcnn_bbox_loss(target_bbox, tf.zeros([1, 2], tf.int32), f32(pred)).numpy()
    assert no_positives == 0.0
    assert set(
        box_losses(target_ids, target_bbox, f32(np.zeros((1, 2, 2))), f32(pred), f32([[1, 1]]), f32(np.ones((1, 2, 4))))
    ) == {"mrcnn_class_loss", "mrcnn_bbox_loss"}


def test_refine_detections_applies_deltas_clips_and_runs_per_class_nms():
    rois = f32(
        [
            [0.1, 0.1, 0.3, 0.3],
            [0.11, 0.1, 0.31, 0.3],
            [0.5, 0.5, 0.9, 0.9],
            [0, 0, 0, 0],
            [0.6, 0.1, 0.7, 0.2],
            [0.1, 0.1, 0.3, 0.3],
        ]
    )
    probs = f32(
        [
            [0.1, 0.9, 0.0],  # class 1, 0.9
            [0.2, 0.8, 0.0],  # class 1, overlaps ROI 0: suppressed
            [0.3, 0.0, 0.7],  # class 2, clipped by the window
            [0.0, 1.0, 0.0],  # padding ROI: dropped
            [0.3, 0.4, 0.3],  # below min_confidence
            [0.4, 0.0, 0.6],
        ]
    )  # class 2 on ROI 0's box: another class, kept
    deltas = np.zeros((6, 3, 4), np.float32)
    deltas[0, 1] = [1, 0, 0, 0]  # x std 0.1: moves ROI 0 down by 0.1 * 0.2
    got = refine_detections(
        rois,
        probs,
        f32(deltas),
        f32([0, 0, 0.8, 0.8]),
        bbox_std_dev=STD,
        min_confidence=0.5,
        nms_threshold=0.3,
        max_instances=4,
    ).numpy()
    np.testing.assert_allclose(
        got,
        [
            [0.12, 0.1, 0.32, 0.3, 1, 0.9],
            [0.5, 0.5, 0.8, 0.8, 2, 0.7],
            [0.1, 0.1, 0.3, 0.3, 2, 0.6],
            [0, 0, 0, 0, 0, 0],
        ],
        atol=1e-6,
    )


@pytest.mark.parametrize("profile", ["gpu", "cpu", "tiny"])
def test_face_mask_profiles_keep_an_object_nested_in_another(profile):
    """A plate (0.05..0.95) around a slice of bread (0.1..0.6): box IoU 0.31. The face-mask profiles'
    NMS (0.5, torchvision's) keeps both; Matterport's 0.3 keeps only the more confident one."""
    rois = f32([[0.1, 0.1, 0.6, 0.6], [0.05, 0.05, 0.95, 0.95]])
    probs = f32([[0.05, 0.95], [0.1, 0.9]])
    deltas = np.zeros((2, 2, 4), np.float32)

    def detect(config):
        return refine_detections(
            rois,
            probs,
            f32(deltas),
            f32([0, 0, 1, 1]),
            bbox_std_dev=STD,
            min_confidence=0.5,
            nms_threshold=config.DETECTION_NMS_THRESHOLD,
            max_instances=4,
        ).numpy()

    assert (detect(facemask.make_config(profile))[:, 4] > 0).sum() == 2
    assert (detect(Config())[:, 4] > 0).sum() == 1


# ------------------------------------------------------------------------------------ mask head
def test_mask_loss_and_accuracy_on_the_true_class_channel():
    target = f32([[[[1, 0], [0, 1]]]])  # [B=1, N=1, 2, 2]
    ids = tf.constant([[1]], tf.int32)
    pred = np.zeros((1, 1, 2, 2, 2), np.float32)  # class 0 channel all 0: would cost ~16 per pixel if used
    pred[..., 1] = 0.5
    assert mrcnn_mask_loss(target, ids, f32(pred)).numpy() == pytest.approx(LN2, rel=1e-6)
    pred[..., 1] = [[0.9, 0.9], [0.1, 0.1]]
    assert mask_accuracy(target, ids, f32(pred)).numpy() == pytest.approx(0.5)
    assert mrcnn_mask_loss(target, tf.zeros([1, 1], tf.int32), f32(pred)).numpy() == 0.0


def test_select_class_masks_numpy_and_tf_pick_each_rois_class():
    masks = np.random.default_rng(0).random((3, 4, 5, 3)).astype(np.float32)
    class_ids = np.array([2, 0, 1])
    want = np.stack([masks[0, :, :, 2], masks[1, :, :, 0], masks[2, :, :, 1]])
    np.testing.assert_array_equal(select_class_masks(masks, class_ids), want)
    np.testing.assert_array_equal(select_class_masks_tf(tf.constant(masks), tf.constant(class_ids)).numpy(), want)


# ------------------------------------------------------- speed paths that must compute the same thing
def test_whole_input_conv_equals_the_valid_conv_forward_and_backward():
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(6, 7, 7, 16)).astype(np.float32))
    conv = keras.layers.Conv2D(32, 7, padding="valid", activation="relu")
    fc = WholeInputConv2D(32, 7, activation="relu")
    conv.build(x.shape), fc.build(x.shape)
    fc.set_weights(conv.get_weights())
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        want, got = conv(x), fc(x)
        loss_want, loss_got = tf.reduce_sum(want * want), tf.reduce_sum(got * got)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)
    for a, b in zip(
        tape.gradient(loss_got, [x, fc.kernel, fc.bias]), tape.gradient(loss_want, [x, conv.kernel, conv.bias])
    ):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="must equal the kernel"):
        fc(tf.zeros([1, 9, 9, 16]))


@pytest.mark.parametrize("train_bn", [None, False, True])
def test_fused_batchnorm_equals_keras_batchnorm_forward_backward_and_moving_statistics(train_bn):
    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(2.0, 3.0, size=(2, 5, 6, 8)).astype(np.float32))
    fused, plain = (BatchNorm(train_bn=train_bn, epsilon=1e-3, momentum=0.9) for _ in range(2))
    fused.build(x.shape), plain.build(x.shape)
    initial = [rng.normal(1, 0.2, 8), rng.normal(0, 0.2, 8), rng.normal(1, 0.5, 8), rng.uniform(0.5, 4, 8)]
    fused.set_weights(initial), plain.set_weights(initial)
    upstream = tf.constant(rng.normal(size=x.shape).astype(np.float32))

    def keras_path(inputs, training=None):  # what the layer computed before the fused kernel
        training = {False: False, True: True}.get(train_bn, training)
        return keras.layers.BatchNormalization.call(plain, inputs, training=training)

    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        got, want = fused(x, training=True), keras_path(x, training=True)
        loss_got, loss_want = tf.reduce_sum(got * upstream), tf.reduce_sum(want * upstream)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)
    for a, b in zip(
        tape.gradient(loss_got, [x, fused.gamma, fused.beta]), tape.gradient(loss_want, [x, plain.gamma, plain.beta])
    ):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)
    # Moving statistics move (or stay frozen) the same way, and inference mode agrees too.
    for a, b in zip(fused.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert np.allclose(fused.moving_mean.numpy(), initial[2]) == (train_bn is False)
    np.testing.assert_allclose(
        fused(x, training=False).numpy(), keras_path(x, training=False).numpy(), rtol=1e-5, atol=1e-5
    )


def _two_mask_heads(train_bn):
    """The same mask head weights built twice: on every ROI, and packed on the ``keep`` ROIs."""
    rois, keep = keras.Input((5, 4), batch_size=2), keras.Input((5,), batch_size=2, dtype="bool")
    image = keras.Input((64, 64, 3), batch_size=2)
    maps = [keras.Input((64 // s, 64 // s, 8), batch_size=2) for s in (4, 8, 16, 32)]
    kwargs = dict(pool_size=7, num_classes=3, train_bn=train_bn, channels=8)
    dense = keras.Model([rois, image] + maps, mask_head(rois, image, maps, **kwargs))
    packed = keras.Model([rois, keep, image] + maps, mask_head(rois, image, maps, keep=keep, **kwargs))
    packed.set_weights(dense.get_weights())
    rng = np.random.default_rng(1)
    y1x1 = rng.uniform(0, 0.6, size=(2, 5, 2))
    boxes = np.concatenate([y1x1, y1x1 + rng.uniform(0.05, 0.4, size=(2, 5, 2))], -1).astype(np.float32)
    feats = [rng.normal(size=(2, 64 // s, 64 // s, 8)).astype(np.float32) for s in (4, 8, 16, 32)]
    return dense, packed, boxes, np.zeros((2, 64, 64, 3), np.float32), feats


def test_packed_mask_head_equals_the_dense_one_on_kept_rois_and_zeros_elsewhere():
    dense, packed, boxes, image, feats = _two_mask_heads(train_bn=False)
    class_ids = np.array([[1, 2, 0, 0, 0], [0, 0, 0, 0, 0]], np.int32)  # image 2 has no positives
    keep = PositiveROIs()(tf.constant(class_ids)).numpy()
    np.testing.assert_array_equal(keep, class_ids > 0)
    want = dense([boxes, image] + feats, training=True).numpy()
    got = packed([boxes, keep, image] + feats, training=True).numpy()
    np.testing.assert_allclose(got[keep], want[keep], rtol=1e-5, atol=1e-6)
    assert not got[~keep].any()
    # So the mask loss, which reads the positives only, is the same.
    targets = tf.constant((np.random.default_rng(2).random((2, 5, 14, 14)) > 0.5).astype(np.float32))
    np.testing.assert_allclose(
        mrcnn_mask_loss(targets, class_ids, got).numpy(), mrcnn_mask_loss(targets, class_ids, want).numpy(), rtol=1e-5
    )


def test_packed_mask_head_without_positives_keeps_batchnorm_finite():
    _, packed, boxes, image, feats = _two_mask_heads(train_bn=None)
    keep = PositiveROIs()(tf.zeros([2, 5], tf.int32)).numpy()
    assert keep.sum() == 1 and keep[0, 0]  # one slot, so no BatchNorm over an empty batch
    out = packed([boxes, keep, image] + feats, training=True)
    assert np.isfinite(out.numpy()).all()
    for weight in packed.weights:
        assert np.isfinite(weight.numpy()).all(), weight.path


# -------------------------------------------------------------------- anchors for a custom backbone
CROP = 32  # the custom backbone looks at the image without its top/left 32 pixels


def cropped_backbone(image, config):
    """A backbone whose feature maps are not ceil(image / stride): 'same' convs on a cropped input."""
    x = keras.layers.Cropping2D(((CROP, 0), (CROP, 0)))(image)
    feats = []
    for i, stride in enumerate((4, 2, 2, 2)):
        x = keras.layers.Conv2D(8, 3, strides=stride, padding="same", name=f"custom_c{i + 2}")(x)
        feats.append(x)
    return feats


def cropped_shapes(image_shape):
    h, w = image_shape[0] - CROP, image_shape[1] - CROP
    return [[math.ceil(h / s), math.ceil(w / s)] for s in (4, 8, 16, 32, 64)]


class CustomBackboneConfig(facemask.FaceMaskTinyConfig):
    BACKBONE = staticmethod(cropped_backbone)
    COMPUTE_BACKBONE_SHAPE = staticmethod(cropped_shapes)


def test_graph_anchors_equal_numpy_anchors_for_a_custom_backbone_shape(tmp_path):
    config = CustomBackboneConfig()
    model = MaskRCNN("inference", config, str(tmp_path))
    image = model.keras_model.get_layer("input_image").output
    anchors_of = keras.Model(image, model.keras_model.get_layer("anchors").output)
    got = anchors_of(np.zeros((1, 128, 128, 3), np.float32)).numpy()
    want = get_anchors(config, (128, 128), normalized=True)
    assert len(want) != len(get_anchors(facemask.FaceMaskTinyConfig(), (128, 128)))  # the custom shapes matter
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_a_compute_backbone_shape_that_disagrees_with_the_backbone_is_refused(tmp_path):
    class Wrong(CustomBackboneConfig):
        COMPUTE_BACKBONE_SHAPE = staticmethod(lambda shape: [[math.ceil(shape[0] / s)] * 2 for s in (4, 8, 16, 32, 64)])

    with pytest.raises(ValueError, match="fix COMPUTE_BACKBONE_SHAPE"):
        MaskRCNN("training", Wrong(), str(tmp_path))
