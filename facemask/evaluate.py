"""Evaluate a face-mask checkpoint on a dataset split.

    python evaluate.py --weights last                       # newest checkpoint under logs/
    python evaluate.py --weights logs/facemask20260101T000000/mask_rcnn_facemask_0010.h5 \\
        --dataset datasets/facemask --subset val --limit 50 --min-confidence 0.5

Prints the config and dataset summaries, a progress bar and a table of:

* Matterport's mAP@0.5 (mask IoU and box IoU): the mean of Matterport's per-image ``compute_ap``
  over the images **that have ground truth** (what Matterport's notebooks call "mAP"; not the
  VOC/COCO dataset-level number), with the detections ranked down to score 0.05 (at most 100 per
  image, as COCO-style evaluation does); beside it the same figure with only the detections at the
  run's ``DETECTION_MIN_CONFIDENCE`` (``--min-confidence``), the number Matterport-style runs print;
  images without ground truth are counted apart (how many got false positives);
* per-class AP@0.5, dataset-level (detections of a class pooled over all images, VOC style);
* COCO AP@[.5:.95] (and AP50, AP75, APs/m/l, AR) from pycocotools, for masks (segm) and boxes.

Writes to ``--out`` (default ``<run folder>/eval_<subset>``): ``report.json`` (the metrics plus
weights, dataset, subset, config, timing, per-image AP), ``pr_curve.png`` (mask IoU 0.5) and
``overlays/*.png`` (ground truth vs predictions for a few images with GT).

GT and predictions are compared at the original image size (one evaluation path).
``facemask.train`` calls :func:`evaluate_checkpoint` (or use :func:`run` with an argv list).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from collections.abc import Sequence
from typing import Any

from .cli import (
    DEFAULT_DATASET,
    DEFAULT_LOGS,
    CLIError,
    add_checkpoint_args,
    build_model,
    checkpoint_config,
    cli_main,
    cli_message,
    positive_int,
    probability,
)

# Heavy imports (TensorFlow, matplotlib) are deferred so argument and path errors are instant.


def json_safe(obj: Any) -> Any:
    """NaN/inf -> None, numpy scalars/arrays -> Python, so the report is strict JSON."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "image"


def no_detection_warning(summary: dict, min_confidence: float, subset: str) -> str | None:
    """USER_PAIN "loads but detects nothing": a warning when no detection cleared the threshold."""
    if summary.get("num_pred", 0) or not summary.get("num_images", 0):
        return None
    lower = max(0.0, round(min_confidence - 0.2, 2))
    return (
        f"no detection on the {summary['num_images']} {subset} images cleared "
        f"DETECTION_MIN_CONFIDENCE={min_confidence:g}: the model may be undertrained (train longer, "
        f"check that the heads were trained) or try --min-confidence {lower:g}"
    )


# ----------------------------------------------------------------------------- evaluation
def evaluate_checkpoint(
    weights_path: str,
    dataset_dir: str = DEFAULT_DATASET,
    subset: str = "val",
    classes: str | None = None,
    logs: str = DEFAULT_LOGS,
    *,
    class_key: str | None = None,
    profile: str | None = None,
    config_file: str | None = None,
    limit: int | None = None,
    min_confidence: float | None = None,
    out_dir: str | None = None,
    iou: float = 0.5,
    batch_size: int | None = None,
    keep_examples: int = 4,
    unknown: str = "error",
    progress: bool = True,
    verbose: bool = True,
) -> dict:
    """Evaluate ``weights_path`` (a checkpoint, a run folder or ``last``) on ``dataset_dir/subset``.

    The classes, profile and sizes come from the run's ``config.json``; ``classes``/``class_key``/
    ``profile``/``config_file`` only matter without one (or must agree with it). ``unknown``:
    "error" or "skip" for val regions whose class the model does not know. Writes ``report.json``,
    ``pr_curve.png`` and ``overlays/`` to ``out_dir`` (default ``<run folder>/eval_<subset>``) and
    returns the summary dict (the report).

    Raises FileNotFoundError (weights / dataset / no checkpoint), CLIError, ConfigError.
    """
    from mrcnn.evaluation import evaluate_model

    say = print if verbose else (lambda *a, **k: None)
    t_start = time.perf_counter()
    ckpt, dataset, spec, reference = load_evaluation(
        weights_path,
        dataset_dir,
        subset,
        classes,
        logs,
        class_key=class_key,
        profile=profile,
        config_file=config_file,
        batch_size=batch_size,
        min_confidence=min_confidence,
        unknown=unknown,
        verbose=verbose,
    )
    t_model = time.perf_counter()
    model = build_model(ckpt, logs)
    model_s = time.perf_counter() - t_model
    evaluator, examples = evaluate_model(
        model,
        dataset,
        limit=limit,
        progress=progress,
        keep_examples=keep_examples,
        iou_threshold=iou,
        reference_confidence=reference[0],
        reference_max=reference[1],
    )
    summary, table = score_table(evaluator, iou)
    say("")
    say(table)
    warnings = []
    msg = no_detection_warning(summary, float(ckpt.config.DETECTION_MIN_CONFIDENCE), subset)
    if msg:
        warnings.append(msg)
        print(f"warning: {msg}", file=sys.stderr)
    out_dir = out_dir or os.path.join(os.path.dirname(os.path.abspath(ckpt.weights)), f"eval_{subset}")
    summary.update(
        warnings=warnings,
        per_image=evaluator.per_image,
        limit=limit,
        iou=iou,
        timing={**evaluator.timing, "model_build_s": round(model_s, 3)},
    )
    summary = write_report(
        summary, examples, ckpt, dataset, spec, dataset_dir, subset, out_dir, reference, iou, t_start
    )
    t = summary["timing"]
    say(f"\n{summary['num_images']} images in {t['wall_s']:.1f} s ({t['images_per_s'] or 0:.2f} images/s in detect)")
    say(
        f"wrote {summary['report']}, {summary['pr_curve_png']}, {len(summary['overlays'])} overlays in "
        f"{os.path.join(out_dir, 'overlays')}"
    )
    return summary


