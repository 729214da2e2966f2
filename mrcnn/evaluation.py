"""Evaluating a model on a dataset: :func:`evaluate_model` runs ``model.detect`` over the images and
accumulates a :class:`mrcnn.metrics.Evaluator` (the pure metrics), as ``evaluate.py`` does;
:class:`PeriodicEvaluation` is the same figure every N epochs while training (``train.py --eval-every N``).

Every ``every`` epochs the callback copies the current weights by layer name into one inference model
(built once) and evaluates it on the val set exactly as ``evaluate.py`` does (detections ranked down to
0.05, and the figure at the config's DETECTION_MIN_CONFIDENCE). The values go to ``<run>/val_map.json``
and ``<run>/val_map.png``, beside ``losses.png``; a resumed run appends to them.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Sequence

import keras
import numpy as np

from mrcnn import runs
from mrcnn.metrics import Evaluator, _as_bool_masks, compute_ap, extract_boxes

__all__ = [
    "evaluate_model",
    "ranked_detection_settings",
    "PeriodicEvaluation",
    "RANKED_MIN_CONFIDENCE",
    "RANKED_MAX_INSTANCES",
]


def _image_name(dataset, image_id) -> str:
    """The image's file path when the dataset records one, else its reference."""
    info = dataset.image_info[image_id] if hasattr(dataset, "image_info") else {}
    path = info.get("path") if isinstance(info, dict) else None
    return str(path) if path else str(dataset.image_reference(image_id))


#: Evaluation ranks detections down to this score, at most this many per image (COCO-style: a high
#: cut-off truncates the precision/recall curve).
RANKED_MIN_CONFIDENCE = 0.05
RANKED_MAX_INSTANCES = 100


def ranked_detection_settings(config, min_confidence: float | None = None) -> tuple[dict, tuple[float, int]]:
    """(config overrides that make a model return the ranked detections, (reference confidence,
    reference max instances)): the run's own DETECTION_MIN_CONFIDENCE (or ``min_confidence``) and
    DETECTION_MAX_INSTANCES, for :func:`evaluate_model`'s second figure."""
    reference = (
        float(config.DETECTION_MIN_CONFIDENCE if min_confidence is None else min_confidence),
        int(config.DETECTION_MAX_INSTANCES),
    )
    ranked_max = max(reference[1], min(RANKED_MAX_INSTANCES, int(config.POST_NMS_ROIS_INFERENCE)))
    return (
        {"DETECTION_MIN_CONFIDENCE": min(RANKED_MIN_CONFIDENCE, reference[0]), "DETECTION_MAX_INSTANCES": ranked_max},
        reference,
    )


def evaluate_model(
    model,
    dataset,
    *,
    image_ids: Sequence[int] | None = None,
    limit: int | None = None,
    progress: bool = True,
    keep_examples: int = 4,
    iou_threshold: float = 0.5,
    class_names: Sequence[str] | None = None,
    reference_confidence: float | None = None,
    reference_max: int | None = None,
):
    """Run ``model.detect`` over a prepared dataset and accumulate an :class:`Evaluator`.

    One evaluation path (no "double moulding"): GT comes from ``dataset.load_mask`` at the
    original image size, predictions from ``model.detect`` on the original image (it resizes
    and unmolds internally), so both are compared at the original size. Images are sent to
    ``detect`` in chunks of ``model.config.BATCH_SIZE``.

    ``image_ids``: dataset image ids to use (default all, in order); ``limit``: only the first
    ``limit`` of them. ``progress``: a tqdm bar on stderr. ``keep_examples``: how many
    ``(image, gt, pred)`` examples to keep for overlays -- the first images that have GT
    (images without GT only when too few have any). ``iou_threshold``: besides the fixed IoU
    0.5 metrics of the Evaluator, the per-image AP at this threshold is recorded (when not 0.5).
    ``reference_confidence`` / ``reference_max``: see :class:`Evaluator` (run the model at a low
    DETECTION_MIN_CONFIDENCE, e.g. 0.05, and get both the ranked headline and this figure).

    Returns ``(evaluator, examples)``. ``examples`` is a list of dicts ``{"image_id", "name",
    "image", "gt": {"boxes", "class_ids", "masks"}, "pred": {"rois", "class_ids", "scores",
    "masks"}}``. The evaluator gets three extra attributes: ``per_image`` (one dict per image:
    ``image_id``, ``name``, ``height``, ``width``, ``num_gt``, ``num_pred``, ``mask_AP50``,
    ``box_AP50`` and, when ``iou_threshold != 0.5``, ``mask_AP`` / ``box_AP`` at it),
    ``timing`` (``detect_s``, ``total_s``, ``images_per_s``) and ``iou_threshold``.
    """
    import time

    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    ids = list(dataset.image_ids if image_ids is None else image_ids)
    if limit is not None:
        ids = ids[: max(0, int(limit))]
    names = list(class_names if class_names is not None else dataset.class_names)
    evaluator = Evaluator(names, reference_confidence=reference_confidence, reference_max=reference_max)
    batch = max(1, int(getattr(model.config, "BATCH_SIZE", 1)))
    keep_examples = max(0, int(keep_examples))
    with_gt: list[dict] = []
    without_gt: list[dict] = []
    per_image: list[dict] = []
    detect_s = 0.0
    extra_iou = not math.isclose(float(iou_threshold), 0.5)

    bar = tqdm(total=len(ids), desc="evaluate", unit="img", disable=not progress, dynamic_ncols=True)
    try:
        for start in range(0, len(ids), batch):
            chunk = ids[start : start + batch]
            images = [dataset.load_image(i) for i in chunk]
            t0 = time.perf_counter()
            results = model.detect(images)
            detect_s += time.perf_counter() - t0
            for image_id, image, r in zip(chunk, images, results):
                name = _image_name(dataset, image_id)
                gt_masks, gt_class_ids = dataset.load_mask(image_id)
                gt_masks = _as_bool_masks(gt_masks, "gt_masks")
                if gt_masks.shape[:2] != image.shape[:2]:
                    raise ValueError(
                        f"{name}: GT masks are {gt_masks.shape[:2]} but the image is "
                        f"{image.shape[:2]} (annotation size does not match the file)"
                    )
                gt_class_ids = np.asarray(gt_class_ids, dtype=np.int64).reshape(-1)
                gt_boxes = extract_boxes(gt_masks)
                aps = evaluator.add(
                    image_id, gt_boxes, gt_class_ids, gt_masks, r["rois"], r["class_ids"], r["scores"], r["masks"]
                )
                rec = {
                    "image_id": int(image_id),
                    "name": name,
                    "height": int(image.shape[0]),
                    "width": int(image.shape[1]),
                    "num_gt": int(np.sum(gt_class_ids > 0)),
                    "num_pred": int(len(r["class_ids"])),
                    **{k: float(v) for k, v in aps.items()},
                }
                if extra_iou:
                    for key, use_masks in (("mask_AP", True), ("box_AP", False)):
                        rec[key] = float(
                            compute_ap(
                                gt_boxes,
                                gt_class_ids,
                                gt_masks,
                                r["rois"],
                                r["class_ids"],
                                r["scores"],
                                r["masks"],
                                iou_threshold=iou_threshold,
                                use_masks=use_masks,
                            )[0]
                        )
                per_image.append(rec)
                pool = with_gt if rec["num_gt"] else without_gt
                if len(with_gt) < keep_examples and len(pool) < keep_examples:
                    pool.append(
                        {
                            "image_id": int(image_id),
                            "name": name,
                            "image": image,
                            "gt": {"boxes": gt_boxes, "class_ids": gt_class_ids, "masks": gt_masks},
                            "pred": dict(r),
                        }
                    )
            bar.update(len(chunk))
    finally:
        bar.close()
    examples = (with_gt + without_gt)[:keep_examples]
    total_s = time.perf_counter() - t_start
    evaluator.per_image = per_image
    evaluator.iou_threshold = float(iou_threshold)
    evaluator.timing = {
        "detect_s": round(detect_s, 3),
        "total_s": round(total_s, 3),
        "images_per_s": round(len(per_image) / detect_s, 3) if detect_s > 0 else None,
    }
    return evaluator, examples


