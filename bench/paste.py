#!/usr/bin/env python
"""Pasting detect()'s soft masks into the image: scikit-image's ``resize`` per mask (Matterport's
``unmold_mask``, ours until 80f1043) vs :func:`mrcnn.ops.masks.paste_masks` (two bilinear taps per axis).

Same masks and boxes for both, interleaved, ``--reps`` timed calls each after one untimed; the outputs
are asserted equal. Sigmoid-like random 28x28 masks in random boxes, for three image sizes: the CPU
profile's 256 px, the model-speed bench's 512 px, and a 12-megapixel phone photo (inference.py pastes
at the original size). Writes the "## Mask pasting in detect()" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from results import machine_facts, write_section  # noqa: E402

SECTION = "## Mask pasting in detect()"
CASES = (  # (image height, width), masks, box side range in pixels
    ("256x256 (CPU profile)", (256, 256), 100, (10, 120)),
    ("512x512 (model-speed bench)", (512, 512), 100, (20, 250)),
    ("3000x4000 (a phone photo)", (3000, 4000), 10, (300, 1200)),
)


def scikit_image_paste(masks, boxes, image_shape, threshold=0.5):
    """Matterport's unmold_mask per mask, stacked on the last axis (the code before 80f1043)."""
    from skimage.transform import resize

    full = np.zeros(tuple(image_shape[:2]) + (len(masks),), dtype=bool)
    for i, (mask, box) in enumerate(zip(masks, boxes)):
        y1, x1, y2, x2 = (int(v) for v in box)
        if y2 <= y1 or x2 <= x1:
            continue
        soft = resize(
            mask,
            (y2 - y1, x2 - x1),
            order=1,
            mode="constant",
            cval=0,
            clip=True,
            preserve_range=True,
            anti_aliasing=False,
        )
        ys, xs = slice(max(y1, 0), min(y2, image_shape[0])), slice(max(x1, 0), min(x2, image_shape[1]))
        full[ys, xs, i] = soft[ys.start - y1 : ys.stop - y1, xs.start - x1 : xs.stop - x1] >= threshold
    return full


def random_case(rng, image_shape, n, sides):
    masks = (1 / (1 + np.exp(-rng.normal(0, 3, (n, 28, 28))))).astype(np.float32)
    lo, hi = sides
    y1 = rng.integers(-lo // 4, image_shape[0] - lo, n)
    x1 = rng.integers(-lo // 4, image_shape[1] - lo, n)
    boxes = np.stack([y1, x1, y1 + rng.integers(lo, hi, n), x1 + rng.integers(lo, hi, n)], axis=1)
    return masks, boxes


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    from mrcnn.ops.masks import paste_masks

    facts = machine_facts()
    rng = np.random.default_rng(0)
    methods = {"scikit-image per mask": scikit_image_paste, "two taps (paste_masks)": paste_masks}
    rows = []
    for label, shape, n, sides in CASES:
        masks, boxes = random_case(rng, shape, n, sides)
        outs = {name: fn(masks, boxes, shape) for name, fn in methods.items()}  # untimed, and checked
        a, b = outs.values()
        assert np.array_equal(a, b), f"{label}: the two pastes differ"
        times = {name: [] for name in methods}
        for _ in range(args.reps):
            for name, fn in methods.items():
                t0 = time.perf_counter()
                fn(masks, boxes, shape)
                times[name].append(1000 * (time.perf_counter() - t0))
        cells = [f"{statistics.median(t):.0f} ({min(t):.0f}-{max(t):.0f})" for t in times.values()]
        old, new = (statistics.median(t) for t in times.values())
        rows.append(f"| {label} | {n} | {sides[0]}-{sides[1]} px | {cells[0]} | {cells[1]} | **{old / new:.1f}x** |")
        print(rows[-1], flush=True)
    text = "\n".join(
        [
            SECTION,
            "",
            f"`python bench/paste.py --reps {args.reps}` ({_dt.date.today()}): detect()'s last step, each detection's "
            "28x28 soft mask pasted into its box at the original image size. Matterport (and ours until 80f1043) "
            "resized each mask with scikit-image; `mrcnn.ops.masks.paste_masks` reproduces that sampling with two "
            "bilinear taps per axis over the box's in-image pixels (`test_paste_masks_equals_scikit_image_resize` "
            "pins it pixel for pixel; here the outputs are asserted equal too). Same random masks and boxes for both, "
            f"interleaved, one untimed call then {args.reps} timed each; ms, median (min-max), one thread.",
            "",
            f"Machine: {facts['nproc']} CPU cores ({facts['cpu']}), numpy {facts.get('numpy', '?')}; load average "
            f"(1/5/15 min) {facts['load']} at start.",
            "",
            "| image | masks | box sides | scikit-image per mask | two taps (paste_masks) | speed-up |",
            "|---|---:|---|---:|---:|---:|",
            *rows,
            "",
        ]
    )
    print("\n" + text)
    if not args.no_write:
        write_section(SECTION, text)
        print("wrote bench/RESULTS.md")


if __name__ == "__main__":
    main()
