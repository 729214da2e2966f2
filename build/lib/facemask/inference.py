"""Run a face-mask checkpoint on a folder (or one file) of images.

    python inference.py --weights last --input photos/ --output out/
    python inference.py --weights logs/facemask20260101T000000/mask_rcnn_facemask_0010.h5 \\
        --input photos/ --output out/ --recursive --min-confidence 0.5 --batch-size 4 --format jpg

Every image file (jpg, jpeg, png, bmp, tif, tiff, webp; any case) becomes an overlay in
``--output`` (masks, boxes, "class score" labels; sub-folders mirrored with ``--recursive``).
Also written there:

* ``predictions.json``: ``{"info", "images", "categories", "annotations"}``; ``annotations`` is a
  COCO *results* list (``image_id``, ``file_name``, ``category_id``, ``category_name``,
  ``bbox`` [x, y, w, h], ``score``, ``segmentation`` RLE with ``counts`` as str, ``area``) --
  ``COCO.loadRes(predictions["annotations"])`` takes it as is;
* ``summary.csv``: one row per image: file, width, height, n_detections, one count column per
  class, mean_score, masked_face_pct (only with a class named "face": the percent of face area
  covered by the other classes' masks), mask_area_pct (masked pixels / image pixels * 100);
* ``skipped.txt``: files that could not be read or processed, with the reason (one per line).

Exit code 0 when at least one image was processed, 1 otherwise.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path
from typing import Sequence

from .cli import CLIError, add_checkpoint_args, cli_main, load_checkpoint, positive_int, probability

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


# ----------------------------------------------------------------------------- files
def find_images(input_path: str, recursive: bool = False, exclude: str | None = None) -> tuple[Path, list[Path]]:
    """(root, image files sorted) for a file or a folder; ``exclude``: a folder to leave out
    (the output folder, when it lies inside the input)."""
    path = Path(input_path)
    if path.is_file():
        return path.parent, [path]
    if not path.is_dir():
        raise FileNotFoundError(f"input not found: {input_path}")
    excluded = Path(exclude).resolve() if exclude else None
    pattern = "**/*" if recursive else "*"
    files = []
    for f in path.glob(pattern):
        if not f.is_file() or f.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if excluded is not None and excluded in f.resolve().parents:
            continue
        files.append(f)
    return path, sorted(files, key=lambda f: f.relative_to(path).as_posix())


def output_names(root: Path, files: list[Path], fmt: str) -> list[str]:
    """Overlay paths relative to the output folder: the input's relative path with the new
    extension; ``name.ext.fmt`` where two inputs would collide (a.jpg and a.png)."""
    rels = [f.relative_to(root) for f in files]
    plain = [r.with_suffix(f".{fmt}").as_posix() for r in rels]
    counts: dict[str, int] = {}
    for p in plain:
        counts[p] = counts.get(p, 0) + 1
    return [p if counts[p] == 1 else f"{r.as_posix()}.{fmt}" for p, r in zip(plain, rels)]


# ----------------------------------------------------------------------------- main work
def infer_folder(args: argparse.Namespace, *, model=None) -> dict:
    """Detect in every image under ``args.input`` and write overlays, predictions.json,
    summary.csv and skipped.txt to ``args.output``; returns a summary dict (see :func:`run`).
    ``model``: an inference ``MaskRCNN`` to use instead of loading ``args.weights``."""
    import numpy as np

    from mrcnn.metrics import mask_coverage

    input_path, output, recursive = args.input, args.output, args.recursive
    root, files = find_images(input_path, recursive, exclude=output)
    if not files:
        raise CLIError(f"no images found in {input_path} (extensions {', '.join(IMAGE_EXTENSIONS)}"
                       f"{'' if recursive else '; add --recursive for sub-folders'})")
    overrides = {"DETECTION_MIN_CONFIDENCE": args.min_confidence, "DETECTION_MAX_INSTANCES": args.max_detections,
                 "IMAGES_PER_GPU": args.batch_size}
    if model is None:
        model, ckpt = load_checkpoint(args, **overrides)
    else:
        from .cli import Checkpoint, resolve_weights

        ckpt = Checkpoint(resolve_weights(args.weights, args.logs), model.config, "the given model")
    config, weights_path, class_names = model.config, ckpt.weights, ckpt.class_names
    print(f"{len(files)} images in {input_path}; classes: {', '.join(class_names[1:])}")
    progress, fmt = not args.no_progress, args.format
    via_entries = [] if args.via_out else None
    class_key = getattr(config, "CLASS_KEY", None) or "class"

    def via_image_entry(path: Path, file_name: str, masks, ids, scores):
        from mrcnn.data.via_export import image_entry, mask_to_polygon, polygon_region

        regions = []
        for i in range(len(ids)):
            points = mask_to_polygon(masks[..., i])
            if points is not None:
                regions.append(polygon_region(points, {class_key: class_names[int(ids[i])],
                                                       "score": f"{float(scores[i]):.3f}"}))
        return image_entry(file_name, path.stat().st_size, regions)

    from tqdm.auto import tqdm

    from mrcnn.data.image_io import read_image_rgb
    from mrcnn.visualize import save_overlay

    os.makedirs(output, exist_ok=True)
    names = output_names(root, files, fmt)
    images_json, annotations, rows, skipped = [], [], [], []
    counts_total = {n: 0 for n in class_names[1:]}
    batch = max(1, int(config.BATCH_SIZE))
    detect_s = 0.0
    t_start = time.perf_counter()

    def skip(path: Path, reason: str) -> None:
        reason = " ".join(str(reason).split())
        skipped.append((path, reason))
        tqdm.write(f"skipped {path}: {reason}", file=sys.stderr)

    def detect(images):
        nonlocal detect_s
        t0 = time.perf_counter()
        try:
            return model.detect(list(images))  # pads a short last batch itself (one graph)
        finally:
            detect_s += time.perf_counter() - t0

    def handle(path: Path, out_rel: str, image, result) -> None:
        h, w = image.shape[:2]
        ids = np.asarray(result["class_ids"]).reshape(-1)
        scores = np.asarray(result["scores"], dtype=float).reshape(-1)
        rois = np.asarray(result["rois"], dtype=float).reshape(-1, 4)
        masks = result["masks"]
        save_overlay(os.path.join(output, out_rel), image, rois, masks, ids, class_names, scores)
        image_id = len(images_json) + 1
        file_name = path.relative_to(root).as_posix()
        images_json.append({"id": image_id, "file_name": file_name, "width": int(w), "height": int(h),
                            "overlay": out_rel, "n_detections": int(len(ids))})
        per_class = {n: 0 for n in class_names[1:]}
        from pycocotools import mask as mask_utils

        from mrcnn.ops.masks import encode_rle
        for i in range(len(ids)):
            rle = encode_rle(masks[..., i])
            y1, x1, y2, x2 = rois[i]
            name = class_names[int(ids[i])]
            per_class[name] += 1
            annotations.append({
                "image_id": image_id, "file_name": file_name, "category_id": int(ids[i]),
                "category_name": name, "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                "score": round(float(scores[i]), 6), "segmentation": rle,
                "area": int(mask_utils.area(rle))})
        for n, c in per_class.items():
            counts_total[n] += c
        if via_entries is not None:
            via_entries.append(via_image_entry(path, file_name, masks, ids, scores))
        face_pct, area_pct = mask_coverage(result, class_names, image.shape)
        rows.append({"file": file_name, "width": w, "height": h, "n_detections": len(ids), **per_class,
                     "mean_score": f"{scores.mean():.4f}" if len(ids) else "",
                     "masked_face_pct": "" if face_pct is None else f"{face_pct:.2f}",
                     "mask_area_pct": f"{area_pct:.2f}"})

    bar = tqdm(total=len(files), desc="inference", unit="img", disable=not progress, dynamic_ncols=True)
    try:
        for start in range(0, len(files), batch):
            chunk = list(zip(files[start:start + batch], names[start:start + batch]))
            loaded = []
            for path, out_rel in chunk:
                try:
                    loaded.append((path, out_rel, read_image_rgb(path)))
                except (OSError, ValueError) as e:  # ImageReadError is a ValueError
                    skip(path, e)
            if loaded:
                try:
                    results = detect([im for _, _, im in loaded])
                except (MemoryError, KeyboardInterrupt):
                    raise
                except Exception:  # one bad image must not take the batch down: retry one by one
                    results = None
                if results is not None:
                    for (path, out_rel, image), result in zip(loaded, results):
                        handle(path, out_rel, image, result)
                else:
                    for path, out_rel, image in loaded:
                        try:
                            result = detect([image])[0]
                        except (MemoryError, KeyboardInterrupt):
                            raise
                        except Exception as e:
                            skip(path, f"detection failed: {type(e).__name__}: {e}")
                            continue
                        handle(path, out_rel, image, result)
            bar.update(len(chunk))
    finally:
        bar.close()
    wall_s = time.perf_counter() - t_start

    # Files.
    pred_path = os.path.join(output, "predictions.json")
    with open(pred_path, "w", encoding="utf-8") as f:
        json.dump({
            "info": {"weights": os.path.abspath(weights_path), "input": os.path.abspath(input_path),
                     "detection_min_confidence": float(config.DETECTION_MIN_CONFIDENCE),
                     "detection_max_instances": int(config.DETECTION_MAX_INSTANCES),
                     "bbox_format": "xywh (COCO)", "segmentation_format": "COCO RLE, counts as str"},
            "images": images_json,
            "categories": [{"id": i, "name": n} for i, n in enumerate(class_names) if i > 0],
            "annotations": annotations,
        }, f)
    csv_path = os.path.join(output, "summary.csv")
    fields = ["file", "width", "height", "n_detections", *class_names[1:], "mean_score",
              "masked_face_pct", "mask_area_pct"]
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    if via_entries is not None:
        from mrcnn.data.via_export import via_project, write_via_project

        write_via_project(args.via_out, via_project(via_entries, class_key=class_key, class_names=class_names[1:],
                                                    name=os.path.basename(os.path.abspath(input_path)),
                                                    image_folder=os.path.abspath(root) + os.sep))
        print(f"VIA 2 project for correction: {args.via_out} (open it in VIA 2.0.x with Project > Load; "
              f"images in {root}; class attribute {class_key!r})")
    skipped_path = os.path.join(output, "skipped.txt")
    with open(skipped_path, "w", encoding="utf-8") as f:
        for path, reason in skipped:
            f.write(f"{path}\t{reason}\n")

    processed = len(rows)
    ips = processed / detect_s if detect_s > 0 else 0.0
    summary = {
        "processed": processed, "skipped": len(skipped), "skipped_files": [str(p) for p, _ in skipped],
        "detections_per_class": counts_total, "total_detections": int(sum(counts_total.values())),
        "images_per_s": round(ips, 3), "detect_s": round(detect_s, 3), "wall_s": round(wall_s, 3),
        "weights": os.path.abspath(weights_path), "output": os.path.abspath(output),
        "predictions": os.path.abspath(pred_path), "summary_csv": os.path.abspath(csv_path),
        "skipped_txt": os.path.abspath(skipped_path),
        "via_out": os.path.abspath(args.via_out) if args.via_out else None,
    }
    per_class = ", ".join(f"{n} {c}" for n, c in counts_total.items())
    print(f"{ips:.2f} images/s in detect ({processed / wall_s if wall_s > 0 else 0:.2f} images/s overall)")
    print(f"done: {processed} images processed, {len(skipped)} skipped; detections: "
          f"{summary['total_detections']} ({per_class}); overlays in {output}; "
          f"{pred_path}; {csv_path}" + (f"; skipped files in {skipped_path}" if skipped else ""))
    if processed == 0:
        raise CLIError(f"no image could be processed ({len(skipped)} skipped; see {skipped_path})")
    return summary


# ----------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="facemask-infer",
        description="Detect face masks in images: overlays, predictions.json (COCO results), summary.csv.")
    add_checkpoint_args(p)
    p.add_argument("--input", required=True, help="an image file or a folder of images")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--recursive", action="store_true", help="include sub-folders (mirrored in --output)")
    p.add_argument("--min-confidence", type=probability, default=None,
                   help="DETECTION_MIN_CONFIDENCE (default: the checkpoint's config)")
    p.add_argument("--max-detections", type=positive_int, default=None,
                   help="DETECTION_MAX_INSTANCES (default: the checkpoint's config)")
    p.add_argument("--batch-size", type=positive_int, default=1, help="images per detect call (default 1)")
    p.add_argument("--format", choices=("png", "jpg"), default="png", help="overlay format (default png)")
    p.add_argument("--via-out", metavar="FILE", default=None,
                   help="also write the predictions as a VIA 2.0.x project (one polygon per instance, class and "
                        "score as region attributes) to correct in VIA and train on")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def run(argv: Sequence[str] | None = None) -> dict:
    """Parse ``argv`` (default ``sys.argv[1:]``), run, return the summary dict: processed,
    skipped, skipped_files, detections_per_class, total_detections, images_per_s, detect_s,
    wall_s and the output paths. Raises CLIError when nothing could be processed."""
    return infer_folder(build_parser().parse_args(argv))


def main(argv: Sequence[str] | None = None) -> int:
    return cli_main(run, argv)


if __name__ == "__main__":
    sys.exit(main())
