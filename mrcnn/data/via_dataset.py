"""Mask R-CNN dataset built from VIA 1.x/2.x json files.

Class names are normalised (lower-case, stripped, runs of spaces/hyphens ->
"_") before ``aliases`` are applied, so "Face Mask", "face-mask" and
"face_mask" are one class. Problems are collected over the whole file and
raised once (missing images, then invalid regions, then unknown classes).

Images whose regions were *all* skipped for having no area (points, regions
without a shape) are dropped, not kept as negatives: they contain objects
that we cannot draw, so treating them as background would be wrong. Images
whose regions were all skipped as ``unknown="skip"`` classes are negatives.
"""

from __future__ import annotations

import os
import re
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from .dataset import Dataset, missing_images_error
from .image_io import read_image_size
from .shapes import RegionError, SkipRegion, pixel_count, region_pixels, validate_region
from .via import ViaFile, ViaRegion, read_via, region_class_name

__all__ = ["ViaDataset", "UnknownClassError", "normalize_class_name"]

_SHOW = 10


class UnknownClassError(ValueError):
    """Regions carry classes outside ``class_names`` (or no class at all).

    ``path``: the json; ``known``: the fixed class names (None when discovered); ``problems``:
    "where: detail" per region; ``reasons``: which of "unknown class", "no class", "several keys"
    occurred; ``keys``: the region attribute keys of the file. The message gives the keyword
    arguments that fix it; a command line gives its own flags from these fields.
    """

    def __init__(self, message: str, *, path=None, known=None, problems=(), reasons=(), keys=()):
        super().__init__(message)
        self.path, self.known, self.problems = path, known, list(problems)
        self.reasons, self.keys = set(reasons), sorted(keys)


def normalize_class_name(name: str) -> str:
    """'  Face-Mask ' -> 'face_mask'."""
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def _image_path(image_dir: Path, filename: str) -> Path:
    if re.match(r"^https?://", filename):
        return image_dir / Path(urlparse(filename).path).name
    return image_dir / filename


def _listed(error_type: type, header: str, messages: list[str]) -> Exception:
    lines = "\n".join(f"  {m}" for m in messages[:_SHOW])
    more = f"\n  ... and {len(messages) - _SHOW} more" if len(messages) > _SHOW else ""
    return error_type(f"{header}:\n{lines}{more}")


def _raise_listed(error_type: type, header: str, messages: list[str]) -> None:
    raise _listed(error_type, header.rstrip(":"), messages)


