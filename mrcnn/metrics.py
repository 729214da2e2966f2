"""Detection / instance-segmentation metrics (numpy; pycocotools for the COCO numbers).

Everything here works on arrays at the **original image size** (what
``MaskRCNN.detect`` returns after unmolding), in Matterport's layout:

* boxes: ``[N, 4]`` as ``(y1, x1, y2, x2)`` in pixels, ``y2``/``x2`` exclusive
  (``utils.extract_bboxes`` convention);
* class ids: ``[N]`` ints, ``0`` is background;
* masks: ``[H, W, N]`` bool (0/1 ints or float probabilities >= 0.5 are accepted);
* scores: ``[N]`` floats.

Padding rows -- a class id ``<= 0`` or an all-zero box, as produced by zero-padded
GT/detection tensors -- are ignored everywhere (Matterport's ``trim_zeros``), on both the
GT and the prediction side.

Matterport convention (``utils.compute_matches`` / ``utils.compute_ap``), reproduced exactly
-----------------------------------------------------------------------------------------
Padding rows are dropped first. Predictions are visited in Matterport's order,
``np.argsort(scores)[::-1]`` (equal scores: the later row first); each is matched to the
unmatched GT of the *same class* with the highest IoU, provided that IoU is ``>= iou_threshold``,
GTs being tried in ``np.argsort(ious)[::-1]`` order (equal IoUs: the later GT row first). Float
and integer masks are binarised with ``> 0.5``. Cumulative precision (float64) and recall (float32,
as Matterport) over the score-sorted predictions are padded with ``0`` at the start and
``(precision 0, recall 1)`` at the end, precision is made monotonically decreasing from the right,
and AP is ``sum((r[i] - r[i-1]) * p[i])`` over the points where recall changes. Per-image AP pools
all classes of the image (this is what Matterport's notebooks average to "mAP").

Images without ground truth
---------------------------
Matterport's ``compute_ap`` returns 0.0 when neither side has instances (recall pads to
``[0, 1]`` with precision 0) and NaN when there are predictions but no GT (0 / 0 recalls).
:func:`compute_ap` returns 0.0 in both cases (never NaN). The headline mAP (:class:`Evaluator`)
is the mean over the images **that have ground truth** only, as the original face-mask project
evaluated; images without GT are counted apart, with how many of them got false positives.

Dataset-level per-class AP (:func:`per_class_ap`) instead returns **NaN** for a class with
neither GT nor predictions in the whole set (the class is absent; it should not appear as a
perfect 1.0 in a table) and 0.0 for a class with predictions but no GT.  COCO metrics follow
pycocotools: a value that pycocotools reports as ``-1`` (no GT in that area range / no GT at
all) is returned as NaN.

Differences from Matterport's return values
-------------------------------------------
:func:`match_detections` returns ``pred_match`` and ``overlaps`` in the **input order** of the
predictions (Matterport returns them in score-sorted order) and indices refer to the input
arrays (padding included), so ``gt_match[j] == i`` means "GT row j is matched by prediction row
i".  :func:`compute_ap` returns precisions/recalls along the score-sorted predictions, as
Matterport does.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "box_iou",
    "mask_iou",
    "extract_boxes",
    "match_detections",
    "compute_ap",
    "compute_ap_range",
    "compute_recall",
    "per_class_ap",
    "Evaluator",
    "format_table",
    "COCO_METRIC_NAMES",
]

#: Keys of ``summary()["coco_segm"]`` / ``["coco_bbox"]`` in COCOeval ``stats`` order.
COCO_METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100")

# COCO area ranges (inclusive on both ends, as in pycocotools' Params).
_COCO_AREA_RANGES = {"APs": (0.0, 32.0**2), "APm": (32.0**2, 96.0**2), "APl": (96.0**2, 1e10)}


# ----------------------------------------------------------------------------- IoU
def box_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """IoU of every box in ``boxes1`` [N, 4] with every box in ``boxes2`` [M, 4] -> [N, M] (float64).

    Boxes are ``(y1, x1, y2, x2)``; area is ``(y2 - y1) * (x2 - x1)`` (Matterport). Pairs whose
    union is zero (degenerate boxes) get IoU 0.
    """
    from mrcnn.ops.boxes import compute_overlaps  # lazy: mrcnn.ops pulls in TensorFlow

    return compute_overlaps(boxes1, boxes2, dtype=np.float64)


def _as_bool_masks(masks: Any, name: str = "masks") -> np.ndarray:
    m = np.asarray(masks)
    if m.ndim == 2:
        m = m[..., None]
    if m.ndim != 3:
        raise ValueError(f"{name} must be [H, W, N], got shape {m.shape}")
    if m.dtype == bool:
        return m
    return m > 0.5  # Matterport's compute_overlaps_masks: masks > .5 (floats and 0/1 ints alike)


def mask_iou(masks1: np.ndarray, masks2: np.ndarray) -> np.ndarray:
    """IoU of every mask in ``masks1`` [H, W, N] with every mask in ``masks2`` [H, W, M] -> [N, M].

    Float or integer masks are binarised with ``> 0.5`` (Matterport). A pair with an empty union gets 0.
    """
    m1 = _as_bool_masks(masks1, "masks1")
    m2 = _as_bool_masks(masks2, "masks2")
    if m1.shape[:2] != m2.shape[:2]:
        raise ValueError(f"mask sizes differ: {m1.shape[:2]} vs {m2.shape[:2]}")
    from mrcnn.ops.masks import compute_overlaps_masks

    return compute_overlaps_masks(m1, m2, dtype=np.float64)


def extract_boxes(masks: np.ndarray) -> np.ndarray:
    """Boxes ``(y1, x1, y2, x2)`` (exclusive ends) of [H, W, N] masks; empty masks give zeros."""
    from mrcnn.ops.boxes import extract_bboxes

    return extract_bboxes(_as_bool_masks(masks))


# ----------------------------------------------------------------------------- matching
def _valid_rows(boxes: np.ndarray | None, class_ids: np.ndarray) -> np.ndarray:
    """True for rows that are not padding (class id > 0 and box not all zeros)."""
    valid = class_ids > 0
    if boxes is not None and len(boxes):
        valid &= np.any(boxes != 0, axis=1)
    return valid


def _prepare(gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores, pred_masks, use_masks):
    gt_class_ids = np.asarray(gt_class_ids, dtype=np.int64).reshape(-1)
    pred_class_ids = np.asarray(pred_class_ids, dtype=np.int64).reshape(-1)
    pred_scores = np.asarray(pred_scores, dtype=np.float64).reshape(-1)
    if use_masks:
        if gt_masks is None or pred_masks is None:
            raise ValueError("use_masks=True needs gt_masks and pred_masks")
        gt_masks = _as_bool_masks(gt_masks, "gt_masks")
        pred_masks = _as_bool_masks(pred_masks, "pred_masks")
        if gt_boxes is None:
            gt_boxes = extract_boxes(gt_masks)
        if pred_boxes is None:
            pred_boxes = extract_boxes(pred_masks)
    elif gt_boxes is None or pred_boxes is None:
        raise ValueError("use_masks=False needs gt_boxes and pred_boxes")
    gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    pred_boxes = np.asarray(pred_boxes, dtype=np.float64).reshape(-1, 4)
    n_gt, n_pred = len(gt_class_ids), len(pred_class_ids)
    if len(gt_boxes) != n_gt:
        raise ValueError(f"{len(gt_boxes)} gt_boxes but {n_gt} gt_class_ids")
    if len(pred_boxes) != n_pred or len(pred_scores) != n_pred:
        raise ValueError(
            f"pred_boxes/pred_class_ids/pred_scores lengths differ: {len(pred_boxes)}/{n_pred}/{len(pred_scores)}"
        )
    if use_masks:
        if gt_masks.shape[2] != n_gt or pred_masks.shape[2] != n_pred:
            raise ValueError(
                f"mask counts ({gt_masks.shape[2]} gt, {pred_masks.shape[2]} pred) "
                f"differ from class id counts ({n_gt}, {n_pred})"
            )
    gt_valid = _valid_rows(gt_boxes, gt_class_ids)
    pred_valid = _valid_rows(pred_boxes, pred_class_ids)
    if use_masks:
        overlaps = mask_iou(pred_masks, gt_masks)
    else:
        overlaps = box_iou(pred_boxes, gt_boxes)
    overlaps[~pred_valid, :] = 0.0
    overlaps[:, ~gt_valid] = 0.0
    return dict(
        gt_class_ids=gt_class_ids,
        pred_class_ids=pred_class_ids,
        pred_scores=pred_scores,
        gt_valid=gt_valid,
        pred_valid=pred_valid,
        overlaps=overlaps,
    )


def _score_order(scores: np.ndarray) -> np.ndarray:
    """Matterport's prediction order: ``np.argsort(scores)[::-1]`` (equal scores: later rows first)."""
    return np.argsort(scores)[::-1]


