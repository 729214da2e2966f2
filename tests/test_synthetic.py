"""Tests for the synthetic face-mask dataset generator (facemask/synthetic.py)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from skimage.draw import polygon as sk_polygon

from facemask.synthetic import (
    ANNOTATION_FILE,
    MASK_TYPES,
    draw_sample,
    make_dataset,
    render_item,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = dict(n_train=12, n_val=4, image_size=(192, 256), seed=3)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "ds"
    summary = make_dataset(out, **SMALL)
    return out, summary


def _load(out, split):
    with open(os.path.join(out, split, ANNOTATION_FILE), "rb") as fh:
        raw = fh.read()
    return raw, json.loads(raw)


def _tree_bytes(out):
    files = {}
    for split in ("train", "val"):
        d = os.path.join(out, split)
        for name in sorted(os.listdir(d)):
            with open(os.path.join(d, name), "rb") as fh:
                files[f"{split}/{name}"] = fh.read()
    return files


def test_same_seed_identical_different_seed_differs(small_set, tmp_path):
    out, _ = small_set
    again = make_dataset(tmp_path / "again", **SMALL)
    assert again["cached"] is False
    a, b = _tree_bytes(out), _tree_bytes(tmp_path / "again")
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == b[k], k
    other = make_dataset(tmp_path / "other", **{**SMALL, "seed": 4, "n_train": 3, "n_val": 1})
    assert other["images"] == 4
    c = _tree_bytes(tmp_path / "other")
    assert c["train/" + ANNOTATION_FILE] != a["train/" + ANNOTATION_FILE]
    for name in ("train/synth_train_00000.jpg", "train/synth_train_00001.jpg", "val/synth_val_00000.jpg"):
        assert c[name] != a[name]


def test_images_independent_of_dataset_size(small_set):
    out, _ = small_set
    _, data = _load(out, "train")
    first = next(iter(data.values()))
    fname, img, masks = render_item(SMALL["seed"], "train", 0, image_size=SMALL["image_size"])
    assert fname == first["filename"]
    assert len(masks) == len(first["regions"])


def test_via_structure_and_counts(small_set):
    out, summary = small_set
    total_regions = 0
    negatives = 0
    per_type = {t: 0 for t in MASK_TYPES}
    for split, n in (("train", SMALL["n_train"]), ("val", SMALL["n_val"])):
        _, data = _load(out, split)
        assert len(data) == n
        jpgs = [f for f in os.listdir(os.path.join(out, split)) if f.endswith(".jpg")]
        assert len(jpgs) == n
        for key, item in data.items():
            path = os.path.join(out, split, item["filename"])
            size = os.path.getsize(path)
            assert key == item["filename"] + str(size)
            assert item["size"] == size
            assert item["file_attributes"] == {}
            with Image.open(path) as im:
                assert im.mode == "RGB" and im.format == "JPEG"
                w, h = im.size
            negatives += int(len(item["regions"]) == 0)
            for reg in item["regions"]:
                sa = reg["shape_attributes"]
                assert sa["name"] == "polygon"
                xs, ys = sa["all_points_x"], sa["all_points_y"]
                assert len(xs) == len(ys) and 12 <= len(xs) <= 40
                assert all(isinstance(v, int) for v in xs + ys)
                assert min(xs) >= 0 and max(xs) <= w - 1
                assert min(ys) >= 0 and max(ys) <= h - 1
                assert reg["region_attributes"]["mask_type"] in MASK_TYPES
                per_type[reg["region_attributes"]["mask_type"]] += 1
                total_regions += 1
        s = summary["splits"][split]
        assert s["images"] == n
    assert summary["images"] == SMALL["n_train"] + SMALL["n_val"]
    assert summary["masks"] == total_regions == sum(summary["mask_types"].values())
    assert summary["mask_types"] == per_type
    assert summary["negative_images"] == negatives
    assert negatives >= 1  # ~15% of images have no masked face
    assert summary["unmasked_faces"] >= 1  # unannotated faces exist as negatives
    assert sum(summary["splits"][s]["masks"] for s in ("train", "val")) == summary["masks"]


def test_polygons_reproduce_drawn_masks(small_set):
    out, _ = small_set
    checked = 0
    for split in ("train", "val"):
        _, data = _load(out, split)
        for index, item in enumerate(data.values()):
            fname, img, masks = render_item(SMALL["seed"], split, index, image_size=SMALL["image_size"])
            assert fname == item["filename"]
            h, w = img.shape[:2]
            with Image.open(os.path.join(out, split, fname)) as im:
                assert im.size == (w, h)
            assert len(masks) == len(item["regions"])
            for (mtype, drawn, _, _), reg in zip(masks, item["regions"]):
                assert reg["region_attributes"]["mask_type"] == mtype
                sa = reg["shape_attributes"]
                raster = np.zeros((h, w), bool)
                rr, cc = sk_polygon(sa["all_points_y"], sa["all_points_x"], shape=(h, w))
                raster[rr, cc] = True
                iou = (raster & drawn).sum() / max(1, (raster | drawn).sum())
                assert iou >= 0.9, (fname, mtype, iou)
                checked += 1
    assert checked >= 8


def test_draw_sample_contract():
    """draw_sample returns an RGB uint8 image and full-size bool masks with polygons."""
    rng = np.random.default_rng(11)
    img, masks = draw_sample(rng, 256, 320, negative=False)
    assert img.dtype == np.uint8 and img.shape == (256, 320, 3)
    assert masks
    for _mtype, mask, xs, _ys in masks:
        assert mask.dtype == bool and mask.shape == (256, 320) and mask.sum() >= 20
        assert len(xs) >= 3


def test_negative_samples_have_no_masks():
    for s in range(4):
        info = {}
        img, masks = draw_sample(np.random.default_rng(s), 160, 200, negative=True, info=info)
        assert masks == []
        assert info["faces"] >= 1 and info["unmasked_faces"] == info["faces"]


def test_face_sizes_span_small_to_large():
    heights = []
    types = set()
    for s in range(60):
        _, masks = draw_sample(np.random.default_rng([99, s]), 192, 256, negative=False)
        for mtype, _, _, ys in masks:
            heights.append(max(ys) - min(ys) + 1)
            types.add(mtype)
    assert types == set(MASK_TYPES)
    assert max(heights) >= 4 * min(heights), (min(heights), max(heights))


def test_cached_and_overwrite(tmp_path):
    out = tmp_path / "ds"
    s1 = make_dataset(out, n_train=2, n_val=1, image_size=(128, 160), seed=1)
    assert s1["cached"] is False
    s2 = make_dataset(out, n_train=5, n_val=5, image_size=(128, 160), seed=1)
    assert s2["cached"] is True and s2["images"] == 3 and s2["masks"] == s1["masks"]
    s3 = make_dataset(out, n_train=1, n_val=1, image_size=(128, 160), seed=1, overwrite=True)
    assert s3["cached"] is False and s3["images"] == 2
    assert len([f for f in os.listdir(out / "train") if f.endswith(".jpg")]) == 1


def test_cli_as_script(tmp_path):
    out = tmp_path / "cli"
    cmd = [
        sys.executable,
        "-m",
        "facemask.synthetic",
        "--out",
        str(out),
        "--train",
        "2",
        "--val",
        "1",
        "--size",
        "128x160",
        "--seed",
        "5",
    ]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "total: 3 images" in res.stdout
    assert (out / "train" / ANNOTATION_FILE).exists() and (out / "val" / ANNOTATION_FILE).exists()


def test_committed_demo_annotations_are_reproduced(tmp_path):
    """via_annotations/ holds the demo val json; the generator must still write it byte for byte."""
    from pathlib import Path

    committed = Path(__file__).resolve().parents[1] / "via_annotations" / "synthetic_val_via_region_data.json"
    make_dataset(tmp_path, n_train=0, n_val=50, seed=0, image_size=(256, 320))
    assert (tmp_path / "val" / "via_region_data.json").read_bytes() == committed.read_bytes()
