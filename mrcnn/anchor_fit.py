"""Fit RPN anchors (``RPN_ANCHOR_SCALES`` / ``RPN_ANCHOR_RATIOS``) to the ground-truth boxes of a dataset.

The anchors are kept in Matterport's form: one square-equivalent side length per pyramid level
(``len(scales) == len(BACKBONE_STRIDES)``, increasing) and one set of width/height ratios shared by
every level. Boxes are measured in *network-input pixels*, i.e. after the resize the model applies
(:func:`boxes_at_input_size`).

Two kinds of coverage are reported:

* **shape-only** (:func:`anchor_coverage`): every box and anchor is aligned at a common centre
  (YOLO-style); it measures whether the anchor *shapes* match the box shapes;
* **positional** (:func:`anchor_recall_positional`): each box against the real anchor grid of the
  config (:func:`mrcnn.ops.anchors.get_anchors`); anchors sit on a stride grid, so a small anchor on a
  coarse level can miss a box it matches in shape. This is what the RPN's target assignment sees.

:func:`fit_anchors` searches a small grid of geometric scale progressions (base, factor) crossed
with a few candidate ratio sets (data quantiles / 1-D k-means of the log aspect ratio, the default
ratios recentred on the data), always including the config's own values, and keeps the candidate
with the best recall@0.5 and then mean IoU, so the fit is never worse than the defaults on the boxes
it was fitted to. Those are the training boxes and each of them at 1/``scale_margin`` to ``scale_margin``
times its size (default 2): photos to come are shot closer or farther than the training ones, and a fit
to the training sizes alone misses them (on recomposed real face-mask photos, fitted to 65 training
boxes of 22-165 px, 2 of 16 val masks of 19-231 px had no anchor at IoU 0.5). Everything is
deterministic given ``seed``.

Conventions: ``wh`` arrays are ``[N, 2]`` as (width, height); :func:`anchor_shapes` returns
(height, width) as :func:`mrcnn.visualize.plot_anchor_fit` expects; boxes are (y1, x1, y2, x2).
This module only needs numpy at import time (TensorFlow-backed helpers are imported lazily).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mrcnn.config import ConfigError
from mrcnn.ops.anchors import AnchorSpec

__all__ = [
    "AnchorFit",
    "iou_wh",
    "kmeans_iou",
    "anchor_shapes",
    "anchor_coverage",
    "anchor_recall_positional",
    "positional_coverage",
    "fit_anchors",
    "validate_fit",
    "boxes_at_input_size",
    "boxes_to_wh",
    "widen_boxes",
    "holdout_coverage",
    "format_fit_report",
    "format_holdout_report",
]

#: Scale-progression factors tried by :func:`fit_anchors`. FPN/Matterport use 2 (scale/stride constant,
#: which suits an RPN head shared by all levels); the others are preferred only when clearly better.
DEFAULT_FACTORS = (2.0, 1.75, 2.5, 1.5, 3.0)


# ------------------------------------------------------------------------------------------ helpers
def boxes_to_wh(boxes: np.ndarray) -> np.ndarray:
    """(y1, x1, y2, x2) boxes [N, 4] -> (width, height) [N, 2]."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.stack([boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]], axis=1)


def _as_wh(wh) -> np.ndarray:
    wh = np.asarray(wh, dtype=np.float64)
    if wh.ndim != 2 or wh.shape[1] != 2:
        raise ValueError(f"expected [N, 2] (width, height) values, got shape {wh.shape}")
    return wh


