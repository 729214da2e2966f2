"""Base Dataset bookkeeping (Matterport semantics) and a ViaDataset round trip."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mrcnn.data import Dataset, ViaDataset
from mrcnn.data.image_io import ImageReadError


def two_source_dataset(tmp_path: Path) -> Dataset:
    dataset = Dataset()
    dataset.add_class("coco", 1, "person")
    dataset.add_class("coco", 18, "dog,puppy")
    dataset.add_class("via", 1, "mask")
    dataset.add_class("via", 1, "duplicate ignored")
    Image.new("RGB", (6, 4), (1, 2, 3)).save(tmp_path / "a.png")
    dataset.add_image("via", "a.png", tmp_path / "a.png", note="x")
    dataset.add_image("coco", 42, tmp_path / "missing.png")
    dataset.prepare()
    return dataset


def test_prepare_builds_matterport_maps(tmp_path: Path) -> None:
    dataset = two_source_dataset(tmp_path)
    assert dataset.num_classes == 4 and dataset.class_ids.tolist() == [0, 1, 2, 3]
    assert dataset.class_names == ["BG", "person", "dog", "mask"]
    assert dataset.num_images == 2 and len(dataset) == 2
    assert dataset.image_ids.tolist() == [0, 1]
    assert dataset.class_from_source_map == {".0": 0, "coco.1": 1, "coco.18": 2, "via.1": 3}
    assert dataset.image_from_source_map == {"via.a.png": 0, "coco.42": 1}
    assert dataset.sources == ["", "coco", "via"]
    assert dataset.source_class_ids == {"": [0], "coco": [0, 1, 2], "via": [0, 3]}
    assert dataset.map_source_class_id("coco.18") == 2
    assert dataset.get_source_class_id(2, "coco") == 18
    assert dataset.image_info[0]["note"] == "x"
    assert dataset.source_image_link(1).endswith("missing.png")


def test_lookup_errors(tmp_path: Path) -> None:
    dataset = two_source_dataset(tmp_path)
    with pytest.raises(KeyError, match="coco.99"):
        dataset.map_source_class_id("coco.99")
    with pytest.raises(ValueError, match="belongs to source 'coco'"):
        dataset.get_source_class_id(2, "via")
    with pytest.raises(ValueError, match="dot"):
        dataset.add_class("a.b", 1, "x")


def test_load_image_and_errors_name_image(tmp_path: Path) -> None:
    dataset = two_source_dataset(tmp_path)
    image = dataset.load_image(0)
    assert image.shape == (4, 6, 3) and image.dtype == np.uint8
    assert image[0, 0].tolist() == [1, 2, 3]
    with pytest.raises(FileNotFoundError, match=r"dataset image id 1 .*missing.png"):
        dataset.load_image(1)
    (tmp_path / "missing.png").write_text("not an image")
    with pytest.raises(ImageReadError, match=r"dataset image id 1 .*missing.png"):
        dataset.load_image(1)


def test_base_load_mask_is_empty_and_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dataset = two_source_dataset(tmp_path)
    with caplog.at_level(logging.WARNING):
        masks, ids = dataset.load_mask(0)
    assert masks.shape == (4, 6, 0) and masks.dtype == bool
    assert ids.shape == (0,) and ids.dtype == np.int32
    assert "override load_mask" in caplog.text
    assert "instances per class: unknown" in dataset.summary()


def test_via_round_trip_masks_match_drawn_pixels(tmp_path: Path) -> None:
    pixels = np.zeros((24, 32, 3), dtype=np.uint8)
    pixels[4:9, 3:13] = (255, 0, 0)  # rect x=3, y=4, w=10, h=5
    pixels[12:20, 20:28] = (0, 0, 255)  # rect x=20, y=12, w=8, h=8
    Image.fromarray(pixels).save(tmp_path / "scene.png")
    regions = [
        {
            "shape_attributes": {"name": "rect", "x": 3, "y": 4, "width": 10, "height": 5},
            "region_attributes": {"kind": "red"},
        },
        {
            "shape_attributes": {"name": "polygon", "all_points_x": [20, 27, 27, 20], "all_points_y": [12, 12, 19, 19]},
            "region_attributes": {"kind": "blue"},
        },
    ]
    data = {"scene.png999": {"filename": "scene.png", "size": 999, "regions": regions, "file_attributes": {}}}
    (tmp_path / "via.json").write_text(json.dumps(data))
    dataset = ViaDataset()
    dataset.add_class("other", 5, "unrelated")
    dataset.load_via(tmp_path / "via.json", source="shapes", verbose=False)
    dataset.prepare()
    assert dataset.class_names == ["BG", "unrelated", "blue", "red"]
    assert dataset.map_source_class_id("shapes.2") == 3
    image = dataset.load_image(0)
    masks, ids = dataset.load_mask(0)
    assert ids.tolist() == [3, 2]
    for index, colour in ((0, [255, 0, 0]), (1, [0, 0, 255])):
        drawn = np.all(image == colour, axis=-1)
        np.testing.assert_array_equal(masks[..., index], drawn)
    assert [r["class_name"] for r in dataset.image_info[0]["regions"]] == ["red", "blue"]
    summary = dataset.summary()
    assert "1 images" in summary and "2 instances" in summary
    assert "red: 1" in summary and "unrelated: 0" in summary
    assert "scene.png" in dataset.image_reference(0)


def test_two_via_files_share_class_ids(tmp_path: Path) -> None:
    def write(name: str, label: str) -> Path:
        Image.new("RGB", (10, 10)).save(tmp_path / f"{name}.png")
        data = {
            name: {
                "filename": f"{name}.png",
                "size": 1,
                "file_attributes": {},
                "regions": [
                    {
                        "shape_attributes": {"name": "rect", "x": 1, "y": 1, "width": 3, "height": 3},
                        "region_attributes": {"c": label},
                    }
                ],
            }
        }
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(data))
        return path

    dataset = ViaDataset()
    dataset.load_via(write("one", "dog"), verbose=False)
    dataset.load_via(write("two", "cat"), verbose=False)
    dataset.load_via(write("three", "dog"), verbose=False)
    dataset.prepare()
    assert dataset.class_names == ["BG", "dog", "cat"]
    assert [dataset.load_mask(i)[1].tolist() for i in range(3)] == [[1], [2], [1]]
    with pytest.raises(ValueError, match="different class list"):
        dataset.load_via(tmp_path / "one.json", class_names=["cat", "dog"], verbose=False)
