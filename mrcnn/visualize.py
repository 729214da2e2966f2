"""Drawing and plotting helpers.

* :func:`draw_instances` / :func:`save_overlay` draw straight into a uint8 RGB array with OpenCV
  (mask fill with alpha, mask contour, box, "class 0.97" label on a filled background) -- fast
  enough for inference over folders, no matplotlib involved.
* :func:`plot_gt_vs_pred`, :func:`plot_pr_curves`, :func:`plot_losses`, :func:`plot_anchor_fit`
  write PNG files through matplotlib's object-oriented API with the Agg canvas, so they never
  need a display and never touch pyplot's global state.
* :func:`display_instances` keeps Matterport's signature for notebooks and draws on a matplotlib
  axis; it only calls ``plt.show()`` when asked (``show=True``).

Images are RGB (``[H, W, 3]``); uint8, or float in [0, 1] or [0, 255]; grayscale and RGBA are
converted. Boxes are ``(y1, x1, y2, x2)`` in pixels, masks ``[H, W, N]`` (bool or 0/1), as in
:mod:`mrcnn.metrics`.
"""

from __future__ import annotations

import colorsys
import os
import sys
from collections.abc import Mapping, Sequence

import matplotlib

# Headless Linux (no X/Wayland display, not inside Jupyter, no explicit MPLBACKEND): use Agg so
# that importing pyplot later never tries to open a window.
if (
    sys.platform.startswith("linux")
    and not os.environ.get("DISPLAY")
    and not os.environ.get("WAYLAND_DISPLAY")
    and not os.environ.get("MPLBACKEND")
    and "matplotlib.pyplot" not in sys.modules
    and "ipykernel" not in sys.modules
):
    matplotlib.use("Agg")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

__all__ = [
    "random_colors",
    "apply_mask",
    "draw_instances",
    "save_overlay",
    "plot_gt_vs_pred",
    "plot_pr_curves",
    "plot_losses",
    "plot_anchor_fit",
    "display_instances",
]

_TP_COLOR = (0.1, 0.8, 0.2)  # matched
_FP_COLOR = (0.95, 0.15, 0.1)  # false positive / missed GT


# ----------------------------------------------------------------------------- basics
def random_colors(n: int, seed: int | None = 0, bright: bool = True) -> list[tuple[float, float, float]]:
    """``n`` distinct RGB colours in [0, 1] (evenly spaced hues, shuffled reproducibly by ``seed``;
    ``seed=None`` keeps hue order)."""
    if n <= 0:
        return []
    v = 1.0 if bright else 0.7
    colors = [colorsys.hsv_to_rgb(i / n, 1.0, v) for i in range(n)]
    if seed is not None:
        order = np.random.default_rng(seed).permutation(n)
        colors = [colors[i] for i in order]
    return [tuple(float(c) for c in col) for col in colors]


def _color255(color) -> np.ndarray:
    """Colour as float RGB in [0, 255]; a colour whose components are all <= 1 is read as [0, 1]."""
    c = np.asarray(color, dtype=np.float64).reshape(-1)[:3]
    return c * 255.0 if c.max(initial=0.0) <= 1.0 else c