def load_evaluation(
    weights_path: str,
    dataset_dir: str,
    subset: str,
    classes: str | None,
    logs: str,
    *,
    class_key: str | None,
    profile: str | None,
    config_file: str | None,
    batch_size: int | None,
    min_confidence: float | None,
    unknown: str,
    verbose: bool = True,
):
    """(checkpoint with the ranked detection settings applied, the loaded dataset, its ClassSpec,
    (reference confidence, reference max instances)); the dataset's classes checked against the model's."""
    from mrcnn.data.via_dataset import UnknownClassError
    from mrcnn.evaluation import ranked_detection_settings

    from .data import ClassSpec, load_dataset

    ckpt = checkpoint_config(
        weights_path,
        logs=logs,
        profile=profile,
        classes=classes,
        class_key=class_key,
        config_file=config_file,
        IMAGES_PER_GPU=batch_size,
    )
    config = ckpt.config
    # The headline ranks detections down to a low score; the figure at the run's own threshold is
    # reported beside it.
    ranked, reference = ranked_detection_settings(config, min_confidence)
    config.apply(ranked)
    say = print if verbose else (lambda *a, **k: None)
    say(ckpt.describe())
    spec = getattr(config, "class_spec", None) or ClassSpec.parse(classes, class_key)
    try:
        dataset = load_dataset(dataset_dir, subset, spec, verbose=verbose, unknown=unknown)
    except UnknownClassError as e:  # the model's classes are fixed: --classes is not the fix
        raise CLIError(cli_message(e, classes_from_run=bool(ckpt.run_values))) from None
    say(dataset.summary())
    if len(dataset.class_names) != config.NUM_CLASSES:
        raise CLIError(
            f"the model has {config.NUM_CLASSES - 1} classes ({', '.join(ckpt.class_names[1:])}) but "
            f"{os.path.join(dataset_dir, subset)} loaded {len(dataset.class_names) - 1} "
            f"({', '.join(dataset.class_names[1:])}); pass the --classes it was trained with"
        )
    if len(dataset.image_ids) == 0:
        raise CLIError(f"no images in {os.path.join(dataset_dir, subset)}")
    return ckpt, dataset, spec, reference


def score_table(evaluator, iou: float) -> tuple[dict, str]:
    """(the evaluator's summary, its printed table), with the extra mAP@``iou`` line when iou != 0.5."""
    from mrcnn.metrics import format_table

    summary = evaluator.summary()
    table = format_table(summary)
    if not math.isclose(iou, 0.5):
        for key in ("mask_AP", "box_AP"):
            vals = [r[key] for r in evaluator.per_image if r["num_gt"]]
            summary[f"{key.split('_')[0]}_mAP@{iou:g}"] = float(sum(vals) / len(vals)) if vals else float("nan")
        table += (
            f"\n\nMatterport mAP@{iou:g} (mean over the images with GT):  mask "
            f"{summary[f'mask_mAP@{iou:g}']:.3f}   box {summary[f'box_mAP@{iou:g}']:.3f}"
        )
    return summary, table