def _greedy_match(overlaps, gt_class_ids, pred_class_ids, pred_scores, gt_valid, pred_valid, iou_threshold):
    """Matterport's ``compute_matches`` loop on the non-padding rows; indices map back to the input."""
    gt_rows, pred_rows = np.flatnonzero(gt_valid), np.flatnonzero(pred_valid)
    ious = overlaps[np.ix_(pred_rows, gt_rows)]
    gt_cls, pred_cls = gt_class_ids[gt_rows], pred_class_ids[pred_rows]
    gt_match = np.full(len(gt_valid), -1, dtype=np.int64)
    pred_match = np.full(len(pred_valid), -1, dtype=np.int64)
    for i in _score_order(pred_scores[pred_rows]):
        for j in np.argsort(ious[i])[::-1]:
            if gt_match[gt_rows[j]] > -1:
                continue
            if ious[i, j] < iou_threshold:
                break
            if pred_cls[i] == gt_cls[j]:
                gt_match[gt_rows[j]] = pred_rows[i]
                pred_match[pred_rows[i]] = gt_rows[j]
                break
    return gt_match, pred_match


def _sorted_valid(p, pred_valid=None) -> list[int]:
    """Input rows of the non-padding predictions (or of ``pred_valid``) in Matterport's score order."""
    rows = np.flatnonzero(p["pred_valid"] if pred_valid is None else pred_valid)
    return [int(rows[i]) for i in _score_order(p["pred_scores"][rows])]


