"""Mask R-CNN dataset from a COCO instances json (via pycocotools).

Source class ids are the COCO category ids. Crowd annotations
(``iscrowd=1``) are left out by default; with ``include_crowd=True`` they
are returned by ``load_mask`` with a negative class id, as in Matterport.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from .dataset import Dataset, missing_images_error
from .image_io import read_image_size
from .via_dataset import normalize_class_name

__all__ = ["CocoDataset", "CocoFormatError"]


class CocoFormatError(ValueError):
    """The json is not a readable COCO instances file."""


def _read_coco(json_path: Path) -> COCO:
    if not json_path.exists():
        raise FileNotFoundError(f"COCO json not found: {json_path}")
    try:
        data = json.loads(json_path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise CocoFormatError(f"{json_path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
    except UnicodeDecodeError as exc:
        raise CocoFormatError(f"{json_path}: not a UTF-8 text file ({exc})") from exc
    if not isinstance(data, dict) or "images" not in data or "categories" not in data:
        raise CocoFormatError(
            f"{json_path}: not a COCO instances file (needs 'images', "
            "'annotations' and 'categories'); for VIA files use "
            "ViaDataset.load_via"
        )
    data.setdefault("annotations", [])
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco.createIndex()
    return coco


class CocoDataset(Dataset):
    """Dataset of COCO-annotated images; see ``load_coco``."""

    def __init__(self, class_map: dict | None = None) -> None:
        super().__init__(class_map)
        self._cocos: dict[str, COCO] = {}

    def _select_categories(self, coco: COCO, json_path: Path, class_names: list[str] | None) -> list[int]:
        categories = sorted(coco.loadCats(coco.getCatIds()), key=lambda c: c["id"])
        if class_names is None:
            return [c["id"] for c in categories]
        by_name = {normalize_class_name(c["name"]): c["id"] for c in categories}
        wanted = [normalize_class_name(n) for n in class_names]
        unknown = [n for n in wanted if n not in by_name]
        if unknown:
            raise ValueError(f"{json_path}: classes {unknown} not among its categories {sorted(by_name)}")
        return [by_name[n] for n in wanted]

    def load_coco(
        self,
        json_path: str | os.PathLike,
        image_dir: str | os.PathLike,
        *,
        class_names: list[str] | None = None,
        include_crowd: bool = False,
        source: str = "coco",
        keep_negatives: bool = True,
    ) -> COCO:
        """Add the images and annotations of one COCO json; returns the COCO object."""
        json_path, image_dir = Path(json_path), Path(image_dir)
        coco = _read_coco(json_path)
        cat_ids = self._select_categories(coco, json_path, class_names)
        for cat_id in cat_ids:
            self.add_class(source, cat_id, coco.cats[cat_id]["name"])
        images = [coco.imgs[i] for i in sorted(coco.imgs)]
        paths = [image_dir / img["file_name"] for img in images]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise missing_images_error(missing, len(paths), json_path, image_dir)
        mismatched = []
        for img, path in zip(images, paths):
            anns = [
                a
                for a in coco.imgToAnns.get(img["id"], [])
                if a["category_id"] in cat_ids and (include_crowd or not a.get("iscrowd", 0))
            ]
            if not anns and not keep_negatives:
                continue
            size = read_image_size(path)
            if size != (img["height"], img["width"]):
                mismatched.append(f"{path}: file is {size[1]}x{size[0]}, json says {img['width']}x{img['height']}")
            self.add_image(
                source,
                image_id=img["id"],
                path=path,
                width=img["width"],
                height=img["height"],
                annotations=anns,
                json_path=str(json_path),
            )
        if mismatched:
            raise ValueError(
                f"{len(mismatched)} image(s) in {json_path} differ in size "
                "from the json (EXIF rotation?):\n  " + "\n  ".join(mismatched[:5])
            )
        self._cocos[source] = coco
        return coco

    def instance_class_ids(self, image_id: int) -> list[int] | None:
        info = self.image_info[image_id]
        if "annotations" not in info:
            return None
        return [self._signed_class_id(info["source"], a) for a in info["annotations"]]

    def _signed_class_id(self, source: str, ann: dict[str, Any]) -> int:
        class_id = self.class_index(source, ann["category_id"])
        return -class_id if ann.get("iscrowd", 0) else class_id

    def image_reference(self, image_id: int) -> str:
        info = self.image_info[image_id]
        return f"{info['path']} (COCO image id {info['id']})"

    def load_mask(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(bool HxWxN masks, int32 class ids; negative for crowd regions)."""
        info = self.image_info[image_id]
        coco = self._cocos.get(info["source"])
        if coco is None or "annotations" not in info:
            return super().load_mask(image_id)
        height, width = info["height"], info["width"]
        rles, class_ids = [], []
        for ann in info["annotations"]:
            rle = coco.annToRLE(ann)
            if tuple(rle["size"]) != (height, width):
                raise ValueError(
                    f"{info['path']}: annotation {ann.get('id')} mask is "
                    f"{tuple(rle['size'])}, image is {(height, width)}"
                )
            if mask_utils.area(rle) == 0:
                warnings.warn(f"{info['path']}: annotation {ann.get('id')} has an empty mask; dropped", stacklevel=2)
                continue
            rles.append(rle)
            class_ids.append(self._signed_class_id(info["source"], ann))
        if not rles:
            return np.zeros((height, width, 0), dtype=bool), np.zeros(0, dtype=np.int32)
        # One decode into one HxWxN array of 0/1 bytes, viewed as bool: no per-instance copies.
        with warnings.catch_warnings():  # numpy-2 notice inside pycocotools
            warnings.simplefilter("ignore", DeprecationWarning)
            masks = mask_utils.decode(rles)
        return masks.view(bool), np.asarray(class_ids, dtype=np.int32)
