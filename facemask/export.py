"""Export a face-mask checkpoint as a TensorFlow SavedModel that serves raw images.

    facemask-export --weights last --out exported/facemask
    python -m facemask.export --weights logs/facemask.../mask_rcnn_facemask_0010.h5 --out exported/fm \\
        --min-confidence 0.7

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

from .cli import add_checkpoint_args, cli_main, load_checkpoint, positive_int, probability


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="facemask-export", description="Export a checkpoint as a serving SavedModel.")
    add_checkpoint_args(p)
    p.add_argument("--out", required=True, help="output folder of the SavedModel")
    p.add_argument("--min-confidence", type=probability, default=None,
                   help="DETECTION_MIN_CONFIDENCE baked into the graph (default: the checkpoint's config)")
    p.add_argument("--max-detections", type=positive_int, default=None,
                   help="DETECTION_MAX_INSTANCES baked into the graph (default: the checkpoint's config)")
    return p


def run(argv: Sequence[str] | None = None) -> str:
    """Parse ``argv``, export, return the SavedModel folder."""
    from mrcnn.serve.saved_model import export_saved_model

    a = build_parser().parse_args(argv)
    model, ckpt = load_checkpoint(a, DETECTION_MIN_CONFIDENCE=a.min_confidence,
                                  DETECTION_MAX_INSTANCES=a.max_detections, MIXED_PRECISION=False)
    export_saved_model(model.keras_model, ckpt.config, a.out, class_names=ckpt.class_names)
    print(f"SavedModel written to {a.out} (classes: {', '.join(ckpt.class_names[1:])})")
    return a.out


def main(argv: Sequence[str] | None = None) -> int:
    return cli_main(run, argv)


if __name__ == "__main__":
    sys.exit(main())