def _image_ap(p, pred_valid, iou_threshold: float = 0.5):
    """(per-image AP, pred_match) of a prepared image using only the ``pred_valid`` rows."""
    _, match = _greedy_match(
        p["overlaps"],
        p["gt_class_ids"],
        p["pred_class_ids"],
        p["pred_scores"],
        p["gt_valid"],
        pred_valid,
        iou_threshold,
    )
    return _ap_from_tp(match[_sorted_valid(p, pred_valid)] >= 0, int(p["gt_valid"].sum()))[0], match


def _confident_rows(p, min_confidence: float, max_instances: int | None) -> np.ndarray:
    """The predictions a model run at ``min_confidence`` / ``max_instances`` would have returned:
    score >= min_confidence, the top ``max_instances`` by score."""
    valid = p["pred_valid"] & (p["pred_scores"] >= min_confidence)
    keep = _sorted_valid(p, valid)[:max_instances]
    out = np.zeros_like(valid)
    out[keep] = True
    return out


def match_detections(
    gt_boxes,
    gt_class_ids,
    gt_masks,
    pred_boxes,
    pred_class_ids,
    pred_scores,
    pred_masks,
    iou_threshold: float = 0.5,
    use_masks: bool = True,
):
    """Greedy score-ordered matching of predictions to GT (Matterport's ``compute_matches``).

    Returns ``(gt_match, pred_match, overlaps)``:

    * ``gt_match`` [N_gt]: index of the prediction matched to each GT row, or -1 (also -1 for
      padding rows);
    * ``pred_match`` [N_pred]: index of the GT row matched to each prediction, or -1, in the
      **input order** of the predictions;
    * ``overlaps`` [N_pred, N_gt]: mask IoU (``use_masks``) or box IoU, input order, 0 for padding.

    Boxes may be ``None`` when ``use_masks`` is true (they are then derived from the masks only to
    detect padding); masks may be ``None`` when ``use_masks`` is false.
    """
    p = _prepare(gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores, pred_masks, use_masks)
    gt_match, pred_match = _greedy_match(
        p["overlaps"],
        p["gt_class_ids"],
        p["pred_class_ids"],
        p["pred_scores"],
        p["gt_valid"],
        p["pred_valid"],
        iou_threshold,
    )
    return gt_match, pred_match, p["overlaps"]


# ----------------------------------------------------------------------------- AP
def _ap_from_tp(tp_sorted: np.ndarray, n_gt: int):
    """AP, precisions, recalls from TP flags of score-sorted predictions and the GT count, with
    Matterport's arithmetic (float32 recalls). No GT: AP 0.0 (see the module docstring)."""
    tp_sorted = np.asarray(tp_sorted, dtype=bool).reshape(-1)
    ctp = np.cumsum(tp_sorted)
    precisions = ctp / (np.arange(len(tp_sorted)) + 1)
    recalls = ctp.astype(np.float32) / n_gt if n_gt > 0 else np.zeros(len(tp_sorted), np.float32)
    precisions = np.concatenate([[0], precisions, [0]])
    recalls = np.concatenate([[0], recalls, [1]])
    precisions = np.maximum.accumulate(precisions[::-1])[::-1]  # decreasing envelope from the right
    idx = np.flatnonzero(recalls[:-1] != recalls[1:]) + 1
    ap = float(np.sum((recalls[idx] - recalls[idx - 1]) * precisions[idx])) if n_gt > 0 else 0.0
    return ap, precisions, recalls


