"""Export a face-mask checkpoint as a TensorFlow SavedModel, an ONNX or a TFLite file that serves raw images.

    facemask-export --weights last --out exported/facemask                      # SavedModel folder
    facemask-export --weights last --format onnx --out exported/                # exported/model.onnx + model.json
    facemask-export --weights last --format tflite --out exported/              # exported/model.tflite + model.json
    python -m facemask.export --weights logs/facemask.../mask_rcnn_facemask_0010.h5 --out exported/fm \\
        --min-confidence 0.7

ONNX and TFLite (``pip install 'mrcnn-facemask[export]'``) have the same contract, converted from the
export-mode graph (gather ROIAlign, padded NMS: builtin ops only); run them with
``inference.py --weights exported/model.onnx`` or ``facemask-app --weights exported/model.tflite``.

The SavedModel's ``serve`` (also ``serving_default``) takes one uint8 RGB image [H, W, 3] of any
size and returns ``boxes`` int32 [N, 4] (y1, x1, y2, x2 in original pixels, y2/x2 exclusive),
``class_ids`` int32 [N], ``scores`` float32 [N] and ``masks`` uint8 [N, H, W] (0/1). Resizing,
padding, mean subtraction, box un-scaling and mask pasting all run in the graph, in float32 whatever
the run's MIXED_PRECISION (a SavedModel runs on machines the export cannot see):

    import tensorflow as tf
    served = tf.saved_model.load("exported/facemask")
    out = served.serve(tf.constant(image))
    names = served.class_names.numpy()   # bytes, indexed by class id
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .cli import CLIError, add_checkpoint_args, cli_main, is_exported, load_checkpoint, positive_int, probability


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="facemask-export",
                                description="Export a checkpoint as a serving SavedModel, ONNX or TFLite model.")
    add_checkpoint_args(p)
    p.add_argument("--format", choices=FORMATS, default="saved_model",
                   help="saved_model (a folder), onnx (DIR/model.onnx) or tflite (DIR/model.tflite, builtin ops "
                        "only); onnx/tflite also write DIR/model.json (class names, config). Default saved_model")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--min-confidence", type=probability, default=None,
                   help="DETECTION_MIN_CONFIDENCE baked into the graph (default: the checkpoint's config)")
    p.add_argument("--max-detections", type=positive_int, default=None,
                   help="DETECTION_MAX_INSTANCES baked into the graph (default: the checkpoint's config)")
    return p


FORMATS = ("saved_model", "onnx", "tflite")


def run(argv: Sequence[str] | None = None) -> str:
    """Parse ``argv``, export, return the SavedModel folder or the model file."""
    import os

    a = build_parser().parse_args(argv)
    if is_exported(a.weights):
        raise CLIError(f"--weights {a.weights} is already an exported model; export from a checkpoint (.h5), "
                       "a run folder or 'last'")
    if a.format == "onnx":
        try:
            import tf2onnx  # noqa: F401  (fail before the model is built)
        except ImportError:
            raise CLIError("--format onnx needs tf2onnx: pip install 'mrcnn-facemask[export]'") from None
    model, ckpt = load_checkpoint(a, DETECTION_MIN_CONFIDENCE=a.min_confidence,
                                  DETECTION_MAX_INSTANCES=a.max_detections, MIXED_PRECISION=False)
    classes = ", ".join(ckpt.class_names[1:])
    if a.format == "saved_model":
        from mrcnn.serve.saved_model import export_saved_model

        export_saved_model(model.keras_model, ckpt.config, a.out, class_names=ckpt.class_names)
        print(f"SavedModel written to {a.out} (classes: {classes})")
        return a.out
    from mrcnn.serve.portable import export_onnx, export_tflite

    path = os.path.join(a.out, f"model.{a.format}")
    (export_onnx if a.format == "onnx" else export_tflite)(model.keras_model, ckpt.config, path,
                                                          class_names=ckpt.class_names)
    print(f"{a.format} model written to {path} ({os.path.getsize(path) / 1e6:.1f} MB; classes: {classes}; "
          f"class names and config in {os.path.splitext(path)[0]}.json)")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    return cli_main(run, argv)


if __name__ == "__main__":
    sys.exit(main())