class ViaDataset(Dataset):
    """Dataset of VIA-annotated images; see ``load_via``."""

    def __init__(self, class_map: dict | None = None) -> None:
        super().__init__(class_map)
        self._class_ids_by_source: dict[str, dict[str, int]] = {}
        self.load_reports: list[dict[str, Any]] = []
        self._via_sources: set[str] = set()

    # -- classes ------------------------------------------------------------
    def _register_fixed(self, source: str, names: list[str], display: list[str]) -> None:
        mapping = self._class_ids_by_source.setdefault(source, {})
        if len(set(names)) != len(names):
            dupes = sorted(n for n, c in Counter(names).items() if c > 1)
            raise ValueError(f"class_names has duplicates after normalising: {dupes}")
        wanted = {n: i + 1 for i, n in enumerate(names)}
        if mapping and mapping != wanted:
            raise ValueError(
                f"Source {source!r} already has classes {mapping}; cannot load with a different class list {wanted}"
            )
        for name, class_id in wanted.items():
            mapping[name] = class_id
            self.add_class(source, class_id, display[class_id - 1])

    def _register_discovered(self, source: str, names: Iterable[str]) -> None:
        mapping = self._class_ids_by_source.setdefault(source, {})
        for name in sorted(set(names) - mapping.keys()):
            mapping[name] = len(mapping) + 1
            self.add_class(source, mapping[name], name)

    # -- loading ------------------------------------------------------------
    def load_via(
        self,
        json_path: str | os.PathLike,
        image_dir: str | os.PathLike | None = None,
        *,
        source: str = "via",
        class_key: str | None = None,
        class_names: list[str] | None = None,
        aliases: dict[str, str] | None = None,
        single_class: str | None = None,
        keep_negatives: bool = True,
        unknown: str = "error",
        verbose: bool = True,
    ) -> dict[str, Any]:
        """Add the images and regions of one VIA json; returns a load report."""
        if unknown not in ("error", "skip"):
            raise ValueError(f"unknown must be 'error' or 'skip', not {unknown!r}")
        json_path = Path(json_path)
        via = read_via(json_path, class_key=class_key)
        image_dir = Path(image_dir) if image_dir is not None else json_path.parent
        paths = [_image_path(image_dir, im.filename) for im in via.images]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise missing_images_error(missing, len(paths), json_path, image_dir)

        alias_map = {normalize_class_name(k): normalize_class_name(v) for k, v in (aliases or {}).items()}
        fixed: list[str] | None = None
        if single_class is not None:
            fixed, display = [normalize_class_name(single_class)], [single_class.strip()]
        elif class_names is not None:
            fixed = [normalize_class_name(n) for n in class_names]
            display = [str(n).strip() for n in class_names]
        if fixed is not None:
            self._register_fixed(source, fixed, display)

        key = class_key
        if key is None and len(via.attribute_keys) == 1:
            key = next(iter(via.attribute_keys))
        plan, report = self._plan_regions(via, key, fixed, alias_map, single_class, unknown)
        if fixed is None:
            self._register_discovered(source, plan["names"])
        self._add_images(via, paths, plan["regions"], source, keep_negatives, report)
        self._warn_skipped(json_path, report)
        self.load_reports.append(report)
        if verbose:
            print(self._format_report(json_path, report))
        return report

    def _class_for(
        self, region: ViaRegion, key: str | None, where: str, alias_map: dict[str, str], single_class: str | None
    ) -> tuple[str | None, str, str]:
        """(normalised class or None, reason and explanation when None)."""
        if single_class is not None:
            return normalize_class_name(single_class), "", ""
        raw = region_class_name(region, key, where=where)
        if raw is None:
            if key is None and len(region.region_attributes) > 1:
                return None, "several keys", f"several attribute keys {sorted(region.region_attributes)}"
            shown = f"attribute {key!r}" if key else "class attribute"
            return None, "no class", f"no class label (no {shown}; attributes {region.region_attributes})"
        name = normalize_class_name(raw)
        return alias_map.get(name, name), "", ""

    def _plan_regions(
        self,
        via: ViaFile,
        key: str | None,
        fixed: list[str] | None,
        alias_map: dict[str, str],
        single_class: str | None,
        unknown: str,
    ) -> tuple[dict, dict]:
        region_errors: list[str] = []
        class_errors: list[str] = []
        reasons: set[str] = set()
        skipped: Counter = Counter()
        skipped.update({"no shape name": len(via.skipped)})
        shape_skips: Counter = Counter()  # per image index
        examples: dict[str, list[str]] = defaultdict(list)
        planned: list[list[tuple[ViaRegion, str, str]]] = []
        names: set[str] = set()
        for image_index, image in enumerate(via.images):
            kept = []
            for region in image.regions:
                where = f"{via.path.name}, image {image.filename!r}, region {region.index}"
                try:
                    validate_region(region.shape_attributes, where=where)
                except SkipRegion:
                    skipped[f"{region.shape} (no area)"] += 1
                    shape_skips[image_index] += 1
                    examples[f"{region.shape} (no area)"].append(where)
                    continue
                except RegionError as exc:
                    region_errors.append(str(exc))
                    continue
                try:
                    name, reason, why = self._class_for(region, key, where, alias_map, single_class)
                except RegionError as exc:
                    region_errors.append(str(exc))
                    continue
                if name is None or (fixed is not None and name not in fixed):
                    reason = reason or "unknown class"
                    detail = why or f"class {name!r} is not in {fixed}"
                    if unknown == "error":
                        class_errors.append(f"{where}: {detail}")
                        reasons.add(reason)
                    else:
                        skip_reason = "no class" if name is None else "unknown class"
                        skipped[skip_reason] += 1
                        examples[skip_reason].append(f"{where}: {detail}")
                    continue
                names.add(name)
                kept.append((region, name, where))
            planned.append(kept)
        if region_errors:
            _raise_listed(RegionError, f"{len(region_errors)} invalid region(s) in {via.path}:", region_errors)
        if class_errors:
            known = fixed if fixed is not None else "discovered from the data"
            fix = "class_key=" if reasons - {"unknown class"} else "aliases=, class_names="
            error = _listed(
                UnknownClassError,
                f"{len(class_errors)} region(s) in {via.path} have no usable class "
                f"(known classes: {known}); pass {fix}, single_class= or unknown='skip'",
                class_errors,
            )
            error.path, error.known, error.problems = str(via.path), fixed, class_errors
            error.reasons, error.keys = reasons, sorted(via.attribute_keys)
            raise error
        report = {
            "json": str(via.path),
            "images": 0,
            "negatives": 0,
            "dropped_images": [],
            "regions_per_class": Counter(),
            "skipped": skipped,
            "skip_examples": examples,
            "_shape_skips": shape_skips,
        }
        return {"regions": planned, "names": names}, report

    def _add_images(
        self, via: ViaFile, paths: list[Path], planned: list, source: str, keep_negatives: bool, report: dict
    ) -> None:
        mapping = self._class_ids_by_source.get(source, {})
        for index, (image, path, kept) in enumerate(zip(via.images, paths, planned)):
            if not kept:
                if report["_shape_skips"][index]:
                    report["dropped_images"].append(image.filename)
                    continue
                if not keep_negatives:
                    continue
                report["negatives"] += 1
            height, width = read_image_size(path)
            regions = [
                {
                    "shape_attributes": r.shape_attributes,
                    "region_attributes": r.region_attributes,
                    "class_name": name,
                    "class_id": mapping[name],
                    "index": r.index,
                    "where": where,
                }
                for r, name, where in kept
            ]
            report["regions_per_class"].update(name for _, name, _ in kept)
            report["images"] += 1
            self.add_image(
                source,
                image_id=image.filename,
                path=path,
                width=width,
                height=height,
                regions=regions,
                via_key=image.key,
                json_path=str(via.path),
            )
        self._via_sources.add(source)
        del report["_shape_skips"]

    @staticmethod
    def _warn_skipped(json_path: Path, report: dict) -> None:
        for reason, count in report["skipped"].items():
            if count:
                first = "; ".join(report["skip_examples"].get(reason, [])[:3])
                warnings.warn(
                    f"{json_path}: skipped {count} region(s): {reason}" + (f" (e.g. {first})" if first else ""),
                    stacklevel=3,
                )
        if report["dropped_images"]:
            warnings.warn(
                f"{json_path}: dropped {len(report['dropped_images'])} image(s) "
                "whose regions were all skipped, e.g. "
                f"{report['dropped_images'][:3]}",
                stacklevel=3,
            )

    @staticmethod
    def _format_report(json_path: Path, report: dict) -> str:
        lines = [
            f"Loaded {json_path}: {report['images']} images "
            f"({report['negatives']} negatives), "
            f"{sum(report['regions_per_class'].values())} regions"
        ]
        for name, count in sorted(report["regions_per_class"].items()):
            lines.append(f"  {name}: {count}")
        skips = {r: c for r, c in report["skipped"].items() if c}
        if skips:
            lines.append("  skipped regions: " + ", ".join(f"{r} {c}" for r, c in skips.items()))
        if report["dropped_images"]:
            lines.append(f"  dropped images (all regions skipped): {len(report['dropped_images'])}")
        return "\n".join(lines)

    # -- per image ----------------------------------------------------------
    def instance_class_ids(self, image_id: int) -> list[int] | None:
        info = self.image_info[image_id]
        if "regions" not in info:
            return None
        return [self.class_index(info["source"], r["class_id"]) for r in info["regions"]]

    def image_reference(self, image_id: int) -> str:
        info = self.image_info[image_id]
        return f"{info['path']} (from {info.get('json_path', '?')})"

    def load_mask(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(bool HxWxN masks, int32 internal class ids) for one image."""
        info = self.image_info[image_id]
        if info["source"] not in self._via_sources:
            return super().load_mask(image_id)
        height, width = info["height"], info["width"]
        pixels, class_ids = [], []
        for region in info["regions"]:
            try:
                index = region_pixels(region["shape_attributes"], height, width, where=region["where"])
            except SkipRegion:
                continue
            if pixel_count(index, height, width) == 0:
                warnings.warn(
                    f"{region['where']}: region lies outside the {width}x{height} image; dropped", stacklevel=2
                )
                continue
            pixels.append(index)
            class_ids.append(self.class_index(info["source"], region["class_id"]))
        # Each region's pixels are written straight into the HxWxN array: stacking N full-size
        # masks cost most of a training sample's time on large photos with many instances.
        masks = np.zeros((height, width, len(pixels)), dtype=bool)
        for i, (rows, cols) in enumerate(pixels):
            masks[rows, cols, i] = True
        return masks, np.asarray(class_ids, dtype=np.int32)
