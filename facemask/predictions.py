"""What ``inference.py`` writes for a folder of detections: an overlay per image as it comes, then
``predictions.json`` (COCO results), ``summary.csv`` (a row per image), ``skipped.txt`` and, on
request, a VIA 2 project to correct the predictions in.

    writer = PredictionWriter("out/", class_names, class_key="mask_type", via_out=None)
    for item in detections:          # ImageDetections from facemask.inference.detect_images
        writer.add(item)
    paths = writer.close(info={...}, root=root, name="photos")

It only needs ``detect()``-style results (``rois``, ``class_ids``, ``scores``, ``masks`` [H, W, N] at the
original size), so a Keras model, a SavedModel and the exported ONNX/TFLite runtimes all feed it.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class ImageDetections:
    """One input file: its detections, or why it was skipped (``image``/``result`` None)."""

    path: Path
    file_name: str  # relative to the input root, posix
    overlay: str  # the overlay's path relative to the output folder
    image: np.ndarray | None = None
    result: dict | None = None
    error: str | None = None
    detect_s: float = 0.0  # this image's share of its batch's detect() time


class PredictionWriter:
    """Overlays as images come (:meth:`add`), the JSON/CSV/VIA files at :meth:`close`."""

    def __init__(
        self,
        output: str,
        class_names: list[str],
        *,
        class_key: str = "class",
        overlay_format="png",
        via_out: str | None = None,
    ):
        self.output, self.class_names, self.class_key, self.via_out = output, list(class_names), class_key, via_out
        self.overlay_format = overlay_format
        self.images, self.annotations, self.rows, self.skipped, self.via_entries = [], [], [], [], []
        self.counts = {n: 0 for n in self.class_names[1:]}
        self.detect_s = 0.0
        os.makedirs(output, exist_ok=True)

    @property
    def processed(self) -> int:
        return len(self.rows)

    def add(self, item: ImageDetections) -> None:
        if item.error is not None:
            self.skip(item.path, item.error)
            return
        from mrcnn.visualize import save_overlay

        from .coverage import mask_coverage

        self.detect_s += item.detect_s
        image, result = item.image, item.result
        h, w = image.shape[:2]
        ids = np.asarray(result["class_ids"]).reshape(-1)
        scores = np.asarray(result["scores"], dtype=float).reshape(-1)
        rois = np.asarray(result["rois"], dtype=float).reshape(-1, 4)
        masks = result["masks"]
        save_overlay(os.path.join(self.output, item.overlay), image, rois, masks, ids, self.class_names, scores)
        image_id = len(self.images) + 1
        self.images.append(
            {
                "id": image_id,
                "file_name": item.file_name,
                "width": int(w),
                "height": int(h),
                "overlay": item.overlay,
                "n_detections": int(len(ids)),
            }
        )
        per_class = {n: 0 for n in self.class_names[1:]}
        for i in range(len(ids)):
            name = self.class_names[int(ids[i])]
            per_class[name] += 1
            self.annotations.append(
                coco_result(image_id, item.file_name, int(ids[i]), name, rois[i], scores[i], masks[..., i])
            )
        for n, c in per_class.items():
            self.counts[n] += c
        if self.via_out:
            self.via_entries.append(self._via_entry(item, masks, ids, scores))
        face_pct, area_pct = mask_coverage(result, self.class_names, image.shape)
        self.rows.append(
            {
                "file": item.file_name,
                "width": w,
                "height": h,
                "n_detections": len(ids),
                **per_class,
                "mean_score": f"{scores.mean():.4f}" if len(ids) else "",
                "masked_face_pct": "" if face_pct is None else f"{face_pct:.2f}",
                "mask_area_pct": f"{area_pct:.2f}",
            }
        )

    def skip(self, path: Path, reason: str) -> None:
        from tqdm.auto import tqdm

        reason = " ".join(str(reason).split())
        self.skipped.append((path, reason))
        tqdm.write(f"skipped {path}: {reason}", file=sys.stderr)

    def _via_entry(self, item: ImageDetections, masks, ids, scores) -> dict:
        from mrcnn.data.via_export import image_entry, mask_to_polygon, polygon_region

        regions = []
        for i in range(len(ids)):
            points = mask_to_polygon(masks[..., i])
            if points is not None:
                regions.append(
                    polygon_region(
                        points, {self.class_key: self.class_names[int(ids[i])], "score": f"{float(scores[i]):.3f}"}
                    )
                )
        return image_entry(item.file_name, item.path.stat().st_size, regions)

    def close(self, info: dict, *, root: Path, name: str) -> dict:
        """Write predictions.json (with ``info``), summary.csv, skipped.txt and the VIA project
        (``name``, images under ``root``); returns their paths."""
        paths = {
            "predictions": os.path.join(self.output, "predictions.json"),
            "summary_csv": os.path.join(self.output, "summary.csv"),
            "skipped_txt": os.path.join(self.output, "skipped.txt"),
        }
        with open(paths["predictions"], "w", encoding="utf-8") as f:
            json.dump(
                {
                    "info": info,
                    "images": self.images,
                    "categories": [{"id": i, "name": n} for i, n in enumerate(self.class_names) if i > 0],
                    "annotations": self.annotations,
                },
                f,
            )
        fields = [
            "file",
            "width",
            "height",
            "n_detections",
            *self.class_names[1:],
            "mean_score",
            "masked_face_pct",
            "mask_area_pct",
        ]
        with open(paths["summary_csv"], "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(self.rows)
        with open(paths["skipped_txt"], "w", encoding="utf-8") as f:
            for path, reason in self.skipped:
                f.write(f"{path}\t{reason}\n")
        if self.via_out:
            from mrcnn.data.via_export import via_project, write_via_project

            write_via_project(
                self.via_out,
                via_project(
                    self.via_entries,
                    class_key=self.class_key,
                    class_names=self.class_names[1:],
                    name=name,
                    image_folder=os.path.abspath(root) + os.sep,
                ),
            )
            print(
                f"VIA 2 project for correction: {self.via_out} (open it in VIA 2.0.x with Project > Load; "
                f"images in {root}; class attribute {self.class_key!r})"
            )
        return paths


def coco_result(image_id: int, file_name: str, category_id: int, category_name: str, box, score, mask) -> dict:
    """One COCO *results* entry: ``bbox`` [x, y, w, h] from a (y1, x1, y2, x2) box, RLE ``segmentation``
    (counts as str) and its ``area``."""
    from pycocotools import mask as mask_utils

    from mrcnn.ops.rle import encode_rle

    rle = encode_rle(mask)
    y1, x1, y2, x2 = box
    return {
        "image_id": image_id,
        "file_name": file_name,
        "category_id": category_id,
        "category_name": category_name,
        "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
        "score": round(float(score), 6),
        "segmentation": rle,
        "area": int(mask_utils.area(rle)),
    }
