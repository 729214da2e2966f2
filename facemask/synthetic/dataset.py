"""The dataset on disk: image ``index`` of a split drawn from its own seed (:func:`render_item`), JPEGs and
the VIA 2.x ``via_region_data.json`` written atomically (:func:`make_dataset`), counts read back."""

from __future__ import annotations

import io
import json
import math
import os
import time

import numpy as np
from PIL import Image

from mrcnn.runs import write_text

from .masks import MASK_TYPES
from .scene import draw_sample

JPEG_QUALITY = 92


ANNOTATION_FILE = "via_region_data.json"


SPLITS = ("train", "val")


_SPLIT_IDS = {"train": 0, "val": 1}


def image_sizes(image_size):
    """The (h, w) sizes images are drawn from around ``image_size``.

    Three scales (0.85, 1, 1.15) of the given size in both orientations,
    rounded to multiples of 8.
    """
    h, w = int(image_size[0]), int(image_size[1])
    out = []
    for s in (0.85, 1.0, 1.15):
        hh, ww = max(64, int(round(h * s / 8.0)) * 8), max(64, int(round(w * s / 8.0)) * 8)
        for size in ((hh, ww), (ww, hh)):
            if size not in out:
                out.append(size)
    return out


def is_negative_index(seed, split, index, negative_fraction):
    """Whether image ``index`` of ``split`` is a no-mask image.

    Low-discrepancy selection: every prefix of a split holds
    ``negative_fraction`` negatives (+-1) and the choice for an image does not
    depend on how many images are generated.
    """
    f = float(negative_fraction)
    if f <= 0:
        return False
    if f >= 1:
        return True
    phase = np.random.default_rng([int(seed), _SPLIT_IDS[split], 104729]).random()
    return math.floor((index + 1) * f + phase) > math.floor(index * f + phase)


def render_item(seed, split, index, *, image_size=(384, 512), max_faces=4, negative_fraction=0.15, info=None):
    """Render image ``index`` of ``split`` exactly as :func:`make_dataset` does.

    Returns ``(filename, image, masks)`` with ``masks`` as in :func:`draw_sample`.
    """
    rng = np.random.default_rng([int(seed), _SPLIT_IDS[split], int(index)])
    sizes = image_sizes(image_size)
    weights = np.array([2.0 if s[1] >= s[0] else 1.0 for s in sizes])  # landscape is more common
    h, w = sizes[int(rng.choice(len(sizes), p=weights / weights.sum()))]
    neg = is_negative_index(seed, split, index, negative_fraction)
    img, masks = draw_sample(rng, h, w, max_faces=max_faces, negative=neg, info=info)
    return f"synth_{split}_{index:05d}.jpg", img, masks


def _encode_jpeg(img):
    buf = io.BytesIO()
    Image.fromarray(img, "RGB").save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=False)
    return buf.getvalue()


def summarize_dataset(out_dir):
    """Counts per split and per mask type, read back from the VIA JSON files."""
    out = {
        "out_dir": str(out_dir),
        "splits": {},
        "mask_types": {t: 0 for t in MASK_TYPES},
        "images": 0,
        "masks": 0,
        "negative_images": 0,
    }
    for split in SPLITS:
        path = os.path.join(out_dir, split, ANNOTATION_FILE)
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        s = {"images": 0, "masks": 0, "negative_images": 0, "mask_types": {t: 0 for t in MASK_TYPES}}
        for item in data.values():
            regions = item.get("regions") or []
            if isinstance(regions, dict):
                regions = list(regions.values())
            s["images"] += 1
            s["masks"] += len(regions)
            s["negative_images"] += int(len(regions) == 0)
            for reg in regions:
                t = reg.get("region_attributes", {}).get("mask_type")
                s["mask_types"][t] = s["mask_types"].get(t, 0) + 1
        out["splits"][split] = s
        for k in ("images", "masks", "negative_images"):
            out[k] += s[k]
        for t, c in s["mask_types"].items():
            out["mask_types"][t] = out["mask_types"].get(t, 0) + c
    return out


def make_dataset(
    out_dir,
    *,
    n_train=200,
    n_val=50,
    image_size=(384, 512),
    seed=0,
    max_faces=4,
    negative_fraction=0.15,
    overwrite=False,
):
    """Write a synthetic face-mask dataset in the Matterport balloon layout.

    ``out_dir/{train,val}/*.jpg`` plus ``via_region_data.json`` (VIA 2.x export
    keyed by ``filename + str(filesize)``; one polygon region per visible mask
    with ``region_attributes.mask_type`` in :data:`MASK_TYPES`).

    If ``out_dir/train/via_region_data.json`` already exists and ``overwrite``
    is false, nothing is drawn and the summary of the existing data is
    returned (``cached=True``).  Otherwise the JPEGs are written first and
    each JSON last via an atomic rename, so a present JSON means a complete
    split.

    Returns a summary dict: ``images``, ``masks``, ``negative_images``,
    ``mask_types`` (totals), ``splits`` (the same per split), ``seconds``,
    ``cached`` and, when freshly generated, ``faces`` / ``unmasked_faces``.
    """
    out_dir = os.fspath(out_dir)
    marker = os.path.join(out_dir, "train", ANNOTATION_FILE)
    t0 = time.perf_counter()
    if os.path.exists(marker) and not overwrite:
        try:
            summary = summarize_dataset(out_dir)
            summary.update(cached=True, seconds=round(time.perf_counter() - t0, 3))
            return summary
        except (ValueError, OSError, AttributeError):
            pass  # unreadable -> regenerate

    faces = unmasked = 0
    for split, n in (("train", int(n_train)), ("val", int(n_val))):
        d = os.path.join(out_dir, split)
        os.makedirs(d, exist_ok=True)
        ann_path = os.path.join(d, ANNOTATION_FILE)
        if os.path.exists(ann_path):
            os.remove(ann_path)
        for name in os.listdir(d):  # stale images of an earlier run
            if name.startswith(f"synth_{split}_") and name.endswith(".jpg"):
                os.remove(os.path.join(d, name))
        via = {}
        for i in range(n):
            info = {}
            fname, img, masks = render_item(
                seed,
                split,
                i,
                image_size=image_size,
                max_faces=max_faces,
                negative_fraction=negative_fraction,
                info=info,
            )
            faces += info["faces"]
            unmasked += info["unmasked_faces"]
            data = _encode_jpeg(img)
            with open(os.path.join(d, fname), "wb") as fh:
                fh.write(data)
            regions = [
                {
                    "shape_attributes": {"name": "polygon", "all_points_x": xs, "all_points_y": ys},
                    "region_attributes": {"mask_type": mtype},
                }
                for mtype, _m, xs, ys in masks
            ]
            via[fname + str(len(data))] = {
                "filename": fname,
                "size": len(data),
                "regions": regions,
                "file_attributes": {},
            }
        write_text(ann_path, json.dumps(via))

    summary = summarize_dataset(out_dir)
    summary.update(
        cached=False, faces=faces, unmasked_faces=unmasked, seed=int(seed), seconds=round(time.perf_counter() - t0, 3)
    )
    return summary