def write_report(
    summary: dict,
    examples: list,
    ckpt,
    dataset,
    spec,
    dataset_dir: str,
    subset: str,
    out_dir: str,
    reference: tuple,
    iou: float,
    t_start: float,
) -> dict:
    """``pr_curve.png``, the GT-vs-prediction ``overlays/`` of ``examples`` and ``report.json`` (the
    summary with its definitions, provenance and file paths) in ``out_dir``; returns that report."""
    from mrcnn.runs import write_text
    from mrcnn.visualize import plot_gt_vs_pred, plot_pr_curves

    config = ckpt.config
    os.makedirs(out_dir, exist_ok=True)
    pr_path = os.path.join(out_dir, "pr_curve.png")
    plot_pr_curves(
        summary["pr_curve"], pr_path, title=f"Precision-recall, mask IoU 0.5 ({subset}, {summary['num_images']} images)"
    )
    overlay_dir = os.path.join(out_dir, "overlays")
    if os.path.isdir(overlay_dir):  # stale overlays of an earlier evaluation into the same folder
        for f in os.listdir(overlay_dir):
            if re.fullmatch(r"\d{2}_.*\.png", f):
                os.remove(os.path.join(overlay_dir, f))
    overlays = []
    for k, ex in enumerate(examples):
        path = os.path.join(overlay_dir, f"{k:02d}_{_safe_name(os.path.basename(ex['name']))}.png")
        gt, pred = ex["gt"], ex["pred"]
        plot_gt_vs_pred(
            ex["image"],
            gt["boxes"],
            gt["class_ids"],
            gt["masks"],
            pred["rois"],
            pred["class_ids"],
            pred["scores"],
            pred["masks"],
            dataset.class_names,
            path,
            iou_threshold=iou,
            title=os.path.basename(ex["name"]),
        )
        overlays.append(path)
    summary.update(
        {
            "definitions": report_definitions(config),
            "weights": os.path.abspath(ckpt.weights),
            "dataset": os.path.abspath(dataset_dir),
            "subset": subset,
            "classes": spec.mode,
            "class_key": spec.key,
            "class_names": list(dataset.class_names),
            "config_source": ckpt.source,
            "config": config.to_dict(),
            "detection_min_confidence": float(config.DETECTION_MIN_CONFIDENCE),
            "reference_min_confidence": reference[0],
            "timing": {**summary["timing"], "wall_s": round(time.perf_counter() - t_start, 3)},
            "out_dir": os.path.abspath(out_dir),
            "report": os.path.abspath(os.path.join(out_dir, "report.json")),
            "pr_curve_png": os.path.abspath(pr_path),
            "overlays": [os.path.abspath(p) for p in overlays],
        }
    )
    summary = json_safe(summary)
    write_text(summary["report"], json.dumps(summary, indent=2, allow_nan=False))
    return summary


def report_definitions(config) -> dict:
    """What each headline figure of the report means, for ``report.json``."""
    return {
        "mask_mAP50": "Matterport's compute_ap at mask IoU 0.5, mean over the images with GT; detections "
        f"ranked down to score {config.DETECTION_MIN_CONFIDENCE:g}, at most "
        f"{config.DETECTION_MAX_INSTANCES} per image",
        "box_mAP50": "the same at box IoU 0.5",
        "mask_mAP50_at_min_confidence": "the same as mask_mAP50 with only the detections >= the run's "
        "DETECTION_MIN_CONFIDENCE (what Matterport-style runs report)",
        "per_class_mask_AP50": "dataset-level AP per class at mask IoU 0.5 (detections pooled over images)",
        "coco_segm": "pycocotools COCOeval (segm); AP is AP@[.5:.95]; null = no GT in that range",
        "coco_bbox": "pycocotools COCOeval (bbox)",
    }


# ----------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="facemask-evaluate",
        description="Evaluate a face-mask Mask R-CNN checkpoint: Matterport-style mAP@0.5 (mean over "
        "images), per-class AP and COCO AP@[.5:.95] for masks and boxes.",
    )
    add_checkpoint_args(p)
    p.add_argument(
        "--dataset",
        default=DEFAULT_DATASET,
        help=f"dataset folder with <subset>/via_region_data.json (default {DEFAULT_DATASET})",
    )
    p.add_argument("--subset", default="val", help="split to evaluate (default val)")
    p.add_argument("--limit", type=positive_int, default=None, help="evaluate only the first N images")
    p.add_argument(
        "--min-confidence",
        type=probability,
        default=None,
        help="the threshold of the second mAP figure (default: the run's DETECTION_MIN_CONFIDENCE); "
        "the headline ranks detections down to 0.05 whatever this is",
    )
    p.add_argument("--batch-size", type=positive_int, default=None, help="images per detect call (default 1)")
    p.add_argument("--out", default=None, help="output folder (default <run folder>/eval_<subset>)")
    p.add_argument(
        "--iou",
        type=probability,
        default=0.5,
        help="IoU for the overlays' matching and an extra mAP@IoU line (default 0.5; the "
        "mAP@0.5 and COCO numbers are always reported)",
    )
    p.add_argument("--examples", type=int, default=4, help="number of GT-vs-prediction overlays (default 4)")
    p.add_argument(
        "--unknown",
        choices=("error", "skip"),
        default="error",
        help="regions whose class the model does not know: stop with a list (default) or skip them",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def run(argv: Sequence[str] | None = None) -> dict:
    """Parse ``argv`` (default ``sys.argv[1:]``), evaluate, return the summary dict."""
    args = build_parser().parse_args(argv)
    return evaluate_checkpoint(
        args.weights,
        args.dataset,
        args.subset,
        args.classes,
        args.logs,
        class_key=args.class_key,
        profile=args.profile,
        unknown=args.unknown,
        config_file=args.config,
        limit=args.limit,
        min_confidence=args.min_confidence,
        out_dir=args.out,
        iou=args.iou,
        batch_size=args.batch_size,
        keep_examples=args.examples,
        progress=not args.no_progress,
    )


def main(argv: Sequence[str] | None = None) -> int:
    return cli_main(run, argv)


if __name__ == "__main__":
    sys.exit(main())