def _to_uint8_rgb(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3:
        raise ValueError(f"image must be [H, W] or [H, W, C], got {img.shape}")
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif img.shape[2] == 4:
        img = img[..., :3]
    elif img.shape[2] != 3:
        raise ValueError(f"image must have 1, 3 or 4 channels, got {img.shape[2]}")
    if img.dtype == np.uint8:
        return np.ascontiguousarray(img)
    img = img.astype(np.float64)
    if img.size and np.nanmax(img) <= 1.0:
        img = img * 255.0
    return np.clip(np.nan_to_num(img), 0, 255).round().astype(np.uint8)


def _as_masks(masks, shape) -> np.ndarray | None:
    if masks is None:
        return None
    m = np.asarray(masks)
    if m.ndim == 2:
        m = m[..., None]
    if m.shape[:2] != tuple(shape[:2]):
        raise ValueError(f"masks are {m.shape[:2]} but the image is {tuple(shape[:2])}")
    return m >= 0.5 if np.issubdtype(m.dtype, np.floating) else m.astype(bool)


def apply_mask(image: np.ndarray, mask: np.ndarray, color, alpha: float = 0.5) -> np.ndarray:
    """Blend ``color`` into ``image`` where ``mask`` is set; returns a new uint8 RGB array
    (Matterport's version modified the image in place). ``color`` is RGB in [0, 1] or [0, 255]."""
    out = _to_uint8_rgb(image).copy()
    m = np.asarray(mask).astype(bool)
    if m.ndim == 3:
        m = m[..., 0]
    c = _color255(color)
    px = out[m].astype(np.float64)
    out[m] = np.clip(px * (1.0 - alpha) + alpha * c, 0, 255).round().astype(np.uint8)
    return out


def _label_text(class_ids, class_names, scores, i) -> str:
    cid = int(class_ids[i]) if class_ids is not None else -1
    if class_names is not None and 0 <= cid < len(class_names):
        name = str(class_names[cid])
    else:
        name = str(cid)
    if scores is not None:
        return f"{name} {float(scores[i]):.2f}"
    return name


def _put_label(img: np.ndarray, text: str, x: int, y: int, color255, font_scale: float, thickness: int) -> None:
    """Text with a filled background, its top-left corner at (x, y) clipped into the image."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), base = cv2.getTextSize(text, font, font_scale, thickness)
    h, w = img.shape[:2]
    pad = max(1, thickness)
    bw, bh = tw + 2 * pad, th + base + 2 * pad
    x = int(np.clip(x, 0, max(0, w - bw)))
    y = int(np.clip(y, 0, max(0, h - bh)))
    bg = tuple(int(v) for v in color255)
    cv2.rectangle(img, (x, y), (x + bw, y + bh), bg, thickness=-1)
    lum = 0.299 * bg[0] + 0.587 * bg[1] + 0.114 * bg[2]
    fg = (0, 0, 0) if lum > 140 else (255, 255, 255)
    cv2.putText(img, text, (x + pad, y + pad + th), font, font_scale, fg, thickness, cv2.LINE_AA)


# ----------------------------------------------------------------------------- overlays
def draw_instances(
    image: np.ndarray,
    boxes,
    masks,
    class_ids,
    class_names=None,
    scores=None,
    *,
    show_boxes: bool = True,
    show_masks: bool = True,
    show_labels: bool = True,
    show_contours: bool = True,
    title: str | None = None,
    colors=None,
    alpha: float = 0.45,
    captions: Sequence[str] | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Overlay instances on ``image``; returns a new uint8 RGB array of the image's size.

    ``boxes`` [N, 4] (may be ``None``: no boxes, labels placed at the mask's top-left), ``masks``
    [H, W, N] (may be ``None``), ``class_ids`` [N], ``class_names`` indexed by class id, ``scores``
    [N] or ``None``. ``colors``: one RGB per instance ([0, 1] or [0, 255]); default
    :func:`random_colors`. ``captions`` replaces the "class score" labels. ``title`` is written in
    the top-left corner. All-zero boxes with class id 0 (padding) are skipped.
    """
    img = _to_uint8_rgb(image).copy()
    h, w = img.shape[:2]
    m = _as_masks(masks, img.shape)
    n = 0
    for arr in (boxes, class_ids, scores):
        if arr is not None:
            n = max(n, len(arr))
    if m is not None:
        n = max(n, m.shape[2])
    boxes = None if boxes is None else np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    class_ids = None if class_ids is None else np.asarray(class_ids).reshape(-1)
    if colors is None:
        colors = random_colors(n, seed=seed)
    scale = max(h, w) / 640.0
    thick = max(1, int(round(2 * scale)))
    font_scale = float(np.clip(0.5 * scale, 0.35, 2.0))
    font_thick = max(1, int(round(scale)))

    labels = []
    for i in range(n):
        if class_ids is not None and boxes is not None and int(class_ids[i]) == 0 and not np.any(boxes[i]):
            continue  # padding row
        c255 = _color255(colors[i % len(colors)])
        c_int = tuple(int(v) for v in c255)
        anchor = None
        if m is not None and show_masks:
            mi = m[..., i]
            if mi.any():
                px = img[mi].astype(np.float64)
                img[mi] = np.clip(px * (1 - alpha) + alpha * c255, 0, 255).round().astype(np.uint8)
                if show_contours:
                    contours, _ = cv2.findContours(mi.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
                    cv2.drawContours(img, contours, -1, c_int, max(1, thick // 2 + 1), cv2.LINE_AA)
                ys, xs = np.nonzero(mi)
                anchor = (int(xs.min()), int(ys.min()))
        if boxes is not None and np.any(boxes[i]):
            y1, x1, y2, x2 = (int(round(v)) for v in boxes[i])
            if show_boxes:
                cv2.rectangle(img, (x1, y1), (max(x1, x2 - 1), max(y1, y2 - 1)), c_int, thick)
            anchor = (x1, y1)
        if show_labels and anchor is not None:
            text = captions[i] if captions is not None else _label_text(class_ids, class_names, scores, i)
            if text:
                labels.append((text, anchor, c255))
    # Labels last so masks/boxes of other instances do not cover them.
    for text, (x, y), c255 in labels:
        (_, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, font_thick)
        ty = y - (th + base + 2 * font_thick)
        if ty < 0:
            ty = y  # no room above the box: put it inside
        _put_label(img, text, x, ty, c255, font_scale, font_thick)
    if title:
        _put_label(img, str(title), 0, 0, (0, 0, 0), font_scale * 1.2, font_thick)
    return img


def _ensure_parent(path) -> None:
    parent = os.path.dirname(os.fspath(path))
    if parent:
        os.makedirs(parent, exist_ok=True)


def save_overlay(path, image, boxes, masks, class_ids, class_names=None, scores=None, **kwargs) -> np.ndarray:
    """:func:`draw_instances` and write the result to ``path`` (format from the extension).
    Parent folders are created. Returns the RGB overlay."""
    out = draw_instances(image, boxes, masks, class_ids, class_names, scores, **kwargs)
    _ensure_parent(path)
    if not cv2.imwrite(os.fspath(path), cv2.cvtColor(out, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return out


# ----------------------------------------------------------------------------- figures
def _new_figure(figsize) -> Figure:
    fig = Figure(figsize=figsize, dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save_figure(fig: Figure, path) -> None:
    _ensure_parent(path)
    fig.savefig(os.fspath(path), dpi=fig.dpi, bbox_inches="tight")


def plot_gt_vs_pred(
    image,
    gt_boxes,
    gt_class_ids,
    gt_masks,
    pred_boxes,
    pred_class_ids,
    pred_scores,
    pred_masks,
    class_names,
    path,
    *,
    iou_threshold: float = 0.5,
    color_by_match: bool = True,
    title: str | None = None,
    figsize=(16, 8),
) -> None:
    """Side-by-side figure: ground truth (left) and predictions (right), written to ``path``.

    With ``color_by_match`` instances are coloured by the result of
    :func:`mrcnn.metrics.match_detections` at ``iou_threshold`` (mask IoU when both mask sets
    are given, else box IoU): green = matched, red = missed GT / false positive.
    """
    img = _to_uint8_rgb(image)
    gt_ids = np.asarray(gt_class_ids).reshape(-1)
    pr_ids = np.asarray(pred_class_ids).reshape(-1)
    gt_colors = pr_colors = None
    sub_gt = sub_pr = ""
    if color_by_match:
        from mrcnn.metrics import match_detections

        use_masks = gt_masks is not None and pred_masks is not None
        gt_match, pred_match, _ = match_detections(
            gt_boxes,
            gt_ids,
            gt_masks,
            pred_boxes,
            pr_ids,
            pred_scores,
            pred_masks,
            iou_threshold=iou_threshold,
            use_masks=use_masks,
        )
        gt_colors = [_TP_COLOR if k >= 0 else _FP_COLOR for k in gt_match]
        pr_colors = [_TP_COLOR if k >= 0 else _FP_COLOR for k in pred_match]
        gt_valid = gt_ids > 0
        pr_valid = pr_ids > 0
        sub_gt = f" ({int(np.sum(gt_match[gt_valid] >= 0))} matched / {int(gt_valid.sum())})"
        sub_pr = (
            f" ({int(np.sum(pred_match[pr_valid] >= 0))} TP, "
            f"{int(np.sum(pred_match[pr_valid] < 0))} FP @ IoU {iou_threshold:g})"
        )
    left = draw_instances(img, gt_boxes, gt_masks, gt_ids, class_names, None, colors=gt_colors)
    right = draw_instances(img, pred_boxes, pred_masks, pr_ids, class_names, pred_scores, colors=pr_colors)
    fig = _new_figure(figsize)
    axes = fig.subplots(1, 2)
    for ax, arr, name in ((axes[0], left, "Ground truth" + sub_gt), (axes[1], right, "Predictions" + sub_pr)):
        ax.imshow(arr)
        ax.set_title(name)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    _save_figure(fig, path)


def plot_pr_curves(
    pr_curve_dict: Mapping[str, Mapping[str, Sequence[float]]],
    path,
    title: str = "Precision-recall (mask IoU 0.5)",
    figsize=(7, 6),
) -> None:
    """Step plot of ``{class: {"precision": [...], "recall": [...], ("ap": float)}}`` (the
    ``pr_curve`` entry of :meth:`mrcnn.metrics.Evaluator.summary`, i.e. the padded monotone
    curves of :func:`mrcnn.metrics.compute_ap`) to ``path``; the area under each line is its AP."""
    fig = _new_figure(figsize)
    ax = fig.subplots()
    colors = random_colors(max(1, len(pr_curve_dict)), seed=None, bright=False)
    for k, (name, curve) in enumerate(pr_curve_dict.items()):
        r = np.asarray(curve.get("recall", []), dtype=float)
        p = np.asarray(curve.get("precision", []), dtype=float)
        if r.size == 0:
            continue
        label = str(name)
        if curve.get("ap") is not None:
            label += f" (AP {float(curve['ap']):.3f})"
        # "pre": the segment (r[i-1], r[i]] is drawn at p[i] -- the area under the line is the AP.
        ax.step(r, p, where="pre", color=colors[k], label=label)
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if pr_curve_dict:
        ax.legend(loc="lower left", fontsize="small")
    _save_figure(fig, path)


def plot_losses(
    history: Mapping[str, Sequence[float]], path, title: str | None = None, log_scale: bool = False
) -> None:
    """One panel per loss of a Keras-style history (``{"loss": [...], "val_loss": [...], ...}``);
    ``val_X`` is drawn in the panel of ``X``. Empty/non-numeric entries are skipped."""
    series = {}
    for k, v in history.items():
        try:
            arr = np.asarray(list(v), dtype=float).reshape(-1)
        except (TypeError, ValueError):
            continue
        if arr.size:
            series[str(k)] = arr
    bases = []
    for k in series:
        b = k[4:] if k.startswith("val_") else k
        if b not in bases:
            bases.append(b)
    n = max(1, len(bases))
    cols = min(3, n)
    rows = int(np.ceil(n / cols))
    fig = _new_figure((5 * cols, 3.5 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols)).reshape(-1)
    for ax, b in zip(axes, bases):
        for key, style in ((b, "-"), ("val_" + b, "--")):
            if key in series:
                y = series[key]
                ax.plot(
                    np.arange(1, y.size + 1), y, style, marker="o" if y.size < 30 else None, markersize=3, label=key
                )
        ax.set_title(b)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if log_scale:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in axes[len(bases) :]:
        ax.axis("off")
    if not bases:
        axes[0].text(0.5, 0.5, "no losses recorded", ha="center", va="center")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save_figure(fig, path)


def plot_map_per_epoch(
    epochs: Sequence[int], series: Mapping[str, Sequence[float]], path, title: str = "val mask mAP@0.5 per epoch"
) -> None:
    """mAP on the val set against the epoch, one line per ``series`` entry (e.g. ranked and at the
    run's confidence threshold), on a 0..1 axis."""
    fig = _new_figure((6, 4))
    ax = fig.subplots()
    for label, values in series.items():
        ax.plot(list(epochs), [np.nan if v is None else v for v in values], "-o", markersize=3, label=label)
    ax.set_ylim(0, 1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("mAP@0.5")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(title)
    fig.tight_layout()
    _save_figure(fig, path)


def plot_anchor_fit(
    box_hw,
    anchors_hw_default,
    anchors_hw_fitted=None,
    path=None,
    title: str = "GT boxes vs anchor shapes",
    figsize=(13, 6),
) -> None:
    """Left: scatter of GT box width vs height (log-log) with the default anchor shapes (x) and
    the fitted ones (*). Right: the anchor shapes as rectangles centred at the origin over the
    outlines of (a sample of) GT boxes. ``box_hw``/``anchors_hw_*``: ``[N, 2]`` (height, width)."""
    if path is None:
        raise ValueError("plot_anchor_fit needs a path")
    hw = np.asarray(box_hw, dtype=float).reshape(-1, 2)
    hw = hw[(hw > 0).all(axis=1)]
    dflt = np.asarray(anchors_hw_default, dtype=float).reshape(-1, 2)
    fitted = None if anchors_hw_fitted is None else np.asarray(anchors_hw_fitted, dtype=float).reshape(-1, 2)
    fig = _new_figure(figsize)
    ax1, ax2 = fig.subplots(1, 2)
    if hw.size:
        ax1.scatter(hw[:, 1], hw[:, 0], s=6, alpha=0.35, color="tab:blue", label=f"GT boxes ({len(hw)})")
    ax1.scatter(dflt[:, 1], dflt[:, 0], marker="x", s=70, color="tab:gray", linewidths=2, label="default anchors")
    if fitted is not None and fitted.size:
        ax1.scatter(
            fitted[:, 1],
            fitted[:, 0],
            marker="*",
            s=140,
            color="tab:red",
            edgecolors="k",
            linewidths=0.5,
            label="fitted anchors",
        )
    allv = np.concatenate([a.reshape(-1) for a in (hw, dflt, fitted) if a is not None and a.size])
    allv = allv[allv > 0]
    if allv.size:
        lo, hi = allv.min() / 1.5, allv.max() * 1.5
        ax1.set_xscale("log")
        ax1.set_yscale("log")
        ax1.set_xlim(lo, hi)
        ax1.set_ylim(lo, hi)
        ax1.plot([lo, hi], [lo, hi], ":", color="k", lw=0.8, label="square (h = w)")
    ax1.set_xlabel("width (px)")
    ax1.set_ylabel("height (px)")
    ax1.set_title("box shapes")
    ax1.grid(alpha=0.3, which="both")
    ax1.legend(fontsize="small")

    from matplotlib.patches import Rectangle

    if hw.size:
        sample = hw[np.random.default_rng(0).permutation(len(hw))[:300]]
        for h, w in sample:
            ax2.add_patch(Rectangle((-w / 2, -h / 2), w, h, fill=False, lw=0.4, color="tab:blue", alpha=0.25))
    for arr, color, lw, ls, name in ((dflt, "tab:gray", 1.5, "--", "default"), (fitted, "tab:red", 2.0, "-", "fitted")):
        if arr is None:
            continue
        for k, (h, w) in enumerate(arr):
            ax2.add_patch(
                Rectangle(
                    (-w / 2, -h / 2),
                    w,
                    h,
                    fill=False,
                    lw=lw,
                    ls=ls,
                    color=color,
                    label=f"{name} anchors" if k == 0 else None,
                )
            )
    ext = 0.55 * (allv.max() if allv.size else 1.0)
    ax2.set_xlim(-ext, ext)
    ax2.set_ylim(-ext, ext)
    ax2.set_aspect("equal")
    ax2.set_title("shapes centred at the origin")
    ax2.set_xlabel("x (px)")
    ax2.set_ylabel("y (px)")
    ax2.legend(fontsize="small", loc="upper right")
    if title:
        fig.suptitle(title)
    _save_figure(fig, path)


# ----------------------------------------------------------------------------- notebooks


def plot_fitted_anchors(fit, path: str, title: str) -> None:
    """:func:`plot_anchor_fit` of an :class:`mrcnn.anchor_fit.AnchorFit`: its GT boxes against the
    report's default anchors and the fitted ones."""
    from mrcnn.anchor_fit import anchor_shapes

    boxes = fit.boxes
    hw = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1)
    d = fit.report["default"]
    h, w = fit.report["image_shape"][:2]
    plot_anchor_fit(
        hw,
        anchor_shapes(d["scales"], d["ratios"]),
        anchor_shapes(fit.scales, fit.ratios),
        path,
        title=f"{title}: {len(boxes)} GT boxes at {h}x{w} input",
    )


def display_instances(
    image,
    boxes,
    masks,
    class_ids,
    class_names,
    scores=None,
    title="",
    figsize=(16, 16),
    ax=None,
    show_mask=True,
    show_bbox=True,
    colors=None,
    captions=None,
    show: bool = False,
):
    """Matterport's ``display_instances``: draw instances on a matplotlib axis.

    Same positional signature as Matterport. When ``ax`` is None a new pyplot figure is created;
    ``plt.show()`` is only called with ``show=True`` (in Jupyter the inline backend displays the
    figure anyway). Returns the axis.
    """
    from matplotlib import patches
    from skimage.measure import find_contours

    img = _to_uint8_rgb(image)
    h, w = img.shape[:2]
    m = _as_masks(masks, img.shape)
    boxes = None if boxes is None else np.asarray(boxes, dtype=float).reshape(-1, 4)
    n = len(class_ids) if class_ids is not None else (0 if boxes is None else len(boxes))
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(1, figsize=figsize)
    colors = colors or random_colors(n)
    ax.set_ylim(h + 10, -10)
    ax.set_xlim(-10, w + 10)
    ax.axis("off")
    ax.set_title(title)
    canvas = img.copy()
    for i in range(n):
        color = tuple(_color255(colors[i % len(colors)]) / 255.0)
        has_box = boxes is not None and np.any(boxes[i])
        if not has_box and (m is None or not m[..., i].any()):
            continue
        if has_box:
            y1, x1, y2, x2 = boxes[i]
            if show_bbox:
                ax.add_patch(
                    patches.Rectangle(
                        (x1, y1),
                        x2 - x1,
                        y2 - y1,
                        linewidth=2,
                        alpha=0.7,
                        linestyle="dashed",
                        edgecolor=color,
                        facecolor="none",
                    )
                )
        if m is not None and show_mask:
            mi = m[..., i]
            canvas = apply_mask(canvas, mi, color)
            padded = np.pad(mi.astype(np.uint8), 1)
            for verts in find_contours(padded, 0.5):
                verts = np.fliplr(verts) - 1  # (row, col) -> (x, y), undo padding
                ax.add_patch(patches.Polygon(verts, facecolor="none", edgecolor=color))
        if not has_box:
            ys, xs = np.nonzero(m[..., i])
            y1, x1 = ys.min(), xs.min()
        caption = captions[i] if captions is not None else _label_text(class_ids, class_names, scores, i)
        ax.text(x1, y1 + 8, caption, color="w", size=11, backgroundcolor="none")
    ax.imshow(canvas)
    if show:
        import matplotlib.pyplot as plt

        plt.show()
    return ax
