"""CocoDataset on a tiny generated COCO file."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from mrcnn.data import CocoDataset
from mrcnn.data.coco import CocoFormatError

H, W = 10, 12


def _rle_mask() -> np.ndarray:
    mask = np.zeros((H, W), dtype=np.uint8)
    mask[7:9, 8:11] = 1  # 2 x 3 block
    return mask


def coco_json(tmp_path: Path) -> Path:
    compressed = mask_utils.encode(np.asfortranarray(_rle_mask()))
    compressed["counts"] = compressed["counts"].decode("ascii")
    data = {
        "images": [
            {"id": 1, "file_name": "a.png", "height": H, "width": W},
            {"id": 2, "file_name": "b.png", "height": H, "width": W},
        ],
        "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}],
        "annotations": [
            {
                "id": 10,
                "image_id": 1,
                "category_id": 3,
                "iscrowd": 0,
                "segmentation": [[2, 2, 6, 2, 6, 6, 2, 6]],
                "bbox": [2, 2, 4, 4],
                "area": 16,
            },
            {
                "id": 11,
                "image_id": 1,
                "category_id": 7,
                "iscrowd": 0,
                "segmentation": compressed,
                "bbox": [8, 7, 3, 2],
                "area": 6,
            },
            # uncompressed RLE, column-major: 25 zeros then 5 ones = column 2, rows 5..9
            {
                "id": 12,
                "image_id": 1,
                "category_id": 7,
                "iscrowd": 0,
                "segmentation": {"size": [H, W], "counts": [25, 5, 90]},
                "bbox": [2, 5, 1, 5],
                "area": 5,
            },
            # crowd, uncompressed RLE: column 11 (indices 110..119), all rows
            {
                "id": 13,
                "image_id": 1,
                "category_id": 3,
                "iscrowd": 1,
                "segmentation": {"size": [H, W], "counts": [110, 10]},
                "bbox": [11, 0, 1, 10],
                "area": 10,
            },
        ],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    for name in ("a.png", "b.png"):
        Image.new("RGB", (W, H)).save(tmp_path / name)
    return path


def test_masks_for_polygon_and_rles(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    dataset = CocoDataset()
    dataset.load_coco(coco_json(tmp_path), tmp_path)
    dataset.prepare()
    assert capsys.readouterr().out == ""  # pycocotools progress is silenced
    assert dataset.class_names == ["BG", "cat", "dog"]
    assert dataset.map_source_class_id("coco.7") == 2
    masks, ids = dataset.load_mask(0)
    assert masks.shape == (H, W, 3) and masks.dtype == bool
    assert ids.dtype == np.int32 and ids.tolist() == [1, 2, 2]
    square = np.zeros((H, W), bool)
    square[2:6, 2:6] = True  # COCO polygons cover 4 x 4 pixels
    np.testing.assert_array_equal(masks[..., 0], square)
    np.testing.assert_array_equal(masks[..., 1], _rle_mask().astype(bool))
    column = np.zeros((H, W), bool)
    column[5:10, 2] = True
    np.testing.assert_array_equal(masks[..., 2], column)
    empty, none = dataset.load_mask(1)
    assert empty.shape == (H, W, 0) and none.shape == (0,)


def test_crowd_included_with_negative_id(tmp_path: Path) -> None:
    dataset = CocoDataset()
    dataset.load_coco(coco_json(tmp_path), tmp_path, include_crowd=True)
    dataset.prepare()
    masks, ids = dataset.load_mask(0)
    assert ids.tolist() == [1, 2, 2, -1]
    assert masks[..., 3].sum() == 10 and masks[:, 11, 3].all()


def test_class_names_select_and_order(tmp_path: Path) -> None:
    dataset = CocoDataset()
    dataset.load_coco(coco_json(tmp_path), tmp_path, class_names=["Dog"])
    dataset.prepare()
    assert dataset.class_names == ["BG", "dog"]
    assert dataset.load_mask(0)[1].tolist() == [1, 1]
    with pytest.raises(ValueError, match="zebra"):
        CocoDataset().load_coco(coco_json(tmp_path), tmp_path, class_names=["zebra"])


def test_negatives_can_be_dropped(tmp_path: Path) -> None:
    dataset = CocoDataset()
    dataset.load_coco(coco_json(tmp_path), tmp_path, keep_negatives=False)
    assert len(dataset) == 1


def test_missing_images_listed(tmp_path: Path) -> None:
    path = coco_json(tmp_path)
    (tmp_path / "b.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of 2 images .*instances.json") as info:
        CocoDataset().load_coco(path, tmp_path)
    assert "b.png" in str(info.value)


def test_broken_json_names_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"images": [}')
    with pytest.raises(CocoFormatError, match=r"bad.json.*line 1, column 13"):
        CocoDataset().load_coco(path, tmp_path)


def test_via_file_is_not_coco(tmp_path: Path) -> None:
    path = tmp_path / "via.json"
    path.write_text(json.dumps({"a.jpg1": {"filename": "a.jpg", "regions": []}}))
    with pytest.raises(CocoFormatError, match="load_via"):
        CocoDataset().load_coco(path, tmp_path)


def test_size_mismatch_reported(tmp_path: Path) -> None:
    path = coco_json(tmp_path)
    Image.new("RGB", (H, W)).save(tmp_path / "a.png")  # rotated on disk
    with pytest.raises(ValueError, match="a.png: file is 10x12, json says 12x10"):
        CocoDataset().load_coco(path, tmp_path)