def compute_ap(
    gt_boxes,
    gt_class_ids,
    gt_masks,
    pred_boxes,
    pred_class_ids,
    pred_scores,
    pred_masks,
    iou_threshold: float = 0.5,
    use_masks: bool = True,
):
    """Per-image AP at one IoU threshold (Matterport's ``compute_ap``).

    Returns ``(mAP, precisions, recalls, overlaps)``: precisions/recalls are the padded,
    monotone curves along the score-sorted predictions (padding rows dropped); ``overlaps`` is
    as in :func:`match_detections` (input order). All classes of the image are pooled.

    Edge cases: no GT -> 0.0 (Matterport: 0.0 without predictions, NaN with some); GT but no
    predictions -> 0.0 (padding rows do not count). Never NaN.
    """
    p = _prepare(gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores, pred_masks, use_masks)
    _, pred_match = _greedy_match(
        p["overlaps"],
        p["gt_class_ids"],
        p["pred_class_ids"],
        p["pred_scores"],
        p["gt_valid"],
        p["pred_valid"],
        iou_threshold,
    )
    order = _sorted_valid(p)
    ap, precisions, recalls = _ap_from_tp(pred_match[order] >= 0, int(p["gt_valid"].sum()))
    return ap, precisions, recalls, p["overlaps"]


def compute_ap_range(
    gt_boxes,
    gt_class_ids,
    gt_masks,
    pred_boxes,
    pred_class_ids,
    pred_scores,
    pred_masks,
    iou_thresholds=None,
    use_masks: bool = True,
    verbose: bool = False,
) -> float:
    """Mean of :func:`compute_ap` over IoU thresholds (default ``np.arange(0.5, 1.0, 0.05)``).

    The IoU matrix is computed once and re-matched per threshold.
    """
    if iou_thresholds is None:
        iou_thresholds = np.arange(0.5, 1.0, 0.05)
    p = _prepare(gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores, pred_masks, use_masks)
    order = _sorted_valid(p)
    n_gt = int(p["gt_valid"].sum())
    aps = []
    for t in iou_thresholds:
        _, pred_match = _greedy_match(
            p["overlaps"],
            p["gt_class_ids"],
            p["pred_class_ids"],
            p["pred_scores"],
            p["gt_valid"],
            p["pred_valid"],
            float(t),
        )
        ap = _ap_from_tp(pred_match[order] >= 0, n_gt)[0]
        aps.append(ap)
        if verbose:
            print(f"AP @{t:.2f}:\t {ap:.3f}")
    mean = float(np.mean(aps)) if aps else float("nan")
    if verbose:
        lo, hi = (float(iou_thresholds[0]), float(iou_thresholds[-1])) if aps else (0, 0)
        print(f"AP @{lo:.2f}-{hi:.2f}:\t {mean:.3f}")
    return mean


def compute_recall(pred_boxes, gt_boxes, iou: float):
    """Fraction of GT boxes covered by some prediction with box IoU ``>= iou`` (Matterport).

    Each prediction votes for its best-overlapping GT; recall is the number of distinct GT hit
    divided by the number of GT. All-zero (padding) boxes are ignored on both sides. Returns
    ``(recall, positive_ids)`` where ``positive_ids`` are input indices of predictions whose
    best IoU reaches ``iou``. With no GT the recall is 1.0 (nothing to find).
    """
    pred_boxes = np.asarray(pred_boxes, dtype=np.float64).reshape(-1, 4)
    gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    pv = np.any(pred_boxes != 0, axis=1)
    gv = np.any(gt_boxes != 0, axis=1)
    n_gt = int(gv.sum())
    if n_gt == 0:
        return 1.0, np.zeros(0, dtype=np.int64)
    overlaps = box_iou(pred_boxes, gt_boxes)
    overlaps[~pv] = 0.0
    overlaps[:, ~gv] = 0.0
    if overlaps.shape[0] == 0:
        return 0.0, np.zeros(0, dtype=np.int64)
    iou_max = overlaps.max(axis=1)
    iou_argmax = overlaps.argmax(axis=1)
    positive_ids = np.flatnonzero(pv & (iou_max >= iou))
    recall = len(set(iou_argmax[positive_ids].tolist())) / n_gt
    return float(recall), positive_ids


