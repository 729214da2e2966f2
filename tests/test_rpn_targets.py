"""build_rpn_targets vs a slow, loop-by-loop reference of Matterport's rules, then subsampling."""

import numpy as np
import pytest

from mrcnn.ops.anchors import generate_pyramid_anchors
from mrcnn.ops.rpn_targets import build_rpn_targets

STD = np.array([0.1, 0.1, 0.2, 0.2], np.float32)
STRIDES = [4, 8, 16, 32, 64]
SCALES = (8, 16, 32, 64, 128)
IMAGE = (128, 128)


def pyramid_anchors(shape=IMAGE):
    shapes = [[int(np.ceil(shape[0] / s)), int(np.ceil(shape[1] / s))] for s in STRIDES]
    return generate_pyramid_anchors(SCALES, [0.5, 1, 2], shapes, STRIDES)


# ------------------------------------------------------------------------------ slow reference
def iou(a, b):
    """IoU of two boxes, plain Python floats, same operation order as compute_overlaps."""
    ay1, ax1, ay2, ax2 = (float(v) for v in a)
    by1, bx1, by2, bx2 = (float(v) for v in b)
    inter = max(min(ay2, by2) - max(ay1, by1), 0.0) * max(min(ax2, bx2) - max(ax1, bx1), 0.0)
    union = (ay2 - ay1) * (ax2 - ax1) + (by2 - by1) * (bx2 - bx1) - inter
    # compute_overlaps returns float32; round the same way so ties and thresholds agree.
    return float(np.float32(inter / union)) if union > 0 else 0.0


def reference_rpn_match(anchors, class_ids, boxes):
    """rpn_match before subsampling and, per anchor, the index (into non-crowd GTs) of its best GT."""
    n = len(anchors)
    crowd_boxes = [b for c, b in zip(class_ids, boxes) if c < 0]
    gts = [b for c, b in zip(class_ids, boxes) if c >= 0]
    match = [0] * n
    best_gt = [-1] * n
    best_iou = [0.0] * n
    touches_crowd = [False] * n
    ious = [[0.0] * len(gts) for _ in range(n)]
    for a in range(n):
        for cb in crowd_boxes:
            if iou(anchors[a], cb) >= 0.001:
                touches_crowd[a] = True
        for g, gb in enumerate(gts):
            v = iou(anchors[a], gb)
            ious[a][g] = v
            if best_gt[a] < 0 or v > best_iou[a]:  # first maximum, as argmax
                best_gt[a], best_iou[a] = g, v
    # 1. Negatives: best IoU < 0.3 and not touching a crowd box.
    for a in range(n):
        if best_iou[a] < 0.3 and not touches_crowd[a]:
            match[a] = -1
    # 2. Each GT's best anchor(s), ties included, are positive, unless the GT overlaps no anchor.
    for g in range(len(gts)):
        gt_max = max(ious[a][g] for a in range(n))
        if gt_max <= 0:
            continue
        for a in range(n):
            if ious[a][g] == gt_max:
                match[a] = 1
    # 3. IoU >= 0.7 is positive.
    for a in range(n):
        if best_iou[a] >= 0.7:
            match[a] = 1
    return np.array(match, np.int32), best_gt, gts


def reference_deltas(anchor, gt):
    ay1, ax1, ay2, ax2 = (float(v) for v in anchor)
    gy1, gx1, gy2, gx2 = (float(v) for v in gt)
    h, w, gh, gw = ay2 - ay1, ax2 - ax1, gy2 - gy1, gx2 - gx1
    cy, cx, gcy, gcx = ay1 + h / 2, ax1 + w / 2, gy1 + gh / 2, gx1 + gw / 2
    return np.array([(gcy - cy) / h, (gcx - cx) / w, np.log(gh / h), np.log(gw / w)]) / STD


