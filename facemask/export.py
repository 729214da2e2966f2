"""Export a face-mask checkpoint as a TensorFlow SavedModel, an ONNX or a TFLite model that serves raw images.

    facemask-export --weights last --out exported/facemask                  # SavedModel folder (+ model.json in it)
    facemask-export --weights last --format onnx --out exported/            # exported/model.onnx + model.json
    facemask-export --weights last --format tflite --out exported/          # exported/model.tflite + model.json
    python -m facemask.export --weights logs/facemask.../mask_rcnn_facemask_0010.h5 --out exported/fm \\
        --min-confidence 0.7

Every format has the same contract: one uint8 RGB image [H, W, 3] of any size in; ``boxes`` int32
[N, 4] (y1, x1, y2, x2 in original pixels, y2/x2 exclusive), ``class_ids`` int32 [N], ``scores``
float32 [N] and ``masks`` uint8 [N, H, W] (0/1) out. Resizing, padding, mean subtraction, box
un-scaling and mask pasting all run in the graph, in float32 whatever the run's MIXED_PRECISION (an
export runs on machines the export cannot see). ``model.json`` holds the class names (by class id)
and the config; ``DETECTION_MIN_CONFIDENCE`` and ``DETECTION_MAX_INSTANCES`` are baked into the graph
(``inference.py --min-confidence`` can only raise the one, ``--max-detections`` only lower the other).

Run any of them with ``inference.py --weights exported/model.onnx`` (or ``model.tflite``, or the
SavedModel folder) and ``facemask-app --weights ...``. What each needs:

* SavedModel: TensorFlow. ``tf.saved_model.load(DIR).serve(tf.constant(image))``; also
  ``serving_default`` (TF Serving) and the string variables ``class_names`` and ``config_json``.
* ONNX (opset 17): onnxruntime only, no TensorFlow (``pip install 'mrcnn-facemask[export]'``,
  which also brings tf2onnx for the export). Input ``image``, outputs by name.
* TFLite: builtin ops only (``TFLITE_BUILTINS``, no Select TF ops, which the pip LiteRT runtime
  cannot run since TF 2.20): ``ai_edge_litert`` (or ``tf.lite``) interpreter, signature
  ``serving_default``. The input is resized to each image (the interpreter re-plans on a new size).

The difference: ONNX and TFLite convert the export-mode graph (gather-based multilevel ROIAlign,
padded NMS, loop-free mask pasting, float32 resize arithmetic; ``mrcnn.model.graph``'s
``export=True``) because ``CropAndResize``, ``CombinedNonMaxSuppression`` and ``map_fn``'s TensorList ops have no
builtin; the SavedModel serves the same graph as ``detect()``. On images at the model's input size the
detections are ``detect()``'s (scores within ~1e-6, which can flip a near-tie in NMS: one detection in
dozens, on some runs); at other sizes they are close, not equal: ``detect()`` resizes with OpenCV, every export with
``tf.image.resize`` (at most one grey level apart). tests/test_export_formats.py measures both.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .cli import CLIError, add_checkpoint_args, cli_main, is_exported, load_checkpoint, positive_int, probability


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="facemask-export", description="Export a checkpoint as a serving SavedModel, ONNX or TFLite model."
    )
    add_checkpoint_args(p)
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="saved_model",
        help="saved_model (the folder DIR), onnx (DIR/model.onnx) or tflite (DIR/model.tflite, builtin "
        "ops only); each also writes DIR/model.json (class names, config). Default saved_model",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--min-confidence",
        type=probability,
        default=None,
        help="DETECTION_MIN_CONFIDENCE baked into the graph (default: the checkpoint's config)",
    )
    p.add_argument(
        "--max-detections",
        type=positive_int,
        default=None,
        help="DETECTION_MAX_INSTANCES baked into the graph (default: the checkpoint's config)",
    )
    return p


FORMATS = ("saved_model", "onnx", "tflite")


def run(argv: Sequence[str] | None = None) -> str:
    """Parse ``argv``, export, return the SavedModel folder or the model file."""
    import os

    a = build_parser().parse_args(argv)
    if is_exported(a.weights):
        raise CLIError(
            f"--weights {a.weights} is already an exported model; export from a checkpoint (.h5), "
            "a run folder or 'last'"
        )
    if os.path.exists(a.out) and not os.path.isdir(a.out):
        raise CLIError(f"--out {a.out} is a file; give a folder (the {a.format} model goes inside it)")
    if a.format == "onnx":
        try:
            import tf2onnx  # noqa: F401  (fail before the model is built)
        except ImportError:
            raise CLIError("--format onnx needs tf2onnx: pip install 'mrcnn-facemask[export]'") from None
    model, ckpt = load_checkpoint(
        a, DETECTION_MIN_CONFIDENCE=a.min_confidence, DETECTION_MAX_INSTANCES=a.max_detections, MIXED_PRECISION=False
    )
    classes = ", ".join(ckpt.class_names[1:])
    if a.format == "saved_model":
        from mrcnn.serve.portable import config_dict
        from mrcnn.serve.runtimes import write_sidecar
        from mrcnn.serve.saved_model import export_saved_model

        export_saved_model(model.keras_model, ckpt.config, a.out, class_names=ckpt.class_names)
        write_sidecar(a.out, "saved_model", ckpt.class_names, config_dict(ckpt.config))
        print(
            f"SavedModel written to {a.out} (classes: {classes}; class names and config also in "
            f"{os.path.join(a.out, 'model.json')})"
        )
        return a.out
    from mrcnn.serve.portable import export_onnx, export_tflite

    path = os.path.join(a.out, f"model.{a.format}")
    (export_onnx if a.format == "onnx" else export_tflite)(
        model.keras_model, ckpt.config, path, class_names=ckpt.class_names
    )
    print(
        f"{a.format} model written to {path} ({os.path.getsize(path) / 1e6:.1f} MB; classes: {classes}; "
        f"class names and config in {os.path.splitext(path)[0]}.json)"
    )
    return path


def main(argv: Sequence[str] | None = None) -> int:
    return cli_main(run, argv)


if __name__ == "__main__":
    sys.exit(main())