# ----------------------------------------------------------------------------- per-class
class _ImageMatch:
    """What dataset-level per-class AP needs from one image: per-prediction class, score, TP flag
    and per-class GT counts (padding dropped)."""

    __slots__ = ("pred_class_ids", "pred_scores", "pred_tp", "gt_class_ids")

    def __init__(self, prepared: dict, pred_match: np.ndarray):
        pv, gv = prepared["pred_valid"], prepared["gt_valid"]
        self.pred_class_ids = prepared["pred_class_ids"][pv]
        self.pred_scores = prepared["pred_scores"][pv]
        self.pred_tp = pred_match[pv] >= 0
        self.gt_class_ids = prepared["gt_class_ids"][gv]


def _per_class_from_matches(matches: Sequence[_ImageMatch], class_ids: Sequence[int] | None):
    """{class_id: (ap, precisions, recalls)} pooling detections over images (VOC style)."""
    if matches:
        pc = np.concatenate([m.pred_class_ids for m in matches])
        ps = np.concatenate([m.pred_scores for m in matches])
        pt = np.concatenate([m.pred_tp for m in matches])
        gc = np.concatenate([m.gt_class_ids for m in matches])
    else:
        pc = gc = np.zeros(0, dtype=np.int64)
        ps = np.zeros(0)
        pt = np.zeros(0, dtype=bool)
    if class_ids is None:
        class_ids = sorted(set(pc.tolist()) | set(gc.tolist()))
    out = {}
    for c in class_ids:
        sel = pc == c
        n_gt = int(np.sum(gc == c))
        if n_gt == 0 and not sel.any():
            out[int(c)] = (float("nan"), np.zeros(0), np.zeros(0))
            continue
        order = np.argsort(-ps[sel], kind="stable")  # VOC pooling: ties keep image order
        out[int(c)] = _ap_from_tp(pt[sel][order], n_gt)
    return out


def per_class_ap(
    gt_boxes,
    gt_class_ids,
    gt_masks,
    pred_boxes,
    pred_class_ids,
    pred_scores,
    pred_masks,
    iou_threshold: float = 0.5,
    use_masks: bool = True,
    class_ids: Sequence[int] | None = None,
    return_curves: bool = False,
):
    """Dataset-level AP per class id (VOC style): every argument is a **list over images** of the
    per-image arrays taken by :func:`compute_ap` (mask lists may be ``None`` when
    ``use_masks=False``).

    Matching is done per image (same rules as :func:`match_detections`); then, for each class,
    the detections of that class from all images are pooled, sorted by score (ties keep image
    order) and the all-points AP is computed against the number of GT of that class over all
    images. ``class_ids`` defaults to every class seen in GT or predictions.

    Returns ``{class_id: AP}`` (or ``{class_id: (AP, precisions, recalls)}`` with
    ``return_curves=True``). A class with neither GT nor predictions -> NaN; predictions but no
    GT -> 0.0.
    """
    n = len(gt_class_ids)
    if gt_masks is None:
        gt_masks = [None] * n
    if pred_masks is None:
        pred_masks = [None] * n
    if gt_boxes is None:
        gt_boxes = [None] * n
    if pred_boxes is None:
        pred_boxes = [None] * n
    lists = (gt_boxes, gt_masks, pred_boxes, pred_class_ids, pred_scores, pred_masks)
    if any(len(x) != n for x in lists):
        raise ValueError("per_class_ap: all per-image lists must have the same length")
    matches = []
    for k in range(n):
        p = _prepare(
            gt_boxes[k],
            gt_class_ids[k],
            gt_masks[k],
            pred_boxes[k],
            pred_class_ids[k],
            pred_scores[k],
            pred_masks[k],
            use_masks,
        )
        _, pm = _greedy_match(
            p["overlaps"],
            p["gt_class_ids"],
            p["pred_class_ids"],
            p["pred_scores"],
            p["gt_valid"],
            p["pred_valid"],
            iou_threshold,
        )
        matches.append(_ImageMatch(p, pm))
    res = _per_class_from_matches(matches, class_ids)
    if return_curves:
        return res
    return {c: v[0] for c, v in res.items()}


# ----------------------------------------------------------------------------- Evaluator
def _xywh(box) -> list[float]:
    y1, x1, y2, x2 = (float(v) for v in box)
    return [x1, y1, x2 - x1, y2 - y1]