def random_gt(rng, n, shape=IMAGE, crowd=0):
    """Integer pixel boxes (as the pipeline makes them), the last ``crowd`` of them crowd (class < 0)."""
    y1 = rng.integers(0, shape[0] - 8, n)
    x1 = rng.integers(0, shape[1] - 8, n)
    y2 = np.minimum(y1 + rng.integers(4, 70, n), shape[0])
    x2 = np.minimum(x1 + rng.integers(4, 70, n), shape[1])
    boxes = np.stack([y1, x1, y2, x2], axis=1).astype(np.int32)
    class_ids = rng.integers(1, 3, n).astype(np.int32)
    if crowd:
        class_ids[-crowd:] = -class_ids[-crowd:]
    return class_ids, boxes


def no_subsampling(anchors, class_ids, boxes, seed=0):
    return build_rpn_targets(
        anchors,
        class_ids,
        boxes,
        anchors_per_image=2 * len(anchors) + 2,
        bbox_std_dev=STD,
        rng=np.random.default_rng(seed),
    )


def check_against_reference(anchors, class_ids, boxes):
    match, bbox = no_subsampling(anchors, class_ids, boxes)
    ref_match, best_gt, gts = reference_rpn_match(anchors, class_ids, boxes)
    assert match.shape == (len(anchors),) and match.dtype == np.int32
    np.testing.assert_array_equal(match, ref_match)
    positives = np.flatnonzero(ref_match == 1)
    expected = np.zeros_like(bbox)
    for row, a in enumerate(positives):
        expected[row] = reference_deltas(anchors[a], gts[best_gt[a]])
    np.testing.assert_allclose(bbox, expected, rtol=1e-4, atol=1e-4)
    return match


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_matches_reference_random_boxes(seed):
    rng = np.random.default_rng(seed)
    anchors = pyramid_anchors()
    class_ids, boxes = random_gt(rng, int(rng.integers(1, 6)))
    match = check_against_reference(anchors, class_ids, boxes)
    assert (match == 1).sum() >= len(boxes)  # every GT got at least its best anchor
    assert (match == -1).any() and (match == 0).any()


@pytest.mark.parametrize("seed", [10, 11, 12])
def test_matches_reference_with_crowd(seed):
    rng = np.random.default_rng(seed)
    anchors = pyramid_anchors()
    class_ids, boxes = random_gt(rng, 5, crowd=2)
    match = check_against_reference(anchors, class_ids, boxes)
    # Anchors inside a crowd box are never negative.
    crowd = boxes[class_ids < 0]
    cy = (anchors[:, 0] + anchors[:, 2]) / 2
    cx = (anchors[:, 1] + anchors[:, 3]) / 2
    for y1, x1, y2, x2 in crowd:
        inside = (cy > y1) & (cy < y2) & (cx > x1) & (cx < x2)
        assert not (match[inside] == -1).any()


def test_only_crowd_boxes():
    rng = np.random.default_rng(5)
    anchors = pyramid_anchors()
    class_ids, boxes = random_gt(rng, 2, crowd=2)
    match = check_against_reference(anchors, class_ids, boxes)
    assert not (match == 1).any() and (match == 0).any() and (match == -1).any()


def test_zero_gt_boxes():
    anchors = pyramid_anchors()
    for boxes in (np.zeros((0, 4), np.int32), np.zeros((0,), np.int32)):
        match, bbox = no_subsampling(anchors, np.zeros(0, np.int32), boxes)
        assert (match == -1).all()
        assert not bbox.any()
        np.testing.assert_array_equal(match, reference_rpn_match(anchors, [], [])[0])


def test_gt_with_zero_overlap_gets_no_anchor():
    anchors = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 12, 12]], np.float32)
    class_ids = np.array([1, 2], np.int32)
    boxes = np.array([[50, 50, 60, 60], [0, 0, 11, 11]], np.int32)  # the first overlaps nothing
    match = check_against_reference(anchors, class_ids, boxes)
    # Anchor 0 (IoU 100/121) and anchor 2 (IoU 121/144) are both >= 0.7 with GT 1; anchor 1 is negative.
    assert match.tolist() == [1, -1, 1]


