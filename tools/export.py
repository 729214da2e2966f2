"""Export a face-mask checkpoint as a TensorFlow SavedModel that serves raw images.

    python -m tools.export --weights last --out exported/facemask
    python tools/export.py --weights logs/facemask.../mask_rcnn_facemask_0010.h5 --out exported/fm \\
        --min-confidence 0.7

The SavedModel's ``serve`` (also ``serving_default``) takes one uint8 RGB image [H, W, 3] of any
size and returns ``boxes`` int32 [N, 4] (y1, x1, y2, x2 in original pixels, y2/x2 exclusive),
``class_ids`` int32 [N], ``scores`` float32 [N] and ``masks`` uint8 [N, H, W] (0/1). Resizing,
padding, mean subtraction, box un-scaling and mask pasting all run in the graph:

    import tensorflow as tf
    served = tf.saved_model.load("exported/facemask")
    out = served.serve(tf.constant(image))
    names = served.class_names.numpy()   # bytes, indexed by class id
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def build_parser() -> argparse.ArgumentParser:
    from evaluate import add_checkpoint_args

    p = argparse.ArgumentParser(prog="tools/export.py", description="Export a checkpoint as a serving SavedModel.")
    add_checkpoint_args(p)
    p.add_argument("--out", required=True, help="output folder of the SavedModel")
    p.add_argument("--min-confidence", type=float, default=None,
                   help="DETECTION_MIN_CONFIDENCE baked into the graph (default: the checkpoint's config)")
    p.add_argument("--max-detections", type=int, default=None,
                   help="DETECTION_MAX_INSTANCES baked into the graph (default: the checkpoint's config)")
    return p


def export(weights: str, out: str, *, profile: str = "cpu", classes: str | None = None,
           config_file: str | None = None, logs: str = "logs", min_confidence: float | None = None,
           max_detections: int | None = None) -> str:
    from evaluate import (build_model, class_names_for, config_line, inference_config, resolve_checkpoint,
                          resolve_classes, saved_run_config)
    from mrcnn.serve.export import export_saved_model

    weights_path = resolve_checkpoint(weights, logs)
    saved_path, saved = saved_run_config(weights_path)
    classes = resolve_classes(classes, saved, saved_path)
    config, source = inference_config(weights_path, profile, classes, config_file,
                                      DETECTION_MIN_CONFIDENCE=min_confidence,
                                      DETECTION_MAX_INSTANCES=max_detections, IMAGES_PER_GPU=1)
    print(config_line(config, source))
    model = build_model(config, weights_path, logs)
    names = class_names_for(classes, int(config.NUM_CLASSES))
    export_saved_model(model.keras_model, config, out, class_names=names)
    print(f"SavedModel written to {out} (classes: {', '.join(names[1:])})")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from evaluate import user_errors

    a = build_parser().parse_args(argv)
    try:
        export(a.weights, a.out, profile=a.profile, classes=a.classes, config_file=a.config, logs=a.logs,
               min_confidence=a.min_confidence, max_detections=a.max_detections)
    except user_errors() as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
