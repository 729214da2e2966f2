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

FFHQ portraits are aligned: every face sits at the same place and size, so the set is easy (every run here
finds every val mask). ``--recompose`` makes it look like photos people take: each portrait is scaled
(from a small face in a wide shot to a close-up that crops the head), placed at a random position on a
canvas of a random aspect and size (320-2048 px), over a blurred backdrop cut from another photo; the label
goes through the same warp, and the polygon is taken after it. Seeded, so the same set every time::

    python bench/maskedface_via.py --source /tmp/mfs --out /work/data/maskedface_wild --recompose
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from skimage import measure

MASK_LABEL = 2
GROUPS = ("CWM", "IWM")  # correctly / incorrectly worn


def mask_polygon(label, tolerance: float = 1.5, name: str = "") -> tuple[list[int], list[int]]:
    """x and y lists of the largest outer contour of the mask label (pixel coordinates); ``label`` is the
    label PNG's path or its array."""
    if not isinstance(label, np.ndarray):
        name, label = str(label), np.asarray(Image.open(label))
    mask = np.pad(label == MASK_LABEL, 1)
    contours = measure.find_contours(mask.astype(np.uint8), 0.5)
    if not contours:
        raise ValueError(f"{name}: no mask pixels (label {MASK_LABEL})")
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


ASPECTS = ((4, 3), (3, 4), (16, 9), (9, 16), (1, 1))


def recompose(photo: np.ndarray, label: np.ndarray, backdrop: np.ndarray, rng: np.random.Generator):
    """(image, label) of ``photo`` re-shot: a canvas of a random aspect, longer side 320-2048 px, the
    portrait at 0.3x to 2.2x the canvas' shorter side (a close-up above 1x) at a random position that
    keeps the mask's box inside when it can, over ``backdrop`` resized and blurred."""
    aw, ah = ASPECTS[rng.integers(len(ASPECTS))]
    longer = int(np.exp(rng.uniform(np.log(320), np.log(2048))))
    width, height = (longer, longer * ah // aw) if aw >= ah else (longer * aw // ah, longer)
    side = photo.shape[0]
    scale = np.exp(rng.uniform(np.log(0.3), np.log(2.2))) * min(width, height) / side
    ys, xs = np.nonzero(label == MASK_LABEL)
    box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]) * scale

    def offset(lo_px, hi_px, canvas, portrait):
        if portrait <= canvas:  # the whole portrait fits: anywhere inside
            return rng.uniform(0, canvas - portrait)
        lo, hi = canvas - hi_px, -lo_px  # offsets that keep the mask's box inside
        return rng.uniform(lo, hi) if lo <= hi else (canvas - lo_px - hi_px) / 2

    tx = offset(box[0], box[2], width, side * scale)
    ty = offset(box[1], box[3], height, side * scale)
    warp = np.float32([[scale, 0, tx], [0, scale, ty]])
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    image = cv2.warpAffine(photo, warp, (width, height), flags=interp)
    inside = cv2.warpAffine(np.ones(photo.shape[:2], np.uint8), warp, (width, height), flags=cv2.INTER_NEAREST)
    back = cv2.resize(backdrop[: backdrop.shape[0] // 4], (width, height), interpolation=cv2.INTER_LINEAR)
    back = cv2.GaussianBlur(back, (0, 0), sigmaX=max(width, height) / 60)
    image = np.where(inside[..., None] > 0, image, back)
    out_label = cv2.warpAffine(label, warp, (width, height), flags=cv2.INTER_NEAREST)
    return image, out_label


def write_split(images: list[Path], out: Path, recompose_seed: int | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    via = {}
    rng = np.random.default_rng(recompose_seed) if recompose_seed is not None else None
    for i, image in enumerate(images):
        label_png = image.parent.parent / "masks" / f"{image.stem}_gt.png"
        if rng is None:
            xs, ys = mask_polygon(label_png)
            shutil.copyfile(image, out / image.name)
        else:  # the backdrop: the top of another photo of the split (hair and background, no mask)
            photo, label = np.asarray(Image.open(image).convert("RGB")), np.asarray(Image.open(label_png))
            backdrop = np.asarray(Image.open(images[(i + 1) % len(images)]).convert("RGB"))
            shot, shot_label = recompose(photo, label, backdrop, rng)
            xs, ys = mask_polygon(shot_label, name=str(label_png))
            Image.fromarray(shot).save(out / image.name, quality=92)
        size = os.path.getsize(out / image.name)
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
    parser.add_argument(
        "--recompose", action="store_true", help="re-shoot each portrait at a random scale, position and canvas"
    )
    args = parser.parse_args(argv)
    if not (args.source / "training").is_dir() or not (args.source / "testing").is_dir():
        print(f"error: {args.source}: no training/ and testing/ folders (a MaskedFaceSegmentation-Dataset clone?)")
        return 2
    rng = random.Random(args.seed)
    seeds = (args.seed + 1, args.seed + 2) if args.recompose else (None, None)
    write_split(pick(args.source / "training", args.train, rng), args.out / "train", seeds[0])
    write_split(pick(args.source / "testing", args.val, rng), args.out / "val", seeds[1])
    print(f"{args.out}: {args.train} train / {args.val} val images, one mask polygon each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
