"""Parse VGG Image Annotator (VIA) 1.x / 2.x json files into dataclasses.

Accepted layouts:

* VIA 1.x annotation export: ``{key: {filename, size, regions: {"0": ...}}}``.
* VIA 2.x annotation export: the same, with ``regions`` a list.
* VIA 2.x project: ``{"_via_settings", "_via_img_metadata", "_via_attributes"}``.

VIA 3 projects are rejected with instructions to export as VIA 2. Nothing is
printed; anomalies become ``warnings.warn`` (one per file) and are also
listed in ``ViaFile.skipped``.
"""

from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .shapes import RegionError

__all__ = [
    "ViaFormatError",
    "ClassKeyError",
    "ViaRegion",
    "ViaImage",
    "ViaFile",
    "read_via",
    "region_class_name",
    "summarize",
]

_VIA3_KEYS = {"config", "attribute", "file", "metadata", "view"}
_VIA3_HINT = (
    "this is a VIA 3 project, which is not supported (VIA 1.x/2.x only). "
    "Convert it: in VIA 3 use 'Export' -> 'Annotations (COCO format)' and load "
    "that with CocoDataset.load_coco, or open the images in VIA 2.0.x and use "
    "'Annotation' -> 'Export Annotations (as json)' to get a VIA 2 file."
)


class ViaFormatError(ValueError):
    """The file is not a readable VIA 1.x/2.x json."""


class ClassKeyError(ViaFormatError):
    """``class_key`` is not a region attribute of the file (``keys``: those it has)."""

    def __init__(self, path, class_key: str, keys):
        self.path, self.class_key, self.keys = str(path), class_key, sorted(keys)
        super().__init__(f"{path}: class_key {class_key!r} is not a region attribute here; keys present: {self.keys}")


@dataclass
class ViaRegion:
    """One annotated region; attributes are kept exactly as in the json."""

    shape: str
    shape_attributes: dict
    region_attributes: dict
    index: int


@dataclass
class ViaImage:
    """One image entry; ``key`` is its top-level key in the json."""

    filename: str
    size: int | None
    regions: list[ViaRegion]
    file_attributes: dict
    key: str


@dataclass
class ViaFile:
    """A parsed VIA file."""

    path: Path
    version: str
    images: list[ViaImage]
    attribute_keys: set[str] = field(default_factory=set)
    class_key: str | None = None
    skipped: list[str] = field(default_factory=list)

    @property
    def num_regions(self) -> int:
        return sum(len(image.regions) for image in self.images)


