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
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from .cli import CLIError, add_checkpoint_args, cli_main, load_checkpoint, positive_int, probability
from .predictions import ImageDetections, PredictionWriter

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
def detect_images(
    model, root: Path, files: list[Path], overlays: list[str], batch_size: int = 1
) -> Iterator[ImageDetections]:
    """Read each file and run ``model.detect`` on batches of ``batch_size``; yields one
    :class:`ImageDetections` per file, in order: its detections, or the reason it was skipped (an
    unreadable file; a detection that failed on its own: a failing batch is retried image by image)."""
    from mrcnn.data.image_io import read_image_rgb

    def detect(images):
        t0 = time.perf_counter()
        results = model.detect(list(images))  # pads a short last batch itself (one graph)
        return results, (time.perf_counter() - t0) / len(images)

    for start in range(0, len(files), batch_size):
        items, loaded = [], []
        for path, overlay in zip(files[start : start + batch_size], overlays[start : start + batch_size]):
            item = ImageDetections(path, path.relative_to(root).as_posix(), overlay)
            try:
                item.image = read_image_rgb(path)
                loaded.append(item)
            except (OSError, ValueError) as e:  # ImageReadError is a ValueError
                item.error = str(e)
            items.append(item)
        if loaded:
            try:
                results, share = detect([item.image for item in loaded])
                for item, result in zip(loaded, results):
                    item.result, item.detect_s = result, share
            except (MemoryError, KeyboardInterrupt):
                raise
            except Exception:  # one bad image must not take the batch down: retry one by one
                for item in loaded:
                    try:
                        (item.result,), item.detect_s = detect([item.image])
                    except (MemoryError, KeyboardInterrupt):
                        raise
                    except Exception as e:
                        item.error = f"detection failed: {type(e).__name__}: {e}"
        yield from items


def infer_folder(args: argparse.Namespace) -> dict:
    """Detect in every image under ``args.input`` (:func:`detect_images`) and write overlays,
    predictions.json, summary.csv, skipped.txt and the optional VIA project to ``args.output``
    (:class:`~facemask.predictions.PredictionWriter`); returns a summary dict (see :func:`run`)."""
    from tqdm.auto import tqdm

    root, files = find_images(args.input, args.recursive, exclude=args.output)
    if not files:
        raise CLIError(
            f"no images found in {args.input} (extensions {', '.join(IMAGE_EXTENSIONS)}"
            f"{'' if args.recursive else '; add --recursive for sub-folders'})"
        )
    model, ckpt = load_checkpoint(
        args,
        DETECTION_MIN_CONFIDENCE=args.min_confidence,
        DETECTION_MAX_INSTANCES=args.max_detections,
        IMAGES_PER_GPU=args.batch_size,
    )
    config, class_names = model.config, ckpt.class_names
    print(f"{len(files)} images in {args.input}; classes: {', '.join(class_names[1:])}")
    writer = PredictionWriter(
        args.output,
        class_names,
        class_key=getattr(config, "CLASS_KEY", None) or "class",
        overlay_format=args.format,
        via_out=args.via_out,
    )
    t_start = time.perf_counter()
    with tqdm(total=len(files), desc="inference", unit="img", disable=args.no_progress, dynamic_ncols=True) as bar:
        for item in detect_images(
            model, root, files, output_names(root, files, args.format), max(1, int(config.BATCH_SIZE))
        ):
            writer.add(item)
            bar.update(1)
    wall_s = time.perf_counter() - t_start
    paths = writer.close(
        {
            "weights": os.path.abspath(ckpt.weights),
            "input": os.path.abspath(args.input),
            "detection_min_confidence": float(config.DETECTION_MIN_CONFIDENCE),
            "detection_max_instances": int(config.DETECTION_MAX_INSTANCES),
            "bbox_format": "xywh (COCO)",
            "segmentation_format": "COCO RLE, counts as str",
        },
        root=root,
        name=os.path.basename(os.path.abspath(args.input)),
    )
    return report(writer, paths, ckpt.weights, args, wall_s)


def report(writer: PredictionWriter, paths: dict, weights: str, args: argparse.Namespace, wall_s: float) -> dict:
    """Print the outcome and return the summary dict; nothing processed is a CLIError."""
    processed, skipped, counts = writer.processed, len(writer.skipped), writer.counts
    ips = processed / writer.detect_s if writer.detect_s > 0 else 0.0
    summary = {
        "processed": processed,
        "skipped": skipped,
        "skipped_files": [str(p) for p, _ in writer.skipped],
        "detections_per_class": counts,
        "total_detections": int(sum(counts.values())),
        "images_per_s": round(ips, 3),
        "detect_s": round(writer.detect_s, 3),
        "wall_s": round(wall_s, 3),
        "weights": os.path.abspath(weights),
        "output": os.path.abspath(args.output),
        **{key: os.path.abspath(path) for key, path in paths.items()},
        "via_out": os.path.abspath(args.via_out) if args.via_out else None,
    }
    per_class = ", ".join(f"{n} {c}" for n, c in counts.items())
    print(f"{ips:.2f} images/s in detect ({processed / wall_s if wall_s > 0 else 0:.2f} images/s overall)")
    print(
        f"done: {processed} images processed, {skipped} skipped; detections: "
        f"{summary['total_detections']} ({per_class}); overlays in {args.output}; "
        f"{paths['predictions']}; {paths['summary_csv']}"
        + (f"; skipped files in {paths['skipped_txt']}" if skipped else "")
    )
    if processed == 0:
        raise CLIError(f"no image could be processed ({skipped} skipped; see {paths['skipped_txt']})")
    return summary


# ----------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="facemask-infer",
        description="Detect face masks in images: overlays, predictions.json (COCO results), summary.csv.",
    )
    add_checkpoint_args(p)
    p.add_argument("--input", required=True, help="an image file or a folder of images")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--recursive", action="store_true", help="include sub-folders (mirrored in --output)")
    p.add_argument(
        "--min-confidence",
        type=probability,
        default=None,
        help="DETECTION_MIN_CONFIDENCE (default: the checkpoint's config)",
    )
    p.add_argument(
        "--max-detections",
        type=positive_int,
        default=None,
        help="DETECTION_MAX_INSTANCES (default: the checkpoint's config)",
    )
    p.add_argument("--batch-size", type=positive_int, default=1, help="images per detect call (default 1)")
    p.add_argument("--format", choices=("png", "jpg"), default="png", help="overlay format (default png)")
    p.add_argument(
        "--via-out",
        metavar="FILE",
        default=None,
        help="also write the predictions as a VIA 2.0.x project (one polygon per instance, class and "
        "score as region attributes) to correct in VIA and train on",
    )
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
