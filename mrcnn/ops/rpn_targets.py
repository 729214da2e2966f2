"""RPN training targets for one image, vectorised (no Python loop over anchors)."""

from __future__ import annotations

import numpy as np

from .boxes import box_refinement, compute_overlaps

POSITIVE_IOU = 0.7
NEGATIVE_IOU = 0.3


def build_rpn_targets(
    anchors: np.ndarray,
    gt_class_ids: np.ndarray,
    gt_boxes: np.ndarray,
    *,
    anchors_per_image: int,
    bbox_std_dev,
    rng: np.random.Generator,
):
    """Label anchors as positive (1), negative (-1) or neutral (0), and encode positive deltas.

    Matterport's rules: an anchor is positive when its IoU with a GT box is >= 0.7, or when it is
    the best anchor of some GT box; negative when its best IoU is < 0.3 and it does not touch a
    crowd box (negative class id); then positives are capped at half of ``anchors_per_image`` and
    negatives fill the rest, both sampled at random.

    Returns ``rpn_match`` [A] int32 and ``rpn_bbox`` [anchors_per_image, 4] float32 holding the
    std-normalised deltas of the positive anchors in anchor order (zero padded).
    """
    anchors = np.asarray(anchors, dtype=np.float32)
    rpn_match = np.zeros(len(anchors), dtype=np.int32)
    rpn_bbox = np.zeros((anchors_per_image, 4), dtype=np.float32)
    gt_class_ids = np.asarray(gt_class_ids)
    gt_boxes = np.asarray(gt_boxes, dtype=np.float32).reshape(-1, 4)

    crowd = gt_class_ids < 0
    if crowd.any():
        crowd_iou = compute_overlaps(anchors, gt_boxes[crowd])
        no_crowd = crowd_iou.max(axis=1) < 0.001
        gt_boxes = gt_boxes[~crowd]
    else:
        no_crowd = np.ones(len(anchors), dtype=bool)

    if len(gt_boxes) == 0:
        rpn_match[no_crowd] = -1
    else:
        overlaps = compute_overlaps(anchors, gt_boxes)  # [A, G]
        best_gt = overlaps.argmax(axis=1)
        best_iou = overlaps[np.arange(len(anchors)), best_gt]
        rpn_match[(best_iou < NEGATIVE_IOU) & no_crowd] = -1
        # Every GT box gets its best anchor(s), ties included, unless it overlaps nothing at all.
        gt_best = overlaps.max(axis=0)
        is_best = (overlaps == gt_best[None, :]) & (gt_best[None, :] > 0)
        rpn_match[is_best.any(axis=1)] = 1
        rpn_match[best_iou >= POSITIVE_IOU] = 1

    # Balance: at most half positives, negatives fill up to anchors_per_image.
    positives = np.flatnonzero(rpn_match == 1)
    extra = len(positives) - anchors_per_image // 2
    if extra > 0:
        rpn_match[rng.choice(positives, extra, replace=False)] = 0
    positives = np.flatnonzero(rpn_match == 1)
    negatives = np.flatnonzero(rpn_match == -1)
    extra = len(negatives) - (anchors_per_image - len(positives))
    if extra > 0:
        rpn_match[rng.choice(negatives, extra, replace=False)] = 0

    if len(positives):
        deltas = box_refinement(anchors[positives], gt_boxes[best_gt[positives]])
        rpn_bbox[: len(positives)] = deltas / np.asarray(bbox_std_dev, dtype=np.float32)
    return rpn_match, rpn_bbox
