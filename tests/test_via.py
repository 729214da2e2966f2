"""read_via and ViaDataset on small generated VIA files."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mrcnn.data import ViaDataset, read_via
from mrcnn.data.shapes import RegionError, region_to_mask
from mrcnn.data.via import ViaFormatError, ViaRegion, region_class_name, summarize
from mrcnn.data.via_dataset import UnknownClassError

SQUARE = {"name": "polygon", "all_points_x": [2, 6, 6, 2], "all_points_y": [2, 2, 6, 6]}
RECT = {"name": "rect", "x": 10, "y": 4, "width": 5, "height": 3}


def region(shape: dict, **attrs) -> dict:
    return {"shape_attributes": shape, "region_attributes": attrs}


def via2_export(images: dict[str, list[dict]]) -> dict:
    return {
        f"{name}123": {"filename": name, "size": 123, "regions": regions, "file_attributes": {}}
        for name, regions in images.items()
    }


def via1_export(images: dict[str, list[dict]]) -> dict:
    data = via2_export(images)
    for entry in data.values():
        entry["regions"] = {str(i): r for i, r in enumerate(entry["regions"])}
        entry.update(fileref="", base64_img_data="")
    return data


def write(tmp_path: Path, data: dict, name: str = "via.json", size=(20, 30)) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    entries = data.get("_via_img_metadata", data)
    for entry in entries.values():
        image = tmp_path / entry["filename"]
        if not image.exists():
            Image.new("RGB", (size[1], size[0]), (50, 60, 70)).save(image)
    return path


def load(path: Path, **kwargs) -> ViaDataset:
    dataset = ViaDataset()
    dataset.load_via(path, verbose=False, **kwargs)
    dataset.prepare()
    return dataset


# -- read_via ----------------------------------------------------------------


def test_via1_dict_regions(tmp_path: Path) -> None:
    path = write(tmp_path, via1_export({"a.jpg": [region(SQUARE, name="cat"), region(RECT, name="dog")]}))
    via = read_via(path)
    assert via.version == "1.x"
    (image,) = via.images
    assert image.filename == "a.jpg" and image.size == 123 and image.key == "a.jpg123"
    assert [r.shape for r in image.regions] == ["polygon", "rect"]
    assert [r.index for r in image.regions] == [0, 1]
    assert via.attribute_keys == {"name"}


def test_via2_list_regions(tmp_path: Path) -> None:
    path = write(tmp_path, via2_export({"a.jpg": [region(SQUARE, name="cat")], "b.jpg": []}))
    via = read_via(path)
    assert via.version == "2.x"
    assert [len(im.regions) for im in via.images] == [1, 0]
    assert "1 without regions" in summarize(via)
    assert "cat 1" in summarize(via)


def test_via2_project_file(tmp_path: Path) -> None:
    data = {
        "_via_settings": {"ui": {}},
        "_via_attributes": {"region": {"name": {}}},
        "_via_img_metadata": via2_export({"a.jpg": [region(SQUARE, name="cat")]}),
        "_via_image_id_list": ["a.jpg123"],
    }
    via = read_via(write(tmp_path, data))
    assert via.version == "2.x"
    assert via.images[0].regions[0].region_attributes == {"name": "cat"}


def test_broken_json_names_file_line_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "a.jpg1": {\n    "filename": "a.jpg",,\n  }\n}')
    with pytest.raises(ViaFormatError) as info:
        read_via(path)
    message = str(info.value)
    assert "broken.json" in message and "line 3" in message and "column 25" in message


def test_via3_rejected_with_export_hint(tmp_path: Path) -> None:
    path = tmp_path / "v3.json"
    path.write_text(
        json.dumps({"project": {"pid": "x"}, "config": {}, "attribute": {}, "file": {}, "metadata": {}, "view": {}})
    )
    with pytest.raises(ViaFormatError) as info:
        read_via(path)
    message = str(info.value)
    assert "v3.json" in message and "VIA 3" in message
    assert "VIA 2.0.x" in message and "Export Annotations (as json)" in message


@pytest.mark.parametrize(
    "content,message",
    [
        ("[1, 2]", "top level is a list"),
        ('{"x": 1}', "not a VIA file"),
        ('{"images": [], "annotations": [], "categories": []}', "COCO"),
    ],
)
def test_not_via_is_named(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "other.json"
    path.write_text(content)
    with pytest.raises(ViaFormatError, match=message) as info:
        read_via(path)
    assert "other.json" in str(info.value)


def test_regions_without_shape_name_skipped_with_warning(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        via2_export(
            {"a.jpg": [region({}, name="cat"), region({"all_points_x": [1]}, name="cat"), region(SQUARE, name="cat")]}
        ),
    )
    with pytest.warns(UserWarning, match=r"a.jpg'?, region 0"):
        via = read_via(path)
    assert [r.index for r in via.images[0].regions] == [2]
    assert len(via.skipped) == 2


def test_non_ascii_names_and_mixed_attribute_values(tmp_path: Path) -> None:
    data = via2_export(
        {
            "ñandú 图像.jpg": [
                region(SQUARE, **{"物体": "瞳孔"}),
                region(RECT, **{"物体": {"口罩": True, "其他": False}}),
                region(SQUARE, **{"物体": 7}),
                region(RECT),
            ]
        }
    )
    via = read_via(write(tmp_path, data))
    image = via.images[0]
    assert image.filename == "ñandú 图像.jpg"
    names = [region_class_name(r, "物体") for r in image.regions]
    assert names == ["瞳孔", "口罩", "7", None]
    assert via.attribute_keys == {"物体"}


def test_region_class_name_rules() -> None:
    def make(attrs: dict) -> ViaRegion:
        return ViaRegion("rect", dict(RECT), attrs, 0)

    assert region_class_name(make({"name": "cat"}), None) == "cat"
    assert region_class_name(make({"name": "cat", "type": "x"}), None) is None
    assert region_class_name(make({"name": "cat", "type": "x"}), "type") == "x"
    assert region_class_name(make({"name": " "}), "name") is None
    assert region_class_name(make({"name": {"a": False}}), "name") is None
    assert region_class_name(make({"n": 2.5}), None) == "2.5"
    with pytest.raises(RegionError, match=r"\['a', 'b'\]") as info:
        region_class_name(make({"name": {"a": True, "b": True}}), "name", where="img x")
    assert "img x" in str(info.value)


def test_class_key_typo_lists_available_keys(tmp_path: Path) -> None:
    path = write(tmp_path, via2_export({"a.jpg": [region(SQUARE, Name="cat")]}))
    with pytest.raises(ViaFormatError, match=r"'name'.*\['Name'\]"):
        read_via(path, class_key="name")


# -- ViaDataset ----------------------------------------------------------------


def test_every_shape_loads_to_masks(tmp_path: Path) -> None:
    shapes = [
        SQUARE,
        RECT,
        {"name": "polyline", "all_points_x": [20, 25, 25], "all_points_y": [2, 2, 8]},
        {"name": "circle", "cx": 10, "cy": 14, "r": 3},
        {"name": "ellipse", "cx": 22, "cy": 14, "rx": 4, "ry": 2, "theta": 0.3},
    ]
    path = write(tmp_path, via2_export({"a.jpg": [region(s, name="x") for s in shapes]}))
    dataset = load(path)
    masks, class_ids = dataset.load_mask(0)
    assert masks.shape == (20, 30, 5) and masks.dtype == bool
    assert class_ids.dtype == np.int32 and class_ids.tolist() == [1] * 5
    assert masks[..., 0].sum() == 25 and masks[..., 1].sum() == 15
    assert all(masks[..., i].any() for i in range(5))


def test_load_mask_equals_each_region_rasterised_alone(tmp_path: Path) -> None:
    # load_mask writes every region's pixels straight into one HxWxN array; each channel must be
    # exactly region_to_mask of that region, for every shape, clipped at the borders, with the
    # region outside the image dropped (and its class id with it).
    shapes = [
        SQUARE,
        RECT,
        {"name": "rect", "x": -3, "y": 15, "width": 40, "height": 9},  # clipped
        {"name": "polygon", "all_points_x": [50, 60, 60], "all_points_y": [1, 1, 9]},  # outside
        {"name": "polyline", "all_points_x": [20, 31, 25], "all_points_y": [2, 2, 8]},
        {"name": "circle", "cx": 0, "cy": 0, "r": 4},
        {"name": "ellipse", "cx": 22, "cy": 14, "rx": 4, "ry": 2, "theta": 0.3},
        {"name": "point", "cx": 3, "cy": 3},
    ]
    names = ["a", "b", "a", "b", "a", "b", "a", "b"]
    path = write(tmp_path, via2_export({"a.jpg": [region(s, n=c) for s, c in zip(shapes, names)]}))
    with pytest.warns(UserWarning, match="point"):
        dataset = load(path, class_key="n")
    with pytest.warns(UserWarning, match="region 3.*outside"):
        masks, class_ids = dataset.load_mask(0)
    kept = [0, 1, 2, 4, 5, 6]
    expected = np.stack([region_to_mask(shapes[i], 20, 30) for i in kept], axis=-1)
    assert masks.dtype == bool and masks.shape == expected.shape == (20, 30, 6)
    np.testing.assert_array_equal(masks, expected)
    assert class_ids.tolist() == [dataset.class_names.index(names[i]) for i in kept]
    assert masks[..., 2].sum() == 30 * 5  # the clipped rect: rows 15..19, every column


def test_multi_class_discovered_sorted_and_normalised(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        via2_export(
            {
                "a.jpg": [
                    region(SQUARE, label="Surgical Mask"),
                    region(RECT, label="cloth"),
                    region(SQUARE, label="surgical-mask"),
                ]
            }
        ),
    )
    dataset = load(path)
    assert dataset.class_names == ["BG", "cloth", "surgical_mask"]
    assert dataset.load_mask(0)[1].tolist() == [2, 1, 2]
    assert "surgical_mask: 2" in dataset.summary()


def test_class_names_fix_order_and_aliases(tmp_path: Path) -> None:
    path = write(tmp_path, via2_export({"a.jpg": [region(SQUARE, label="Face-Mask"), region(RECT, label="no mask")]}))
    dataset = load(path, class_names=["no_mask", "surgical"], aliases={"face mask": "surgical"})
    assert dataset.class_names == ["BG", "no_mask", "surgical"]
    assert dataset.load_mask(0)[1].tolist() == [2, 1]


def test_unknown_class_error_names_region_and_known_classes(tmp_path: Path) -> None:
    path = write(tmp_path, via2_export({"a.jpg": [region(SQUARE, label="cat"), region(RECT, label="zebra")]}))
    with pytest.raises(UnknownClassError) as info:
        load(path, class_names=["cat", "dog"])
    message = str(info.value)
    assert "via.json" in message and "'a.jpg'" in message and "region 1" in message
    assert "zebra" in message and "['cat', 'dog']" in message


def test_unknown_class_skip_warns_and_keeps_image(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        via2_export(
            {
                "a.jpg": [region(SQUARE, label="cat"), region(RECT, label="zebra")],
                "b.jpg": [region(RECT, label="zebra")],
            }
        ),
    )
    with pytest.warns(UserWarning, match="unknown class"):
        dataset = load(path, class_names=["cat"], unknown="skip")
    assert len(dataset) == 2  # b.jpg becomes a negative for "cat"
    assert dataset.load_mask(0)[1].tolist() == [1]
    assert dataset.load_mask(1)[0].shape == (20, 30, 0)


def test_unlabelled_regions_error_suggests_single_class(tmp_path: Path) -> None:
    path = write(tmp_path, via2_export({"a.jpg": [region(SQUARE)]}))
    with pytest.raises(UnknownClassError, match="single_class"):
        load(path)


def test_single_class_ignores_attributes(tmp_path: Path) -> None:
    path = write(tmp_path, via2_export({"a.jpg": [region(SQUARE), region(RECT, a="x", b="y")]}))
    dataset = load(path, single_class="mask")
    assert dataset.class_names == ["BG", "mask"]
    assert dataset.load_mask(0)[1].tolist() == [1, 1]


def test_class_key_picks_among_several(tmp_path: Path) -> None:
    path = write(tmp_path, via2_export({"a.jpg": [region(SQUARE, name="x", kind="dog")]}))
    with pytest.raises(UnknownClassError, match="class_key"):
        load(path)
    assert load(path, class_key="kind").class_names == ["BG", "dog"]


def test_checkbox_attributes_map_to_classes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        via2_export(
            {"a.jpg": [region(SQUARE, name={"gun": True, "knife": False}), region(RECT, name={"knife": True})]}
        ),
    )
    dataset = load(path)
    assert dataset.class_names == ["BG", "gun", "knife"]
    assert dataset.load_mask(0)[1].tolist() == [1, 2]


def test_negatives_kept_or_dropped(tmp_path: Path) -> None:
    path = write(tmp_path, via1_export({"a.jpg": [region(SQUARE, name="cat")], "b.jpg": []}))
    dataset = load(path)
    assert len(dataset) == 2
    masks, ids = dataset.load_mask(1)
    assert masks.shape == (20, 30, 0) and ids.shape == (0,) and ids.dtype == np.int32
    assert len(load(path, keep_negatives=False)) == 1


def test_missing_images_listed_all_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, via2_export({f"im{i}.jpg": [region(SQUARE, name="c")] for i in range(8)}))
    for i in (1, 3, 4, 5, 6, 7):
        (tmp_path / f"im{i}.jpg").unlink()
    with pytest.raises(FileNotFoundError) as info:
        load(path)
    message = str(info.value)
    assert "6 of 8 images" in message and str(path) in message
    assert "im1.jpg" in message and "im6.jpg" in message and "1 more" in message
    assert "im0.jpg" not in message


def test_image_dir_argument(tmp_path: Path) -> None:
    images = tmp_path / "imgs"
    images.mkdir()
    data = via2_export({"a.jpg": [region(SQUARE, name="c")]})
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    Image.new("RGB", (12, 9)).save(images / "a.jpg")
    dataset = load(path, image_dir=images)
    assert dataset.image_info[0]["height"] == 9 and dataset.image_info[0]["width"] == 12


def test_polygon_outside_image_clipped_or_dropped(tmp_path: Path) -> None:
    partial = {"name": "polygon", "all_points_x": [25, 40, 40, 25], "all_points_y": [0, 0, 5, 5]}
    outside = {"name": "polygon", "all_points_x": [50, 60, 60], "all_points_y": [50, 50, 60]}
    path = write(tmp_path, via2_export({"a.jpg": [region(partial, n="c"), region(outside, n="c")]}))
    dataset = load(path)
    with pytest.warns(UserWarning, match="region 1.*outside"):
        masks, ids = dataset.load_mask(0)
    assert masks.shape == (20, 30, 1) and ids.tolist() == [1]
    assert masks[..., 0].sum() == 5 * 6  # cols 25..29, rows 0..5


def test_short_polygon_error_names_region(tmp_path: Path) -> None:
    bad = {"name": "polygon", "all_points_x": [1, 5], "all_points_y": [1, 5]}
    path = write(tmp_path, via2_export({"a.jpg": [region(SQUARE, n="c"), region(bad, n="c")]}))
    with pytest.raises(RegionError) as info:
        load(path)
    message = str(info.value)
    assert "via.json" in message and "'a.jpg'" in message and "region 1" in message
    assert "at least 3" in message


def test_points_skipped_with_warning(tmp_path: Path) -> None:
    point = {"name": "point", "cx": 3, "cy": 4}
    path = write(
        tmp_path, via2_export({"a.jpg": [region(SQUARE, n="c"), region(point, n="c")], "b.jpg": [region(point, n="c")]})
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = load(path)
    messages = " | ".join(str(w.message) for w in caught)
    assert "skipped 2 region(s): point" in messages
    assert "dropped 1 image" in messages  # b.jpg only had a point
    assert len(dataset) == 1
    assert dataset.load_mask(0)[1].tolist() == [1]


def test_verbose_prints_summary(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write(tmp_path, via2_export({"a.jpg": [region(SQUARE, n="cat"), region(RECT, n="dog")], "b.jpg": []}))
    ViaDataset().load_via(path)
    out = capsys.readouterr().out
    assert "2 images (1 negatives), 2 regions" in out
    assert "cat: 1" in out and "dog: 1" in out


def test_image_size_comes_from_file_not_json(tmp_path: Path) -> None:
    path = write(tmp_path, via2_export({"a.jpg": [region(SQUARE, n="c")]}), size=(11, 13))
    dataset = load(path)
    assert dataset.load_mask(0)[0].shape == (11, 13, 1)
    assert dataset.load_image(0).shape == (11, 13, 3)