def test_best_anchor_ties_are_all_positive():
    # A GT exactly between two anchors: equal, low IoU with both -> both positive (Matterport's rule).
    anchors = np.array([[0, 0, 10, 10], [0, 10, 10, 20], [40, 40, 50, 50]], np.float32)
    boxes = np.array([[0, 5, 10, 15]], np.int32)  # IoU 1/3 with anchors 0 and 1
    match = check_against_reference(anchors, np.array([1], np.int32), boxes)
    assert match.tolist() == [1, 1, -1]


def test_best_anchor_rule_beats_negative():
    # The only anchor touching the GT has IoU < 0.3, but it is the GT's best one -> positive.
    anchors = np.array([[0, 0, 40, 40], [60, 60, 70, 70]], np.float32)
    boxes = np.array([[0, 0, 10, 10]], np.int32)  # IoU 100/1600
    match, bbox = no_subsampling(anchors, np.array([1], np.int32), boxes)
    assert match.tolist() == [1, -1]
    np.testing.assert_allclose(bbox[0], reference_deltas(anchors[0], boxes[0]), rtol=1e-5)


# ------------------------------------------------------------------------------ subsampling
def many_positive_case(rng, n_gt=300):
    anchors = pyramid_anchors()
    pick = rng.choice(len(anchors), n_gt, replace=False)
    boxes = np.round(anchors[pick]).astype(np.int32)
    boxes = np.clip(boxes, 0, 128)
    ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return anchors, np.ones(ok.sum(), np.int32), boxes[ok]


def test_subsampling_caps_positives_and_total():
    rng = np.random.default_rng(0)
    anchors, class_ids, boxes = many_positive_case(rng)
    full, _ = no_subsampling(anchors, class_ids, boxes)
    assert (full == 1).sum() > 128  # more positives than the cap
    match, bbox = build_rpn_targets(
        anchors, class_ids, boxes, anchors_per_image=256, bbox_std_dev=STD, rng=np.random.default_rng(1)
    )
    assert (match == 1).sum() == 128
    assert (match != 0).sum() == 256
    assert bbox.shape == (256, 4)
    # Sampling only neutralises: kept labels are a subset of the unsampled ones.
    assert (full[match == 1] == 1).all() and (full[match == -1] == -1).all()
    # Deltas belong to the kept positives, in anchor order.
    kept = np.flatnonzero(match == 1)
    best = [max(range(len(boxes)), key=lambda g: (iou(anchors[a], boxes[g]), -g)) for a in kept]  # first max
    expected = np.array([reference_deltas(anchors[a], boxes[g]) for a, g in zip(kept, best)])
    np.testing.assert_allclose(bbox[:128], expected, rtol=1e-4, atol=1e-4)
    assert not bbox[128:].any()


def test_subsampling_few_positives_keeps_them_all():
    rng = np.random.default_rng(2)
    anchors = pyramid_anchors()
    class_ids, boxes = random_gt(rng, 2)
    full, _ = no_subsampling(anchors, class_ids, boxes)
    n_pos = int((full == 1).sum())
    assert 0 < n_pos < 128
    match, _ = build_rpn_targets(
        anchors, class_ids, boxes, anchors_per_image=256, bbox_std_dev=STD, rng=np.random.default_rng(0)
    )
    np.testing.assert_array_equal(match == 1, full == 1)
    assert (match == -1).sum() == 256 - n_pos
    assert (full[match == -1] == -1).all()


def test_subsampling_deterministic_for_seed():
    rng = np.random.default_rng(3)
    anchors, class_ids, boxes = many_positive_case(rng)

    def run(seed):
        return build_rpn_targets(
            anchors, class_ids, boxes, anchors_per_image=256, bbox_std_dev=STD, rng=np.random.default_rng(seed)
        )

    m1, b1 = run(7)
    m2, b2 = run(7)
    m3, _ = run(8)
    np.testing.assert_array_equal(m1, m2)
    np.testing.assert_array_equal(b1, b2)
    assert not np.array_equal(m1, m3)