class Evaluator:
    """Accumulates GT and predictions image by image and summarises them.

    ``class_names[i]`` is the name of class id ``i`` (Matterport's ``dataset.class_names``);
    id 0 is background and is never a category. Masks are encoded to COCO RLE on :meth:`add`, so
    full-size masks are not kept in memory.

    ``verbose_coco=True`` lets pycocotools print its usual output; otherwise it is captured and
    kept in :attr:`coco_log` (a string) after :meth:`summary`.

    ``reference_confidence`` / ``reference_max``: also score each image with only the predictions a
    model run at that ``DETECTION_MIN_CONFIDENCE`` / ``DETECTION_MAX_INSTANCES`` would return (the
    figure Matterport-style runs report), beside the headline that ranks every prediction given.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        verbose_coco: bool = False,
        reference_confidence: float | None = None,
        reference_max: int | None = None,
    ):
        self.class_names = list(class_names)
        self.reference_confidence = reference_confidence
        self.reference_max = reference_max
        self._ref_ap: dict[str, list[float]] = {"mask_AP50": [], "box_AP50": []}
        self._num_gt_per_image: list[int] = []
        self._num_pred_per_image: list[int] = []
        if len(self.class_names) < 2:
            raise ValueError("class_names must hold background (id 0) and at least one class")
        self.verbose_coco = verbose_coco
        self.coco_log = ""
        self._image_ids: dict[Hashable, int] = {}
        self._images: list[dict] = []
        self._gt_anns: list[dict] = []
        self._dt_segm: list[dict] = []
        self._dt_bbox: list[dict] = []
        self._mask_ap: list[float] = []
        self._box_ap: list[float] = []
        self._mask_matches: list[_ImageMatch] = []
        self._box_matches: list[_ImageMatch] = []
        self.num_gt = 0
        self.num_pred = 0

    def __len__(self) -> int:
        return len(self._images)

    @property
    def num_images(self) -> int:
        return len(self._images)

    def _check_ids(self, ids: np.ndarray, what: str) -> None:
        if ids.size and (ids.min() < 0 or ids.max() >= len(self.class_names)):
            raise ValueError(f"{what} outside [0, {len(self.class_names)}): {ids.tolist()}")

    def add(
        self, image_id: Hashable, gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores, pred_masks
    ) -> dict:
        """Add one image (arrays at the original image size). Returns ``{"mask_AP50", "box_AP50"}``
        for that image. ``image_id`` is any hashable, unique per image."""
        if image_id in self._image_ids:
            raise ValueError(f"image_id {image_id!r} added twice")
        if gt_boxes is None:
            gt_boxes = extract_boxes(gt_masks)
        if pred_boxes is None:
            pred_boxes = extract_boxes(pred_masks)
        pm = _prepare(
            gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores, pred_masks, use_masks=True
        )
        pb = _prepare(
            gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores, pred_masks, use_masks=False
        )
        self._check_ids(pm["gt_class_ids"], "gt_class_ids")
        self._check_ids(pm["pred_class_ids"], "pred_class_ids")
        gt_masks = _as_bool_masks(gt_masks, "gt_masks")
        pred_masks = _as_bool_masks(pred_masks, "pred_masks")
        if gt_masks.shape[:2] != pred_masks.shape[:2]:
            raise ValueError("gt_masks and pred_masks must have the same [H, W]")
        gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
        pred_boxes = np.asarray(pred_boxes, dtype=np.float64).reshape(-1, 4)

        # Matterport-style per-image AP and dataset-level match records, IoU 0.5.
        result = {}
        for key, p, store_ap, store_m in (
            ("mask_AP50", pm, self._mask_ap, self._mask_matches),
            ("box_AP50", pb, self._box_ap, self._box_matches),
        ):
            ap, match = _image_ap(p, p["pred_valid"])
            store_ap.append(ap)
            store_m.append(_ImageMatch(p, match))
            result[key] = ap
            if self.reference_confidence is not None:
                ref = _image_ap(p, _confident_rows(p, self.reference_confidence, self.reference_max))[0]
                self._ref_ap[key].append(ref)
                result[f"{key}_at_min_confidence"] = ref
        self._num_gt_per_image.append(int(pm["gt_valid"].sum()))
        self._num_pred_per_image.append(int(pm["pred_valid"].sum()))

        # COCO records (padding dropped).
        coco_id = len(self._images) + 1
        self._image_ids[image_id] = coco_id
        h, w = gt_masks.shape[:2]
        self._images.append({"id": coco_id, "height": int(h), "width": int(w), "file_name": str(image_id)})
        from pycocotools import mask as mask_utils

        from mrcnn.ops.rle import encode_rle

        gv, pv = pm["gt_valid"], pm["pred_valid"]
        gt_rles = encode_rle(gt_masks[..., gv])
        for rle, box, cid in zip(gt_rles, gt_boxes[gv], pm["gt_class_ids"][gv]):
            self._gt_anns.append(
                {
                    "id": len(self._gt_anns) + 1,
                    "image_id": coco_id,
                    "category_id": int(cid),
                    "segmentation": rle,
                    "area": float(mask_utils.area(rle)),
                    "bbox": _xywh(box),
                    "iscrowd": 0,
                }
            )
        dt_rles = encode_rle(pred_masks[..., pv])
        for rle, box, cid, s in zip(dt_rles, pred_boxes[pv], pm["pred_class_ids"][pv], pm["pred_scores"][pv]):
            # Separate lists: a result holding both "bbox" and "segmentation" makes loadRes take
            # its box area even for segm evaluation (wrong area ranges for APs/APm/APl).
            self._dt_segm.append({"image_id": coco_id, "category_id": int(cid), "segmentation": rle, "score": float(s)})
            self._dt_bbox.append({"image_id": coco_id, "category_id": int(cid), "bbox": _xywh(box), "score": float(s)})
        self.num_gt += int(gv.sum())
        self.num_pred += int(pv.sum())
        return result

    # -- COCO
    def coco_gt_dataset(self) -> dict:
        """The accumulated GT as a COCO-format dict (categories are ids 1..K-1)."""
        return {
            "info": {"description": "mrcnn.metrics.Evaluator"},
            "images": list(self._images),
            "annotations": list(self._gt_anns),
            "categories": [{"id": i, "name": n} for i, n in enumerate(self.class_names) if i > 0],
        }

    def _coco_eval(self, iou_type: str, log: io.StringIO) -> dict[str, float]:
        results = self._dt_segm if iou_type == "segm" else self._dt_bbox
        if not results:
            # loadRes cannot take an empty list; AP/AR are 0 wherever there is GT to find.
            out = {}
            for k in COCO_METRIC_NAMES:
                if k in _COCO_AREA_RANGES:
                    lo, hi = _COCO_AREA_RANGES[k]
                    has = any(lo <= a["area"] <= hi for a in self._gt_anns)
                else:
                    has = bool(self._gt_anns)
                out[k] = 0.0 if has else float("nan")
            return out
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        redirect = contextlib.nullcontext() if self.verbose_coco else contextlib.redirect_stdout(log)
        with redirect:
            gt = COCO()
            gt.dataset = self.coco_gt_dataset()
            gt.createIndex()
            dt = gt.loadRes([dict(r) for r in results])
            ev = COCOeval(gt, dt, iouType=iou_type)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        stats = [float(s) for s in ev.stats[: len(COCO_METRIC_NAMES)]]
        return {k: (s if s >= 0 else float("nan")) for k, s in zip(COCO_METRIC_NAMES, stats)}

    # -- summary
    def summary(self) -> dict[str, Any]:
        """All metrics as a dict of plain Python floats/lists (see module docstring for edge cases).

        * ``mask_mAP50`` / ``box_mAP50``: Matterport's number -- the **mean over the images that
          have ground truth** of the per-image AP@0.5 (mask IoU / box IoU); NaN without such images.
        * ``images_with_gt``, ``images_without_gt`` and ``images_without_gt_with_predictions`` (false
          positives on images with nothing to find).
        * ``mask_mAP50_at_min_confidence`` / ``box_mAP50_at_min_confidence`` (with a reference
          confidence): the same mean using only the predictions at ``reference_confidence``.
        * ``per_class_mask_AP50`` / ``per_class_box_AP50``: ``{class name: AP}``, dataset-level
          (detections pooled over images); NaN for a class absent from GT and predictions.
        * ``coco_segm`` / ``coco_bbox``: pycocotools COCOeval ``{AP, AP50, AP75, APs, APm, APl,
          AR1, AR10, AR100}``; NaN where pycocotools reports -1 (no GT in range).
        * ``pr_curve``: ``{class name: {"precision", "recall", "ap"}}`` for mask IoU 0.5,
          dataset-level; precision is the monotone envelope AP integrates.
        * ``num_images``, ``num_gt``, ``num_pred`` (padding excluded).
        """
        class_ids = list(range(1, len(self.class_names)))
        mask_pc = _per_class_from_matches(self._mask_matches, class_ids)
        box_pc = _per_class_from_matches(self._box_matches, class_ids)
        name = self.class_names.__getitem__
        log = io.StringIO()
        coco_segm = self._coco_eval("segm", log)
        coco_bbox = self._coco_eval("bbox", log)
        self.coco_log = log.getvalue()
        has_gt = np.asarray(self._num_gt_per_image) > 0
        no_gt_fp = int(np.sum(~has_gt & (np.asarray(self._num_pred_per_image) > 0))) if len(has_gt) else 0

        def mean_over_gt(values):
            values = np.asarray(values, dtype=np.float64)
            return float(values[has_gt].mean()) if has_gt.any() else float("nan")

        reference = {}
        if self.reference_confidence is not None:
            reference = {
                "min_confidence": float(self.reference_confidence),
                "max_instances": self.reference_max,
                "mask_mAP50_at_min_confidence": mean_over_gt(self._ref_ap["mask_AP50"]),
                "box_mAP50_at_min_confidence": mean_over_gt(self._ref_ap["box_AP50"]),
            }
        return {
            "num_images": self.num_images,
            "num_gt": self.num_gt,
            "num_pred": self.num_pred,
            "images_with_gt": int(has_gt.sum()),
            "images_without_gt": int((~has_gt).sum()),
            "images_without_gt_with_predictions": no_gt_fp,
            "mask_mAP50": mean_over_gt(self._mask_ap),
            "box_mAP50": mean_over_gt(self._box_ap),
            **reference,
            "per_class_mask_AP50": {name(c): float(v[0]) for c, v in mask_pc.items()},
            "per_class_box_AP50": {name(c): float(v[0]) for c, v in box_pc.items()},
            "coco_segm": coco_segm,
            "coco_bbox": coco_bbox,
            "pr_curve": {
                name(c): {"precision": v[1].tolist(), "recall": v[2].tolist(), "ap": float(v[0])}
                for c, v in mask_pc.items()
                if not math.isnan(v[0])
            },
        }


# ----------------------------------------------------------------------------- table
def _fmt(x: Any) -> str:
    if x is None:
        return "n/a"
    x = float(x)
    return "n/a" if math.isnan(x) else f"{x:.3f}"


def format_table(summary: dict[str, Any]) -> str:
    """A plain-text table of an :meth:`Evaluator.summary` dict."""
    lines = [
        f"images: {summary.get('num_images', 0)}   GT instances: {summary.get('num_gt', 0)}   "
        f"predictions: {summary.get('num_pred', 0)}",
        "",
        f"Matterport mAP@0.5 (mean over the {summary.get('images_with_gt', 0)} images with GT, every detection "
        f"ranked):  mask {_fmt(summary.get('mask_mAP50'))}   box {_fmt(summary.get('box_mAP50'))}",
    ]
    if "min_confidence" in summary:
        lines.append(
            f"  same, only detections >= {summary['min_confidence']:g} (DETECTION_MIN_CONFIDENCE, as "
            f"Matterport runs report):  mask {_fmt(summary.get('mask_mAP50_at_min_confidence'))}   "
            f"box {_fmt(summary.get('box_mAP50_at_min_confidence'))}"
        )
    lines += [
        f"images without GT: {summary.get('images_without_gt', 0)} "
        f"({summary.get('images_without_gt_with_predictions', 0)} with false positives)",
        "",
    ]
    head = "COCO  " + "".join(f"{k:>8}" for k in COCO_METRIC_NAMES)
    lines += [head, "-" * len(head)]
    for key, label in (("coco_segm", "segm  "), ("coco_bbox", "bbox  ")):
        d = summary.get(key) or {}
        lines.append(label + "".join(f"{_fmt(d.get(k)):>8}" for k in COCO_METRIC_NAMES))
    mask_pc = summary.get("per_class_mask_AP50") or {}
    box_pc = summary.get("per_class_box_AP50") or {}
    names = list(dict.fromkeys(list(mask_pc) + list(box_pc)))
    if names:
        width = max(12, max(len(str(n)) for n in names) + 2)
        head = f"{'class':<{width}}{'mask AP50':>10}{'box AP50':>10}"
        lines += ["", "Per-class AP@0.5 (dataset-level)", head, "-" * len(head)]
        for n in names:
            lines.append(f"{str(n):<{width}}{_fmt(mask_pc.get(n)):>10}{_fmt(box_pc.get(n)):>10}")
    return "\n".join(lines)