def iou_wh(wh1, wh2) -> np.ndarray:
    """IoU of boxes aligned at a common centre: [N, 2] x [K, 2] (width, height) -> [N, K].

    ``inter = min(w1, w2) * min(h1, h2)``; degenerate (zero-area) pairs give 0.
    """
    a = _as_wh(wh1)
    b = _as_wh(wh2)
    inter = np.minimum(a[:, None, 0], b[None, :, 0]) * np.minimum(a[:, None, 1], b[None, :, 1])
    union = (a[:, 0] * a[:, 1])[:, None] + (b[:, 0] * b[:, 1])[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


# ------------------------------------------------------------------------------------------ k-means
def _kmeans_once(wh: np.ndarray, k: int, rng: np.random.Generator, max_iter: int, update: str):
    n = len(wh)
    # k-means++ seeding with d = 1 - IoU
    centres = [wh[int(rng.integers(n))]]
    best = iou_wh(wh, np.array(centres))[:, 0]
    for _ in range(1, k):
        d2 = np.square(1.0 - best)
        total = d2.sum()
        idx = int(rng.integers(n)) if total <= 0 else int(rng.choice(n, p=d2 / total))
        centres.append(wh[idx])
        best = np.maximum(best, iou_wh(wh, wh[idx : idx + 1])[:, 0])
    centres = np.array(centres, dtype=np.float64)
    reduce = np.median if update == "median" else np.mean
    assign = None
    for _ in range(max_iter):
        iou = iou_wh(wh, centres)
        new_assign = iou.argmax(axis=1)
        if assign is not None and np.array_equal(new_assign, assign):
            break
        assign = new_assign
        best = iou[np.arange(n), assign]
        for j in range(k):
            members = wh[assign == j]
            if len(members):
                centres[j] = reduce(members, axis=0)
            else:  # empty cluster: restart it on the worst-covered box
                worst = int(np.argmin(best))
                centres[j] = wh[worst]
                best[worst] = 1.0
    iou = iou_wh(wh, centres)
    return centres, float(iou.max(axis=1).mean())


def kmeans_iou(
    wh,
    k: int,
    *,
    seed: int = 0,
    max_iter: int = 300,
    n_init: int = 5,
    update: str = "median",
    return_score: bool = False,
):
    """k-means of box shapes with distance ``1 - IoU`` (centre-aligned), YOLOv2-style.

    ``wh``: [N, 2] (width, height). k-means++ seeding on the same distance; ``update`` "median"
    (robust, the default) or "mean"; ``n_init`` restarts from one ``numpy.random.default_rng(seed)``,
    keeping the one with the best mean IoU. Returns the centroids [k, 2] (width, height) sorted by
    area (and ``mean IoU`` too with ``return_score=True``). Deterministic given ``seed``.
    """
    wh = _as_wh(wh)
    wh = wh[(wh > 0).all(axis=1)]
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if len(wh) < k:
        raise ValueError(f"kmeans_iou needs at least k={k} boxes with positive size, got {len(wh)}")
    if update not in ("median", "mean"):
        raise ValueError(f"update must be 'median' or 'mean', got {update!r}")
    rng = np.random.default_rng(seed)
    best_c, best_s = None, -1.0
    for _ in range(max(1, int(n_init))):
        c, s = _kmeans_once(wh, k, rng, max_iter, update)
        if s > best_s + 1e-12:
            best_c, best_s = c, s
    order = np.lexsort((best_c[:, 0], best_c[:, 0] * best_c[:, 1]))
    best_c = best_c[order]
    return (best_c, best_s) if return_score else best_c


# ------------------------------------------------------------------------------------- coverage
def anchor_shapes(scales: Sequence[float], ratios: Sequence[float]) -> np.ndarray:
    """Matterport anchor shapes [S * R, 2] as (height, width), level-major: ``h = s / sqrt(r)``,
    ``w = s * sqrt(r)`` with ``r`` = width / height (as :func:`mrcnn.ops.anchors.generate_anchors`)."""
    s = np.asarray(scales, dtype=np.float64).reshape(-1, 1)
    r = np.asarray(ratios, dtype=np.float64).reshape(1, -1)
    h = s / np.sqrt(r)
    w = s * np.sqrt(r)
    return np.stack([h.ravel(), w.ravel()], axis=1)


def _summarise(best: np.ndarray, level: np.ndarray, n_levels: int) -> dict[str, Any]:
    n = len(best)
    return {
        "n_boxes": int(n),
        "mean_iou": float(best.mean()) if n else 0.0,
        "recall@0.5": float((best >= 0.5).mean()) if n else 0.0,
        "recall@0.7": float((best >= 0.7).mean()) if n else 0.0,
        "per_level": np.bincount(level, minlength=n_levels).astype(int).tolist() if n else [0] * n_levels,
    }


def anchor_coverage(box_wh, scales: Sequence[float], ratios: Sequence[float]) -> dict[str, Any]:
    """Shape-only coverage of boxes ``box_wh`` [N, 2] (width, height) by the anchor shapes.

    Returns ``{"n_boxes", "mean_iou", "recall@0.5", "recall@0.7", "per_level"}``: the mean over boxes
    of the best centre-aligned IoU with any anchor shape, the fraction of boxes whose best IoU reaches
    0.5 / 0.7, and per pyramid level how many boxes have their best anchor there.
    """
    wh = _as_wh(box_wh)
    hw = anchor_shapes(scales, ratios)
    iou = iou_wh(wh, hw[:, ::-1])
    arg = iou.argmax(axis=1) if len(wh) else np.zeros(0, int)
    best = iou.max(axis=1) if len(wh) else np.zeros(0)
    return _summarise(best, arg // len(ratios), len(scales))


def _image_shape(config, image_shape=None) -> tuple[int, int]:
    shape = config.IMAGE_SHAPE if image_shape is None else image_shape
    return int(shape[0]), int(shape[1])


def _positional_best(boxes: np.ndarray, scales, ratios, feature_shapes, strides, anchor_stride: int = 1):
    """Best IoU of each box with the anchor grid, and the level of that anchor, computed analytically.

    Per axis the overlap of two intervals only shrinks as their centres move apart, so the best anchor
    of a given shape is the one on the grid point nearest the box centre (per axis); this equals the
    brute-force maximum over :func:`mrcnn.ops.anchors.get_anchors` (tested) at a fraction of the cost.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    n = len(boxes)
    bh = boxes[:, 2] - boxes[:, 0]
    bw = boxes[:, 3] - boxes[:, 1]
    cy = boxes[:, 0] + bh / 2
    cx = boxes[:, 1] + bw / 2
    area = bh * bw
    best = np.zeros(n)
    level = np.zeros(n, dtype=int)
    ratios = np.asarray(ratios, dtype=np.float64)
    for lvl, (scale, shape, stride) in enumerate(zip(scales, feature_shapes, strides)):
        step = float(stride) * anchor_stride
        rows = len(range(0, int(shape[0]), anchor_stride))
        cols = len(range(0, int(shape[1]), anchor_stride))
        ay = np.clip(np.round(cy / step), 0, rows - 1) * step  # [N]
        ax = np.clip(np.round(cx / step), 0, cols - 1) * step
        ah = (scale / np.sqrt(ratios))[None, :]  # [1, R]
        aw = (scale * np.sqrt(ratios))[None, :]
        ih = np.minimum(ay[:, None] + ah / 2, boxes[:, 2:3]) - np.maximum(ay[:, None] - ah / 2, boxes[:, 0:1])
        iw = np.minimum(ax[:, None] + aw / 2, boxes[:, 3:4]) - np.maximum(ax[:, None] - aw / 2, boxes[:, 1:2])
        inter = np.clip(ih, 0, None) * np.clip(iw, 0, None)
        union = area[:, None] + ah * aw - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.where(union > 0, inter / union, 0.0).max(axis=1)
        better = iou > best
        best = np.where(better, iou, best)
        level = np.where(better, lvl, level)
    return best, level


def positional_coverage(boxes, scales, ratios, config, image_shape=None) -> dict[str, Any]:
    """Fast positional coverage of ``boxes`` [N, 4] (input pixels) by ``scales``/``ratios`` on the
    anchor grid of ``config`` (strides, RPN_ANCHOR_STRIDE, IMAGE_SHAPE); same result as
    :func:`anchor_recall_positional` with those scales/ratios set, without building every anchor."""
    shape, spec = _image_shape(config, image_shape), AnchorSpec.from_config(config)
    best, level = _positional_best(boxes, scales, ratios, spec.feature_shapes(shape), spec.strides, spec.anchor_stride)
    return _summarise(best, level, len(scales))


def anchor_recall_positional(boxes, config, image_shape=None, chunk_pairs: int = 4_000_000) -> dict[str, Any]:
    """Coverage of GT ``boxes`` [N, 4] (y1, x1, y2, x2 in network-input pixels) by the real anchor
    pyramid of ``config`` (:func:`mrcnn.ops.anchors.get_anchors` + :func:`compute_overlaps`).

    Returns the same keys as :func:`anchor_coverage`: mean best IoU, recall@0.5 / @0.7 (fraction of
    boxes whose best anchor reaches that IoU) and the level of each box's best anchor.
    """
    from mrcnn.ops.boxes import compute_overlaps

    shape, spec = _image_shape(config, image_shape), AnchorSpec.from_config(config)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    anchors = spec.anchors(shape)
    n_levels = len(spec.scales)
    bounds = np.cumsum(spec.anchors_per_level(shape))
    best = np.zeros(len(boxes))
    arg = np.zeros(len(boxes), dtype=int)
    step = max(1, int(chunk_pairs // max(1, len(anchors))))
    for i in range(0, len(boxes), step):
        iou = compute_overlaps(boxes[i : i + step], anchors)
        arg[i : i + step] = iou.argmax(axis=1)
        best[i : i + step] = iou.max(axis=1)
    level = np.searchsorted(bounds, arg, side="right")
    return _summarise(best, level, n_levels)


# ---------------------------------------------------------------------------------------- fitting
def widen_boxes(boxes_or_wh, margin: float, image_shape=None, steps: int = 2) -> np.ndarray:
    """Each box [N, 4] (y1, x1, y2, x2) or size [N, 2] (w, h) at ``2 * steps + 1`` sizes from 1/``margin``
    to ``margin`` times its own (geometric), about its centre; boxes stay inside ``image_shape`` (h, w),
    shifted in and at most its size. ``margin`` 1 returns the input. [N * (2 * steps + 1), 4 or 2]."""
    values = np.asarray(boxes_or_wh, dtype=np.float64)
    if margin < 1:
        raise ValueError(f"scale margin must be >= 1, got {margin}")
    if margin == 1 or len(values) == 0:
        return values
    factors = float(margin) ** np.linspace(-1.0, 1.0, 2 * steps + 1)
    if values.shape[1] == 2:
        return np.concatenate([values * f for f in factors])
    limit = np.array([np.inf, np.inf]) if image_shape is None else np.array(image_shape[:2], dtype=np.float64)
    centre = (values[:, :2] + values[:, 2:]) / 2
    size = values[:, 2:] - values[:, :2]
    out = []
    for f in factors:
        side = np.minimum(size * f, limit)
        low = np.clip(centre - side / 2, 0, limit - side)
        out.append(np.concatenate([low, low + side], axis=1))
    return np.concatenate(out)


@dataclass
class AnchorFit:
    """Result of :func:`fit_anchors`: Matterport-form anchors and a default-vs-fitted report."""

    scales: tuple
    ratios: list
    report: dict = field(default_factory=dict)
    boxes: np.ndarray | None = field(default=None, repr=False)  # the GT boxes fitted to (input pixels)

    def to_config(self) -> dict[str, Any]:
        """The config overrides: ``{"RPN_ANCHOR_SCALES": [...], "RPN_ANCHOR_RATIOS": [...]}``."""
        return {
            "RPN_ANCHOR_SCALES": [_plain(s) for s in self.scales],
            "RPN_ANCHOR_RATIOS": [_plain(r) for r in self.ratios],
        }


def _plain(v):
    v = float(v)
    return int(v) if v.is_integer() else v


def _round_ratio(r: float) -> float:
    return float(f"{r:.3g}")


def _spread_log(values: np.ndarray, min_gap: float) -> np.ndarray:
    """Sorted log values pushed apart to at least ``min_gap``, keeping their mean."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    mean = v.mean()
    for i in range(1, len(v)):
        v[i] = max(v[i], v[i - 1] + min_gap)
    return v - (v.mean() - mean)


def _ratio_candidates(wh: np.ndarray, default_ratios, n_ratios: int, min_gap: float = 0.25) -> list[tuple]:
    log_ar = np.log(wh[:, 0] / wh[:, 1])
    dflt = np.log(np.asarray(default_ratios, dtype=np.float64))
    if len(dflt) == n_ratios:
        offsets = np.sort(dflt) - np.median(dflt)
    else:
        span = (dflt.max() - dflt.min()) if len(dflt) > 1 else math.log(4)
        offsets = np.linspace(-span / 2, span / 2, n_ratios) if n_ratios > 1 else np.zeros(1)
    q = (np.arange(n_ratios) + 0.5) / n_ratios
    quant = np.quantile(log_ar, q)
    # 1-D k-means on the log aspect ratio, started at the quantiles (deterministic)
    km = quant.copy()
    for _ in range(100):
        assign = np.abs(log_ar[:, None] - km[None, :]).argmin(axis=1)
        new = np.array([np.median(log_ar[assign == j]) if np.any(assign == j) else km[j] for j in range(n_ratios)])
        if np.allclose(new, km):
            break
        km = new
    wide = np.quantile(log_ar, np.linspace(0.1, 0.9, n_ratios)) if n_ratios > 1 else quant
    sets = [dflt if len(dflt) == n_ratios else offsets, quant, km, np.median(log_ar) + offsets, wide]
    out: list[tuple] = []
    for s in sets:
        r = tuple(_round_ratio(x) for x in np.exp(_spread_log(s, min_gap)))
        if len(set(r)) == n_ratios and all(x > 0 for x in r) and r not in out:
            out.append(r)
    return out


def _as_boxes_or_wh(boxes_or_wh):
    arr = np.asarray(boxes_or_wh, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] not in (2, 4):
        raise ValueError(f"expected boxes [N, 4] (y1, x1, y2, x2) or sizes [N, 2] (width, height), got {arr.shape}")
    if arr.shape[1] == 4:
        wh = boxes_to_wh(arr)
        keep = (wh > 0).all(axis=1)
        return arr[keep], wh[keep]
    keep = (arr > 0).all(axis=1)
    return None, arr[keep]


def fit_anchors(
    boxes_or_wh,
    config,
    *,
    seed: int = 0,
    n_ratios: int | None = None,
    factors=DEFAULT_FACTORS,
    objective: str = "auto",
    image_shape=None,
    tol: float = 0.01,
    min_scale: float | None = None,
    min_ratio_gap: float = 0.25,
    n_init: int = 5,
    scale_margin: float = 2.0,
) -> AnchorFit:
    """Anchor scales (one per pyramid level) and ratios fitted to GT boxes, in Matterport's form.

    ``boxes_or_wh``: boxes [N, 4] (y1, x1, y2, x2) in network-input pixels (after the model's
    resize; see :func:`boxes_at_input_size`) or sizes [N, 2] (width, height). ``config`` gives the
    strides, the image shape and the default anchors. ``n_ratios`` defaults to
    ``len(config.RPN_ANCHOR_RATIOS)`` (keeps the RPN head's shape, so pretrained RPN weights still load).

    Candidates: geometric progressions ``scale_i = base * factor**i`` (``factors``; bases on a log grid
    and bases that put a level exactly on a k-means (1 - IoU) cluster size), with every
    ``scale_i >= stride_i`` (and ``scales[0] >= min_scale``, default the smallest stride; none above twice
    the image's longer side), crossed with
    ratio sets (default ratios, quantiles and 1-D k-means of log(w/h), defaults recentred on the median
    aspect; neighbouring fitted ratios differ by at least ``exp(min_ratio_gap)`` so some shape variety
    survives a narrow training set), plus the config's own anchors. Score: ``objective`` "positional" (real anchor grid; needs
    [N, 4] boxes) or "shape" (centre-aligned); "auto" = positional when boxes are given. The best
    recall@0.5 wins; among candidates within ``tol`` of the best mean IoU at that recall, the
    config's anchors are kept if they qualify, else factor 2 is preferred (FPN's scale/stride
    invariance), then the best mean IoU. Only candidates that lower neither recall@0.5 nor
    recall@0.7 against the config's anchors compete (on the anchor grid when boxes are given), so
    the fit is never worse than the defaults; ``report["kept_default_reason"]`` says why the
    defaults were kept. Candidates are scored on the boxes widened by ``scale_margin``
    (:func:`widen_boxes`: each box also at 1/margin..margin its size; 1 fits the boxes as they are);
    the report's coverage is on the boxes as given. Deterministic given ``seed``.
    """
    raw_boxes, raw_wh = _as_boxes_or_wh(boxes_or_wh)
    if len(raw_wh) == 0:
        raise ValueError("fit_anchors needs at least one box with positive width and height")
    shape = _image_shape(config, image_shape)
    boxes = None if raw_boxes is None else widen_boxes(raw_boxes, scale_margin, shape)
    wh = boxes_to_wh(boxes) if boxes is not None else widen_boxes(raw_wh, scale_margin)
    if objective == "auto":
        objective = "positional" if boxes is not None else "shape"
    if objective not in ("positional", "shape"):
        raise ValueError(f"objective must be 'auto', 'positional' or 'shape', got {objective!r}")
    if objective == "positional" and boxes is None:
        raise ValueError("objective='positional' needs boxes [N, 4], not sizes [N, 2]")
    strides = [float(s) for s in config.BACKBONE_STRIDES]
    n_levels = len(strides)
    n_ratios = int(n_ratios or len(config.RPN_ANCHOR_RATIOS))
    if n_ratios < 1:
        raise ValueError("n_ratios must be >= 1")
    min_scale = float(strides[0] if min_scale is None else min_scale)

    def evaluate(scales, ratios, widened=True):
        if objective == "positional":
            return positional_coverage(boxes if widened else raw_boxes, scales, ratios, config, shape)
        return anchor_coverage(wh if widened else raw_wh, scales, ratios)

    # k-means cluster sizes anchor some of the progressions
    k = min(n_levels, len(np.unique(wh, axis=0)))
    centres, km_score = kmeans_iou(wh, k, seed=seed, n_init=n_init, return_score=True)
    sizes = np.sqrt(centres[:, 0] * centres[:, 1])
    box_sizes = np.sqrt(wh[:, 0] * wh[:, 1])
    lo, hi = float(box_sizes.min()), float(box_sizes.max())

    ratio_sets = _ratio_candidates(wh, config.RPN_ANCHOR_RATIOS, n_ratios, min_ratio_gap)
    default = (tuple(config.RPN_ANCHOR_SCALES), tuple(float(r) for r in config.RPN_ANCHOR_RATIOS))
    candidates = [(default[0], default[1], None)]  # (scales, ratios, factor)
    seen = {(tuple(float(s) for s in default[0]), default[1])}
    for factor in factors:
        factor = float(factor)
        bases = [min_scale * 2 ** (t / 8) for t in range(0, 8 * 12)]
        bases += [c / factor**i for c in sizes for i in range(n_levels)]
        scale_sets = []
        for base in sorted(set(round(b, 6) for b in bases)):
            scales = tuple(float(max(1, round(base * factor**i))) for i in range(n_levels))
            if scales[0] < min_scale or any(s < st for s, st in zip(scales, strides)):
                continue
            if any(b <= a for a, b in zip(scales, scales[1:])):
                continue
            if scales[0] > hi * 1.5 or scales[-1] < lo / 1.5:
                continue  # no level near the data
            if scales[-1] > 2 * max(shape):
                continue  # IoU < 1/4 with any box inside the image: a level that matches nothing
            if scales not in scale_sets:
                scale_sets.append(scales)
        for ratios in ratio_sets:
            for scales in scale_sets:
                if (scales, ratios) not in seen:
                    seen.add((scales, ratios))
                    candidates.append((scales, ratios, factor))

    results = [evaluate(s, r) for s, r, _ in candidates]
    raw_results = results if scale_margin == 1 else [evaluate(s, r, widened=False) for s, r, _ in candidates]
    # Never worse than the defaults: a candidate may not lower recall@0.5 or recall@0.7, on the boxes as
    # given nor on them widened.
    never_worse = [
        i
        for i in range(len(candidates))
        if all(got[i][k] >= got[0][k] - 1e-12 for got in (results, raw_results) for k in ("recall@0.5", "recall@0.7"))
    ]
    best_recall = max(results[i]["recall@0.5"] for i in never_worse)
    at_recall = [i for i in never_worse if results[i]["recall@0.5"] >= best_recall - 1e-12]
    best_iou = max(results[i]["mean_iou"] for i in at_recall)
    good = [i for i in at_recall if results[i]["mean_iou"] >= best_iou - tol]

    def preference(i):
        f = candidates[i][2]
        rank = 0 if f is None else 1 + abs(math.log2(f) - 1.0)
        return (rank, -results[i]["mean_iou"], i)

    chosen = min(good, key=preference)
    reason = None
    if chosen != 0 and boxes is not None and objective == "shape":
        for fit_to in (boxes, raw_boxes):
            fitted_pos = positional_coverage(fit_to, candidates[chosen][0], candidates[chosen][1], config, shape)
            default_pos = positional_coverage(fit_to, candidates[0][0], candidates[0][1], config, shape)
            if any(fitted_pos[k] < default_pos[k] - 1e-12 for k in ("recall@0.5", "recall@0.7")):
                chosen, reason = 0, "the shape-only fit lowers recall on the anchor grid; kept the config's anchors"
    if chosen == 0 and reason is None:
        better = max(c["recall@0.5"] for c in results) > results[0]["recall@0.5"] + 1e-12
        reason = (
            "every candidate that raises recall@0.5 lowers recall@0.7; kept the config's anchors"
            if better
            else "the config's anchors already cover these boxes best; kept"
        )
    scales, ratios, factor = candidates[chosen]
    scales_out = tuple(_plain(s) for s in scales)
    ratios_out = [_plain(r) for r in ratios]

    def both(sc, ra):
        out = {
            "scales": [_plain(s) for s in sc],
            "ratios": [_plain(r) for r in ra],
            "shape": anchor_coverage(raw_wh, sc, ra),
        }
        out["positional"] = positional_coverage(raw_boxes, sc, ra, config, shape) if raw_boxes is not None else None
        return out

    report = {
        "n_boxes": int(len(raw_wh)),
        "scale_margin": float(scale_margin),
        "objective": objective,
        "image_shape": list(shape),
        "strides": [_plain(s) for s in strides],
        "default": both(*default),
        "fitted": both(scales_out, ratios_out),
        "kept_default": chosen == 0,
        "kept_default_reason": reason,
        "factor": factor,
        "n_candidates": len(candidates),
        "kmeans_hw": np.round(centres[:, ::-1], 2).tolist(),
        "kmeans_mean_iou": float(km_score),
        "box_size_range": [float(np.sqrt(raw_wh.prod(axis=1)).min()), float(np.sqrt(raw_wh.prod(axis=1)).max())],
        "seed": seed,
    }
    return AnchorFit(scales=scales_out, ratios=ratios_out, report=report)


def holdout_coverage(boxes, report: dict, config, image_shape=None) -> dict[str, Any]:
    """How the default and the fitted anchors of a fit ``report`` reach boxes [N, 4] (input pixels)
    they were not fitted to, a val subset's: positional coverage of each (as :func:`positional_coverage`),
    and every box either leaves below IoU 0.5 as ``{"index", "size" (sqrt(w * h)), "default_iou",
    "fitted_iou"}``. A box no anchor reaches gives the RPN no positive to learn or to propose it from."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    shape, spec = _image_shape(config, image_shape), AnchorSpec.from_config(config)
    out, best = {"n_boxes": int(len(boxes))}, {}
    for name in ("default", "fitted"):
        scales, ratios = report[name]["scales"], report[name]["ratios"]
        best[name], level = _positional_best(
            boxes, scales, ratios, spec.feature_shapes(shape), spec.strides, spec.anchor_stride
        )
        out[name] = _summarise(best[name], level, len(scales))
    size = np.sqrt(np.prod(boxes[:, 2:] - boxes[:, :2], axis=1))
    out["missed"] = [
        {
            "index": int(i),
            "size": float(size[i]),
            "default_iou": float(best["default"][i]),
            "fitted_iou": float(best["fitted"][i]),
        }
        for i in np.flatnonzero((best["default"] < 0.5) | (best["fitted"] < 0.5))
    ]
    return out


def validate_fit(fit: AnchorFit, config) -> None:
    """Raise :class:`ConfigError` when ``fit`` cannot be used with ``config``: wrong number of scales
    for ``BACKBONE_STRIDES``, non-positive or non-increasing scales, empty or non-positive ratios.
    The values are also applied to a copy of ``config`` and checked with :meth:`Config.validate`."""
    problems = []
    scales = list(fit.scales)
    ratios = list(fit.ratios)
    n_levels = len(config.BACKBONE_STRIDES)
    if len(scales) != n_levels:
        problems.append(
            f"{len(scales)} anchor scales for {n_levels} pyramid levels "
            f"(BACKBONE_STRIDES={list(config.BACKBONE_STRIDES)})"
        )
    if any(not s > 0 for s in scales):
        problems.append(f"anchor scales must be positive, got {scales}")
    if any(b <= a for a, b in zip(scales, scales[1:])):
        problems.append(f"anchor scales must increase level by level, got {scales}")
    if not ratios:
        problems.append("RPN_ANCHOR_RATIOS is empty")
    elif any(not r > 0 for r in ratios):
        problems.append(f"anchor ratios must be positive, got {ratios}")
    if not problems:
        trial = copy.deepcopy(config)
        trial.apply(fit.to_config())
        try:
            trial.validate()
        except ConfigError as e:  # only report what concerns the anchors
            lines = [ln.strip()[2:] for ln in str(e).splitlines()[1:] if "RPN_ANCHOR" in ln]
            problems.extend(lines)
    if problems:
        raise ConfigError("fitted anchors are invalid:\n  - " + "\n  - ".join(problems))


# ------------------------------------------------------------------------------- dataset boxes
def _resize_geometry(h: int, w: int, config):
    """(scale_y, scale_x, top, left) mapping original pixels to network-input pixels, as the model's
    resize does (:func:`mrcnn.ops.images.resize_geometry`; crop mode: no crop offset, it is random)."""
    from mrcnn.ops.images import ResizeSpec

    _, (h2, w2), padding = ResizeSpec.from_config(config).geometry(h, w)
    return h2 / h, w2 / w, padding[0][0], padding[1][0]


def boxes_at_input_size(dataset, config, image_ids=None, progress: bool = True) -> np.ndarray:
    """Boxes [N, 4] (y1, x1, y2, x2, float32) of every GT instance, in network-input pixels.

    Masks are rasterised at the original size (``dataset.load_mask``), boxed with
    :func:`mrcnn.ops.boxes.extract_bboxes`, then scaled and shifted exactly as the model's resize
    (``compute_scale`` + the padding offsets) would move them; images are never decoded or resized.
    In "crop" mode the random crop is not applied (boxes keep their scaled size). Empty masks are dropped.
    """
    from tqdm.auto import tqdm

    from mrcnn.ops.boxes import extract_bboxes

    if image_ids is None:
        image_ids = range(len(dataset.image_info))
    out = []
    for image_id in tqdm(list(image_ids), desc="GT boxes", unit="img", disable=not progress):
        masks, _ = dataset.load_mask(int(image_id))
        if masks.shape[-1] == 0:
            continue
        h, w = masks.shape[:2]
        sy, sx, top, left = _resize_geometry(h, w, config)
        b = extract_bboxes(masks).astype(np.float64)
        b = b[(b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])]
        out.append(b * np.array([sy, sx, sy, sx]) + np.array([top, left, top, left]))
    if not out:
        return np.zeros((0, 4), dtype=np.float32)
    return np.concatenate(out, axis=0).astype(np.float32)


def fit_anchors_to_dataset(dataset, config, *, progress: bool = True, **fit_kwargs) -> AnchorFit:
    """Fit anchors to every GT box of a prepared ``dataset`` as ``config``'s model would see them.

    Measures the boxes at network-input size (:func:`boxes_at_input_size`), fits
    (:func:`fit_anchors`, ``fit_kwargs`` passed on) and checks the result against ``config``
    (:func:`validate_fit`). The returned fit keeps the boxes (``fit.boxes``) for plots.
    Raises ValueError when the dataset has no instance, ConfigError when the fit is unusable.
    """
    boxes = boxes_at_input_size(dataset, config, progress=progress)
    if len(boxes) == 0:
        raise ValueError("the dataset has no annotated instance to fit anchors to")
    fit = fit_anchors(boxes, config, **fit_kwargs)
    validate_fit(fit, config)
    fit.boxes = boxes
    return fit


# ------------------------------------------------------------------------------------------ report
def _coverage_cells(cov) -> str:
    if cov is None:
        return f"{'-':>9} {'-':>11} {'-':>11}"
    return f"{cov['mean_iou']:9.3f} {cov['recall@0.5']:11.3f} {cov['recall@0.7']:11.3f}"


def format_fit_report(report: dict) -> str:
    """The default-vs-fitted table of an :attr:`AnchorFit.report` (shape-only and positional coverage,
    per-level best, the scales and ratios), as ``facemask-fit-anchors`` and ``train.py --anchors auto`` print."""
    d, f = report["default"], report["fitted"]
    lines = [
        f"{report['n_boxes']} boxes at input size {report['image_shape'][0]}x{report['image_shape'][1]}, "
        f"strides {report['strides']}, objective: {report['objective']}",
        f"{'':22}{'mean IoU':>9} {'recall@0.5':>11} {'recall@0.7':>11}   per-level best",
    ]
    for kind in ("shape", "positional"):
        for name, part in (("default", d), ("fitted", f)):
            cov = part[kind]
            levels = "" if cov is None else str(cov["per_level"])
            lines.append(f"{kind + '-only' if kind == 'shape' else kind:11} {name:10}{_coverage_cells(cov)}   {levels}")
    lines.append(f"scales  default {d['scales']}  ->  fitted {f['scales']}")
    lines.append(f"ratios  default {d['ratios']}  ->  fitted {f['ratios']}")
    margin = report.get("scale_margin", 1.0)
    if margin > 1:
        lines.append(f"(fitted to these boxes and each at 1/{margin:g}x to {margin:g}x its size)")
    if report.get("kept_default"):
        lines.append(f"({report.get('kept_default_reason') or 'kept the config anchors'})")
    return "\n".join(lines)


def format_holdout_report(coverage: dict, name: str = "holdout", labels=None) -> str:
    """:func:`holdout_coverage` as lines: both anchor sets' coverage of the held-out boxes, then each box
    one of them misses at IoU 0.5 (named by ``labels[index]`` when given, e.g. its image file)."""
    lines = [f"{name}: {coverage['n_boxes']} boxes the anchors were not fitted to"]
    for kind in ("default", "fitted"):
        lines.append(f"positional {kind:10}{_coverage_cells(coverage[kind])}   {coverage[kind]['per_level']}")
    for m in coverage["missed"]:
        lines.append(
            f"  {'box ' + str(m['index']) if labels is None else labels[m['index']]} ({m['size']:.0f} px): "
            f"best anchor IoU default {m['default_iou']:.2f}, "
            f"fitted {m['fitted_iou']:.2f}"
        )
    if not coverage["missed"]:
        lines.append("  every box has an anchor at IoU >= 0.5 in both sets")
    return "\n".join(lines)
