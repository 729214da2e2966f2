#!/usr/bin/env python
"""A real-photo face-mask set in our layout (``DIR/train``, ``DIR/val``, VIA 2 polygons) from the public
MaskedFaceSegmentation-Dataset (github.com/baskoroadiw/MaskedFaceSegmentation-Dataset: FFHQ portraits
with a mask fitted onto the face by MaskedFace-Net, 1024 px, a label PNG per image: 0 background,
1 face, 2 mask). Close-up selfies with one big mask each: the case the issue-30 photos are weakest on.

The subset is drawn with a fixed seed, sized like the issue's photos (65 train / 16 val by default),
half correctly and half incorrectly worn where the source has both. Each mask becomes the polygon of
its largest outer contour (holes are rare and small here), so the set reads through the same VIA
reader as a user's annotations::

    git clone https://github.com/baskoroadiw/MaskedFaceSegmentation-Dataset /tmp/mfs
    python bench/maskedface_via.py --source /tmp/mfs --out /work/data/maskedface
    python train.py --dataset /work/data/maskedface
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import measure

MASK_LABEL = 2
GROUPS = ("CWM", "IWM")  # correctly / incorrectly worn


def mask_polygon(label_png: Path, tolerance: float = 1.5) -> tuple[list[int], list[int]]:
    """x and y lists of the largest outer contour of the mask label (pixel coordinates)."""
    label = np.asarray(Image.open(label_png))
    mask = np.pad(label == MASK_LABEL, 1)
    contours = measure.find_contours(mask.astype(np.uint8), 0.5)
    if not contours:
        raise ValueError(f"{label_png}: no mask pixels (label {MASK_LABEL})")
    contour = measure.approximate_polygon(max(contours, key=len), tolerance) - 1.0  # undo the pad
    ys = np.clip(np.round(contour[:, 0]), 0, label.shape[0] - 1).astype(int)
    xs = np.clip(np.round(contour[:, 1]), 0, label.shape[1] - 1).astype(int)
    return xs.tolist(), ys.tolist()


def pick(split_dir: Path, count: int, rng: random.Random) -> list[Path]:
    """``count`` images of ``split_dir/{CWM,IWM}/images``, about half from each group."""
    groups = [sorted((split_dir / g / "images").glob("*.jpg")) for g in GROUPS]
    groups = [g for g in groups if g]
    share = [count // len(groups) + (i < count % len(groups)) for i in range(len(groups))]
    chosen = []
    for files, n in zip(groups, share):
        chosen += rng.sample(files, min(n, len(files)))
    return sorted(chosen)


def write_split(images: list[Path], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    via = {}
    for image in images:
        label = image.parent.parent / "masks" / f"{image.stem}_gt.png"
        xs, ys = mask_polygon(label)
        shutil.copyfile(image, out / image.name)
        size = os.path.getsize(image)
        region = {
            "shape_attributes": {"name": "polygon", "all_points_x": xs, "all_points_y": ys},
            "region_attributes": {"mask_type": "surgical", "worn": image.parent.parent.name},
        }
        via[f"{image.name}{size}"] = {"filename": image.name, "size": size, "regions": [region], "file_attributes": {}}
    (out / "via_region_data.json").write_text(json.dumps(via))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="a clone of MaskedFaceSegmentation-Dataset")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--train", type=int, default=65)
    parser.add_argument("--val", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not (args.source / "training").is_dir() or not (args.source / "testing").is_dir():
        print(f"error: {args.source}: no training/ and testing/ folders (a MaskedFaceSegmentation-Dataset clone?)")
        return 2
    rng = random.Random(args.seed)
    write_split(pick(args.source / "training", args.train, rng), args.out / "train")
    write_split(pick(args.source / "testing", args.val, rng), args.out / "val")
    print(f"{args.out}: {args.train} train / {args.val} val images, one mask polygon each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
