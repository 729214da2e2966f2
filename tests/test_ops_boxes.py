"""Box math: numpy references vs their TensorFlow twins, round trips and hand-computed IoUs."""

import numpy as np
import pytest
import tensorflow as tf

from mrcnn.ops.boxes import (
    apply_box_deltas,
    apply_box_deltas_tf,
    box_refinement,
    box_refinement_tf,
    clip_boxes,
    clip_boxes_tf,
    compute_overlaps,
    compute_overlaps_tf,
    denorm_boxes,
    denorm_boxes_tf,
    extract_bboxes,
    norm_boxes,
    norm_boxes_tf,
)


def random_boxes(rng, n, size=200.0, min_side=2.0, max_side=80.0):
    """[n, 4] valid (y1, x1, y2, x2) boxes with positive height and width."""
    y1 = rng.uniform(0, size, n)
    x1 = rng.uniform(0, size, n)
    h = rng.uniform(min_side, max_side, n)
    w = rng.uniform(min_side, max_side, n)
    return np.stack([y1, x1, y1 + h, x1 + w], axis=1).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compute_overlaps_numpy_vs_tf(seed):
    rng = np.random.default_rng(seed)
    b1 = random_boxes(rng, 37)
    b2 = random_boxes(rng, 23)
    ref = compute_overlaps(b1, b2)
    got = compute_overlaps_tf(tf.constant(b1), tf.constant(b2)).numpy()
    assert ref.shape == got.shape == (37, 23)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    assert (ref >= 0).all() and (ref <= 1).all()
    # Random boxes in a 200 px field overlap sometimes and not at other times.
    assert (ref > 0).any() and (ref == 0).any()


def test_compute_overlaps_hand_cases():
    a = np.array([[0, 0, 10, 10]], np.float32)
    identical = compute_overlaps(a, a)
    disjoint = compute_overlaps(a, np.array([[20, 20, 30, 30]], np.float32))
    touching = compute_overlaps(a, np.array([[0, 10, 10, 20]], np.float32))  # shares an edge only
    # Shifted by half its width: intersection 50, union 150 -> 1/3.
    half = compute_overlaps(a, np.array([[0, 5, 10, 15]], np.float32))
    inside = compute_overlaps(a, np.array([[0, 0, 5, 10]], np.float32))  # half the area, contained
    assert identical[0, 0] == pytest.approx(1.0)
    assert disjoint[0, 0] == 0.0 and touching[0, 0] == 0.0
    assert half[0, 0] == pytest.approx(1 / 3, abs=1e-6)
    assert inside[0, 0] == pytest.approx(0.5)
    # Same cases through TF.
    cases = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [0, 10, 10, 20], [0, 5, 10, 15], [0, 0, 5, 10]], np.float32)
    np.testing.assert_allclose(compute_overlaps_tf(a, cases).numpy()[0], [1, 0, 0, 1 / 3, 0.5], atol=1e-6)


def test_compute_overlaps_degenerate_and_empty():
    a = np.array([[5, 5, 5, 5]], np.float32)  # zero area, union 0
    assert compute_overlaps(a, a)[0, 0] == 0.0
    assert compute_overlaps_tf(a, a).numpy()[0, 0] == 0.0
    assert compute_overlaps(np.zeros((0, 4)), random_boxes(np.random.default_rng(0), 3)).shape == (0, 3)


@pytest.mark.parametrize("seed", [0, 1])
def test_box_refinement_numpy_vs_tf_and_round_trip(seed):
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, 50)
    gt = random_boxes(rng, 50)
    deltas = box_refinement(boxes, gt)
    deltas_tf = box_refinement_tf(tf.constant(boxes), tf.constant(gt)).numpy()
    np.testing.assert_allclose(deltas_tf, deltas, rtol=1e-5, atol=1e-5)
    # Encode -> decode gives the GT back, in numpy and in TF.
    np.testing.assert_allclose(apply_box_deltas(boxes, deltas), gt, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(
        apply_box_deltas_tf(tf.constant(boxes), tf.constant(deltas)).numpy(), gt, rtol=1e-5, atol=1e-3
    )


def test_box_refinement_hand_case():
    box = np.array([[0, 0, 10, 20]], np.float32)  # h=10, w=20, centre (5, 10)
    gt = np.array([[5, 10, 25, 30]], np.float32)  # h=20, w=20, centre (15, 20)
    np.testing.assert_allclose(box_refinement(box, gt), [[1.0, 0.5, np.log(2.0), 0.0]], atol=1e-6)
    assert np.allclose(box_refinement(gt, gt), 0)


@pytest.mark.parametrize("seed", [0, 1])
def test_apply_box_deltas_numpy_vs_tf(seed):
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, 64)
    deltas = rng.normal(0, 0.3, (64, 4)).astype(np.float32)
    ref = apply_box_deltas(boxes, deltas)
    got = apply_box_deltas_tf(tf.constant(boxes), tf.constant(deltas)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-3)
    # Zero deltas leave the boxes alone.
    np.testing.assert_allclose(apply_box_deltas(boxes, np.zeros_like(deltas)), boxes, atol=1e-4)


