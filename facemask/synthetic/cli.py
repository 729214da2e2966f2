"""``facemask-synthetic`` / ``python -m facemask.synthetic``: write the dataset, print its counts."""

from __future__ import annotations

import argparse
import os

from .dataset import make_dataset
from .masks import MASK_TYPES


def _parse_size(text):
    try:
        h, w = text.lower().split("x")
        h, w = int(h), int(w)
        if h < 64 or w < 64:
            raise ValueError
        return h, w
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW with both >= 64, e.g. 384x512, got {text!r}") from None


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="facemask-synthetic",
        description="Draw a deterministic synthetic face-mask segmentation dataset "
        "(Matterport balloon layout: <out>/{train,val}/*.jpg + via_region_data.json, "
        "one VIA polygon per visible mask with region_attributes.mask_type in "
        f"{{{', '.join(MASK_TYPES)}}}). Unmasked faces are left unannotated as negatives.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--out", default="datasets/facemask", help="output directory")
    ap.add_argument("--train", type=int, default=200, help="number of training images")
    ap.add_argument("--val", type=int, default=50, help="number of validation images")
    ap.add_argument("--seed", type=int, default=0, help="random seed (same seed -> identical files)")
    ap.add_argument(
        "--size",
        type=_parse_size,
        default="384x512",
        help="nominal image size HxW; images use 0.85/1/1.15 scales of it, landscape and portrait",
    )
    ap.add_argument("--max-faces", type=int, default=4, help="at most this many people per image")
    ap.add_argument(
        "--negative-fraction", type=float, default=0.15, help="fraction of images where nobody wears a mask"
    )
    ap.add_argument(
        "--overwrite", action="store_true", help="regenerate even if <out>/train/via_region_data.json exists"
    )
    args = ap.parse_args(argv)

    s = make_dataset(
        args.out,
        n_train=args.train,
        n_val=args.val,
        image_size=args.size,
        seed=args.seed,
        max_faces=args.max_faces,
        negative_fraction=args.negative_fraction,
        overwrite=args.overwrite,
    )
    if s["cached"]:
        print(f"{args.out}: dataset already present (use --overwrite to regenerate)")
    for split, st in s["splits"].items():
        types = ", ".join(f"{t}={st['mask_types'].get(t, 0)}" for t in MASK_TYPES)
        print(
            f"  {split:5s}: {st['images']:4d} images, {st['masks']:4d} masks ({types}), "
            f"{st['negative_images']} images without masks"
        )
    extra = f", {s['unmasked_faces']} unmasked faces of {s['faces']}" if not s["cached"] else ""
    print(
        f"total: {s['images']} images, {s['masks']} masks, {s['negative_images']} negative images"
        f"{extra}; {s['seconds']:.2f} s -> {os.path.abspath(args.out)}"
    )
    return 0
