"""The export graph's ops against the training/detect() graph's ops on the same inputs: padded NMS vs
tf.image.non_max_suppression, gather ROIAlign vs CropAndResize, the batched proposal / detection
steps vs their map_fn originals, loop-free mask pasting vs paste_masks_tf."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf


def _boxes(rng, k, spread=(0.01, 0.3), lo=0.0, hi=1.0):
    c = rng.uniform(lo, hi, (k, 2))
    s = rng.uniform(*spread, (k, 2))
    return np.concatenate([c - s / 2, c + s / 2], 1).astype(np.float32)


@pytest.mark.parametrize("seed", range(6))
def test_padded_nms_keeps_what_the_nms_op_keeps(seed):
    from mrcnn.ops.nms import nms, nms_padded_tf

    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 250))
    boxes = _boxes(rng, k)
    zero = rng.random(k) < 0.15
    boxes[zero, 2] = boxes[zero, 0]  # zero-area boxes: overlap nothing (TF's rule), never NaN
    boxes[rng.random(k) < 0.05] = 0.0  # all-zero padding boxes
    boxes[rng.random(k) < 0.05] = boxes[0]  # duplicates
    flip = rng.random(k) < 0.1
    boxes[flip] = boxes[flip][:, [2, 3, 0, 1]]  # corners given the other way round
    scores = rng.random(k).astype(np.float32)
    scores[rng.random(k) < 0.15] = 0.5  # ties: lower index first
    for max_out, thr in [(int(rng.integers(1, 60)), 0.5), (300, 0.3), (5, 0.7)]:
        ref = tf.image.non_max_suppression(boxes, scores, max_out, thr).numpy()
        np.testing.assert_array_equal(nms(boxes, scores, max_out, thr), ref)
        idx, ok = nms_padded_tf(boxes[None], scores[None], max_out, thr)
        assert idx.shape == (1, max_out) and ok.shape == (1, max_out)
        np.testing.assert_array_equal(idx.numpy()[0][ok.numpy()[0]], ref)
        assert not idx.numpy()[0][~ok.numpy()[0]].any()  # padding slots point at 0


def test_padded_nms_valid_mask_equals_filtering_first():
    from mrcnn.ops.nms import nms, nms_padded_tf

    rng = np.random.default_rng(1)
    boxes, scores = _boxes(rng, 80)[None].repeat(2, 0), rng.random((2, 80)).astype(np.float32)
    valid = rng.random((2, 80)) < 0.6
    idx, ok = nms_padded_tf(boxes, scores, 20, 0.5, valid=valid)
    for b in range(2):
        keep = np.where(valid[b])[0]
        ref = keep[tf.image.non_max_suppression(boxes[b][keep], scores[b][keep], 20, 0.5).numpy()]
        np.testing.assert_array_equal(idx.numpy()[b][ok.numpy()[b]], ref)
        np.testing.assert_array_equal(nms(boxes[b], scores[b], 20, 0.5, valid=valid[b]), ref)


def test_gather_roi_align_equals_crop_and_resize():
    from mrcnn.model.roi_align import PyramidROIAlign, roi_align_gather, roi_levels

    rng = np.random.default_rng(0)
    b, size, n = 2, 128, 60
    maps = [rng.normal(size=(b, size // s, size // s, 6)).astype(np.float32) for s in (4, 8, 16, 32)]
    image = np.zeros((b, 4 * size, 4 * size, 3), np.float32)  # read for its size only: picks the levels
    boxes = np.stack([_boxes(rng, n, (0.0, 1.0), -0.1, 1.1) for _ in range(b)])  # some cross the border
    boxes[0, :4] = 0.0  # padding
    boxes[1, 4, 2] = boxes[1, 4, 0]  # zero height
    for pool, packed in [((7, 7), False), ((14, 14), True)]:
        keep = rng.random((b, n)) < 0.5
        args = [boxes, keep, image] if packed else [boxes, image]
        ref = PyramidROIAlign(pool, packed=packed)(args + maps).numpy()
        got = PyramidROIAlign(pool, packed=packed, sampler="gather")(args + maps).numpy()
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, atol=2e-6)
    flat = boxes.reshape(-1, 4)
    levels = roi_levels(tf.constant(flat), tf.constant([4 * size, 4 * size])).numpy()
    assert set(levels) >= {2, 3, 4, 5}  # every level is exercised
    numpy_twin = roi_align_gather(maps, flat, np.repeat(np.arange(b), n), levels, (7, 7))
    ref = PyramidROIAlign((7, 7))([boxes, image] + maps).numpy().reshape(numpy_twin.shape)
    np.testing.assert_allclose(numpy_twin, ref, atol=2e-6)


def test_batched_proposals_and_detections_equal_the_map_fn_layers():
    from mrcnn.model.box_head import DetectionLayer
    from mrcnn.model.rpn import ProposalLayer
    from mrcnn.ops.images import compose_image_meta

    rng = np.random.default_rng(3)
    b, a, c = 2, 900, 3
    anchors = _boxes(rng, a, (0.02, 0.4))
    logits = rng.normal(size=(b, a, 2)).astype(np.float32)
    probs = tf.nn.softmax(logits).numpy()
    deltas = rng.normal(scale=0.3, size=(b, a, 4)).astype(np.float32)
    kw = dict(proposal_count=120, nms_threshold=0.7, pre_nms_limit=400, rpn_bbox_std_dev=[0.1, 0.1, 0.2, 0.2])
    ref = ProposalLayer(**kw)([probs, deltas, anchors]).numpy()
    got = ProposalLayer(**kw, nms="padded")([probs, deltas, anchors]).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-6)

    rois = ref
    cls = tf.nn.softmax(rng.normal(scale=2.0, size=(b, 120, c)).astype(np.float32)).numpy()
    bbox = rng.normal(scale=0.5, size=(b, 120, c, 4)).astype(np.float32)
    meta = np.stack(
        [
            compose_image_meta(0, (90, 120, 3), (128, 128, 3), (19, 0, 109, 128), 1.07, np.ones(c)),
            compose_image_meta(0, (128, 128, 3), (128, 128, 3), (0, 0, 128, 128), 1.0, np.ones(c)),
        ]
    )
    kw = dict(bbox_std_dev=[0.1, 0.1, 0.2, 0.2], min_confidence=0.4, nms_threshold=0.5, max_instances=25)
    ref = DetectionLayer(**kw)([rois, cls, bbox, meta]).numpy()
    got = DetectionLayer(**kw, nms="padded")([rois, cls, bbox, meta]).numpy()
    assert (ref[:, :, 4] > 0).sum() > 10
    np.testing.assert_allclose(got, ref, atol=1e-6)


def test_batched_paste_equals_paste_masks_tf():
    from mrcnn.ops.masks import paste_masks_batched_tf, paste_masks_tf

    rng = np.random.default_rng(0)
    masks = rng.random((7, 28, 28)).astype(np.float32)
    masks[2] = 0.7  # a constant mask: clipped to its own range
    boxes = np.array(
        [
            [3, 4, 40, 50],
            [-5, -6, 20, 30],
            [10, 10, 11, 12],
            [50, 60, 90, 99],
            [0, 0, 90, 100],
            [30, 20, 31, 21],
            [80, 90, 120, 130],
        ],
        np.int32,
    )
    ref = paste_masks_tf(masks, boxes, 90, 100).numpy()
    got = paste_masks_batched_tf(masks, boxes, 90, 100).numpy()
    assert got.dtype == np.uint8 and got.shape == (7, 90, 100)
    np.testing.assert_array_equal(got, ref)


def test_both_pastes_take_no_detection():
    """An image without detections: [0, H, W] from both, also inside a tf.function (the SavedModel)."""
    import tensorflow as tf

    from mrcnn.ops.masks import paste_masks_batched_tf, paste_masks_tf

    for paste in (paste_masks_tf, paste_masks_batched_tf):
        spec = [tf.TensorSpec([None, 28, 28], tf.float32), tf.TensorSpec([None, 4], tf.int32)]
        fn = tf.function(lambda m, b, p=paste: p(m, b, 90, 100), input_signature=spec)
        out = fn(tf.zeros([0, 28, 28]), tf.zeros([0, 4], tf.int32)).numpy()
        assert out.shape == (0, 90, 100) and out.dtype == np.uint8