def test_huge_size_deltas_are_capped_so_boxes_stay_finite():
    """An untrained head (a stand-in COCO file, a diverging run) can predict dh = 200: exp() would
    give inf, then NaN boxes that crashed detect() in ROIAlign. Both twins cap dh/dw at log(1000/16)."""
    from mrcnn.ops.boxes import MAX_DELTA_LOG_SCALE

    boxes = np.array([[10, 10, 20, 30], [0, 0, 4, 4]], np.float32)
    deltas = np.array([[0, 0, 200.0, 90.0], [0.1, 0.0, 1.0, -2.0]], np.float32)
    for got in (apply_box_deltas(boxes, deltas), apply_box_deltas_tf(tf.constant(boxes), tf.constant(deltas)).numpy()):
        assert np.isfinite(got).all()
        h, w = got[0, 2] - got[0, 0], got[0, 3] - got[0, 1]
        np.testing.assert_allclose(
            [h, w], [10 * np.exp(MAX_DELTA_LOG_SCALE), 20 * np.exp(MAX_DELTA_LOG_SCALE)], rtol=1e-4
        )
        np.testing.assert_allclose(got[1, 2] - got[1, 0], 4 * np.e, rtol=1e-5)  # small deltas: uncapped


def test_clip_boxes_numpy_vs_tf():
    rng = np.random.default_rng(3)
    boxes = rng.uniform(-50, 250, (40, 4)).astype(np.float32)
    window = np.array([10, 20, 150, 180], np.float32)
    ref = clip_boxes(boxes, window)
    got = clip_boxes_tf(tf.constant(boxes), tf.constant(window)).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-6)
    assert (ref[:, [0, 2]] >= 10).all() and (ref[:, [0, 2]] <= 150).all()
    assert (ref[:, [1, 3]] >= 20).all() and (ref[:, [1, 3]] <= 180).all()
    inside = np.array([[20, 30, 40, 50]], np.float32)
    np.testing.assert_array_equal(clip_boxes(inside, window), inside)
    # The TF twin accepts leading batch dimensions.
    batched = clip_boxes_tf(tf.constant(boxes.reshape(4, 10, 4)), tf.constant(window)).numpy()
    np.testing.assert_allclose(batched.reshape(40, 4), ref, atol=1e-6)


@pytest.mark.parametrize("shape", [(128, 128), (256, 192), (100, 333)])
def test_norm_denorm_numpy_vs_tf(shape):
    rng = np.random.default_rng(4)
    h, w = shape
    y1 = rng.integers(0, h - 1, 30)
    x1 = rng.integers(0, w - 1, 30)
    y2 = np.minimum(y1 + rng.integers(1, h // 2, 30), h)
    x2 = np.minimum(x1 + rng.integers(1, w // 2, 30), w)
    boxes = np.stack([y1, x1, y2, x2], axis=1).astype(np.int32)
    n = norm_boxes(boxes, shape)
    n_tf = norm_boxes_tf(tf.constant(boxes), tf.constant(shape)).numpy()
    np.testing.assert_allclose(n_tf, n, atol=1e-6)
    # Matterport convention: the full image (0, 0, h, w) maps to (0, 0, 1, 1).
    np.testing.assert_allclose(norm_boxes(np.array([[0, 0, h, w]]), shape), [[0, 0, 1, 1]], atol=1e-6)
    np.testing.assert_array_equal(denorm_boxes(n, shape), boxes)
    np.testing.assert_array_equal(denorm_boxes_tf(tf.constant(n), tf.constant(shape)).numpy(), boxes)


def test_extract_bboxes():
    masks = np.zeros((20, 30, 4), bool)
    masks[2:5, 3:9, 0] = True  # rectangle
    masks[10, 7, 1] = True  # a single pixel
    masks[0:20, 0:30, 2] = True  # the whole image
    # masks[..., 3] stays empty
    boxes = extract_bboxes(masks)
    assert boxes.dtype == np.int32 and boxes.shape == (4, 4)
    np.testing.assert_array_equal(boxes, [[2, 3, 5, 9], [10, 7, 11, 8], [0, 0, 20, 30], [0, 0, 0, 0]])
    # y2/x2 are exclusive: slicing the mask with the box keeps every pixel.
    for i in range(3):
        y1, x1, y2, x2 = boxes[i]
        assert masks[y1:y2, x1:x2, i].sum() == masks[..., i].sum()
    assert extract_bboxes(np.zeros((5, 5, 0), bool)).shape == (0, 4)


def test_extract_bboxes_non_convex_mask():
    masks = np.zeros((16, 16, 1), bool)
    masks[1, 2, 0] = masks[12, 14, 0] = masks[6, 0, 0] = True
    np.testing.assert_array_equal(extract_bboxes(masks), [[1, 0, 13, 15]])


@pytest.mark.parametrize(
    "window,image_shape,original_shape",
    [
        ((16, 0, 112, 128), (128, 128), (150, 200)),  # landscape, letterboxed top and bottom
        ((0, 32, 128, 96), (128, 128), (200, 100)),  # portrait, pillarboxed
        ((0, 0, 64, 64), (64, 64), (64, 64)),  # no resize
    ],
)
def test_unmold_boxes_numpy_and_tf_map_back_to_original_pixels(window, image_shape, original_shape):
    from mrcnn.ops.boxes import norm_boxes, unmold_boxes, unmold_boxes_tf

    y1, x1, y2, x2 = window
    sy, sx = (y2 - y1) / original_shape[0], (x2 - x1) / original_shape[1]
    original = np.array([[10, 20, 50, 60], [0, 0, original_shape[0], original_shape[1]]])
    on_input = original * [sy, sx, sy, sx] + [y1, x1, y1, x1]  # the same boxes on the network input
    boxes = norm_boxes(on_input, image_shape)
    got = unmold_boxes(boxes, window, image_shape, original_shape)
    np.testing.assert_array_equal(got, original)
    np.testing.assert_array_equal(
        unmold_boxes_tf(boxes, tf.constant(window), tf.constant(image_shape), tf.constant(original_shape)).numpy(), got
    )