def _load_json(path: Path) -> Any:
    if not path.exists():
        raise FileNotFoundError(f"VIA json not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ViaFormatError(f"{path}: not a UTF-8 text file ({exc})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ViaFormatError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc


def _image_entries(data: Any, path: Path) -> tuple[dict, bool]:
    """Return (key -> image dict, is_project) or raise ViaFormatError."""
    if not isinstance(data, dict):
        raise ViaFormatError(f"{path}: not a VIA file (top level is a {type(data).__name__}, expected an object)")
    if "project" in data and _VIA3_KEYS & data.keys():
        raise ViaFormatError(f"{path}: {_VIA3_HINT}")
    if "_via_img_metadata" in data:
        meta = data["_via_img_metadata"]
        if not isinstance(meta, dict):
            raise ViaFormatError(f"{path}: '_via_img_metadata' is not an object")
        return meta, True
    if {"images", "annotations", "categories"} & data.keys():
        raise ViaFormatError(f"{path}: looks like a COCO json, not VIA; use CocoDataset.load_coco")
    for key, value in data.items():
        if not isinstance(value, dict) or "filename" not in value:
            raise ViaFormatError(
                f"{path}: not a VIA file: entry {key!r} is not an image record "
                "with 'filename' and 'regions' (expected a VIA 1.x/2.x annotation "
                "export or a VIA 2.x project with '_via_img_metadata')"
            )
    return data, False


def _parse_size(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _parse_regions(raw: Any, where: str, skipped: list[str]) -> tuple[list[ViaRegion], bool]:
    """Return (regions, regions_were_dict)."""
    if raw is None:
        return [], False
    if isinstance(raw, dict):
        items = list(raw.values())
    elif isinstance(raw, list):
        items = raw
    else:
        raise ViaFormatError(f"{where}: 'regions' is a {type(raw).__name__}, expected a list or object")
    regions = []
    for index, item in enumerate(items):
        at = f"{where}, region {index}"
        if not isinstance(item, dict):
            skipped.append(f"{at}: region is not an object")
            continue
        shape_attrs = item.get("shape_attributes")
        if not isinstance(shape_attrs, dict) or not shape_attrs.get("name"):
            skipped.append(f"{at}: shape_attributes has no shape 'name'")
            continue
        region_attrs = item.get("region_attributes") or {}
        if not isinstance(region_attrs, dict):
            region_attrs = {}
        regions.append(
            ViaRegion(
                shape=str(shape_attrs["name"]),
                shape_attributes=shape_attrs,
                region_attributes=region_attrs,
                index=index,
            )
        )
    return regions, isinstance(raw, dict)


def read_via(path: str | os.PathLike, *, class_key: str | None = None) -> ViaFile:
    """Read a VIA 1.x/2.x json (export or project) without printing anything."""
    path = Path(path)
    entries, is_project = _image_entries(_load_json(path), path)
    images: list[ViaImage] = []
    keys: set[str] = set()
    skipped: list[str] = []
    any_dict_regions = False
    for key, entry in entries.items():
        if not isinstance(entry, dict) or "filename" not in entry:
            raise ViaFormatError(f"{path}: image entry {key!r} has no 'filename'")
        filename = str(entry["filename"])
        where = f"{path.name}, image {filename!r}"
        regions, was_dict = _parse_regions(entry.get("regions"), where, skipped)
        any_dict_regions |= was_dict
        for region in regions:
            keys.update(region.region_attributes)
        file_attrs = entry.get("file_attributes")
        images.append(
            ViaImage(
                filename=filename,
                size=_parse_size(entry.get("size")),
                regions=regions,
                file_attributes=file_attrs if isinstance(file_attrs, dict) else {},
                key=str(key),
            )
        )
    if class_key is not None and keys and class_key not in keys:
        raise ClassKeyError(path, class_key, keys)
    if skipped:
        warnings.warn(
            f"{path}: skipped {len(skipped)} region(s): "
            + "; ".join(skipped[:5])
            + (" ..." if len(skipped) > 5 else ""),
            stacklevel=2,
        )
    version = "1.x" if any_dict_regions and not is_project else "2.x"
    return ViaFile(path=path, version=version, images=images, attribute_keys=keys, class_key=class_key, skipped=skipped)


def region_class_name(region: ViaRegion, class_key: str | None, *, where: str = "") -> str | None:
    """Extract a class name from a region's attributes, or None if unlabelled.

    str -> itself (blank -> None); int/float -> str(value); dict (checkbox)
    -> its single truthy key. With class_key None, the region's only
    attribute key is used (None if it has zero or several).
    """
    attrs = region.region_attributes
    if class_key is None:
        if len(attrs) != 1:
            return None
        class_key = next(iter(attrs))
    if class_key not in attrs:
        return None
    value = attrs[class_key]
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, dict):
        chosen = [str(k) for k, v in value.items() if v]
        if len(chosen) > 1:
            raise RegionError(
                f"{where + ': ' if where else ''}attribute {class_key!r} has several classes ticked: {chosen}"
            )
        return chosen[0] if chosen else None
    return None


def _auto_class_key(via_file: ViaFile) -> str | None:
    if via_file.class_key is not None:
        return via_file.class_key
    return next(iter(via_file.attribute_keys)) if len(via_file.attribute_keys) == 1 else None


def summarize(via_file: ViaFile) -> str:
    """A short multi-line description of a parsed VIA file."""
    shapes = Counter(r.shape for im in via_file.images for r in im.regions)
    key = _auto_class_key(via_file)
    lines = [
        f"{via_file.path.name}: VIA {via_file.version}, {len(via_file.images)} images "
        f"({sum(not im.regions for im in via_file.images)} without regions), "
        f"{via_file.num_regions} regions",
        "  shapes: " + (", ".join(f"{s} {n}" for s, n in shapes.most_common()) or "none"),
        f"  region attribute keys: {sorted(via_file.attribute_keys) or 'none'}",
    ]
    if key is not None:
        classes: Counter = Counter()
        for image in via_file.images:
            for region in image.regions:
                try:
                    name = region_class_name(region, key)
                except RegionError:
                    name = "(ambiguous)"
                classes[name if name is not None else "(none)"] += 1
        lines.append(f"  classes by {key!r}: " + ", ".join(f"{c} {n}" for c, n in classes.most_common()))
    if via_file.skipped:
        lines.append(f"  skipped while parsing: {len(via_file.skipped)}")
    return "\n".join(lines)