MAP_FILE = "val_map.json"
MAP_PLOT = "val_map.png"


class PeriodicEvaluation(keras.callbacks.Callback):
    """Val mask mAP@0.5 of ``maskrcnn`` (a training :class:`~mrcnn.model.maskrcnn.MaskRCNN`) on
    ``dataset`` every ``every`` epochs (``limit``: the first N val images only)."""

    def __init__(self, maskrcnn, dataset, every: int = 2, limit: int | None = None):
        super().__init__()
        self.maskrcnn, self.dataset, self.every, self.limit = maskrcnn, dataset, int(every), limit
        self._inference = None

    def _inference_model(self):
        if self._inference is None:
            from mrcnn.model.maskrcnn import MaskRCNN

            config = copy.deepcopy(self.maskrcnn.config)
            ranked, self.reference = ranked_detection_settings(config)
            config.apply({"IMAGES_PER_GPU": 1, "GPU_COUNT": 1, **ranked})
            self._inference = MaskRCNN("inference", config, self.maskrcnn.model_dir)
        return self._inference

    def on_epoch_end(self, epoch, logs=None):
        from mrcnn.model.loop import is_chief
        from mrcnn.model.weights import copy_weights_by_name
        from mrcnn.visualize import plot_map_per_epoch

        epoch += 1
        if epoch % self.every or not is_chief(self.maskrcnn.strategy):
            return
        inference = self._inference_model()
        copy_weights_by_name(self.maskrcnn.keras_model, inference.keras_model)
        evaluator, _ = evaluate_model(
            inference,
            self.dataset,
            limit=self.limit,
            progress=False,
            keep_examples=0,
            reference_confidence=self.reference[0],
            reference_max=self.reference[1],
        )
        summary = evaluator.summary()
        log_dir = self.maskrcnn.log_dir
        path = os.path.join(log_dir, MAP_FILE)
        history = [r for r in runs.read_json(path).get("epochs", []) if r["epoch"] < epoch]

        def plain(value):  # NaN (no val image with GT) -> null in the JSON
            return None if value != value else float(value)

        history.append(
            {
                "epoch": epoch,
                "mask_mAP50": plain(summary["mask_mAP50"]),
                "mask_mAP50_at_min_confidence": plain(summary["mask_mAP50_at_min_confidence"]),
            }
        )
        runs.write_json(path, {"epochs": history})
        plot_map_per_epoch(
            [r["epoch"] for r in history],
            {
                f"ranked (score >= {self._inference.config.DETECTION_MIN_CONFIDENCE:g})": [
                    r["mask_mAP50"] for r in history
                ],
                f"score >= {self.reference[0]:g}": [r["mask_mAP50_at_min_confidence"] for r in history],
            },
            os.path.join(log_dir, MAP_PLOT),
        )
        print(
            f"\nepoch {epoch}: val mask mAP@0.5 {summary['mask_mAP50']:.3f} (ranked), "
            f"{summary['mask_mAP50_at_min_confidence']:.3f} at >= {self.reference[0]:g}"
        )
