"""Base dataset with Matterport Mask R-CNN's ``utils.Dataset`` API.

Subclasses add images with ``add_image`` and override ``load_mask``. Call
``prepare()`` before use. Internal class ids are 0..num_classes-1 (0 = BG);
source class ids are kept in ``class_info`` and mapped with
``map_source_class_id("source.id")``.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .image_io import ImageReadError, read_image_rgb, read_image_size, verify_image

__all__ = ["Dataset", "missing_images_error"]

logger = logging.getLogger(__name__)


class MissingImagesError(FileNotFoundError):
    """Images an annotation file lists are not there (``missing``, ``total``, ``json_path``, ``image_dir``)."""


def missing_images_error(
    missing: Sequence[Path | str], total: int, json_path: Path | str, image_dir: Path | str, show: int = 5
) -> FileNotFoundError:
    """Build one error listing how many images are missing and the first few."""
    listed = "\n".join(f"  {p}" for p in list(missing)[:show])
    more = f"\n  ... and {len(missing) - show} more" if len(missing) > show else ""
    error = MissingImagesError(
        f"{len(missing)} of {total} images listed in {json_path} were not found "
        f"in {image_dir}:\n{listed}{more}\n"
        "Check image_dir (it defaults to the json's folder)."
    )
    error.missing, error.total = [str(p) for p in missing], total
    error.json_path, error.image_dir = str(json_path), str(image_dir)
    return error


class Dataset:
    """Image and class registry; see the module docstring."""

    def __init__(self, class_map: dict | None = None) -> None:
        self._image_ids = np.zeros(0, dtype=np.int64)
        self.image_info: list[dict[str, Any]] = []
        self.class_info: list[dict[str, Any]] = [{"source": "", "id": 0, "name": "BG"}]
        self.source_class_ids: dict[str, list[int]] = {}

    # -- registration -------------------------------------------------------
    def add_class(self, source: str, class_id: int, class_name: str) -> None:
        """Register a class; duplicates of (source, class_id) are ignored."""
        if "." in source:
            raise ValueError(f"Source name cannot contain a dot: {source!r}")
        for info in self.class_info:
            if info["source"] == source and info["id"] == class_id:
                return
        self.class_info.append({"source": source, "id": class_id, "name": class_name})

    def add_image(self, source: str, image_id: Any, path: str | os.PathLike, **kwargs: Any) -> None:
        """Register an image; extra kwargs are stored in its image_info."""
        info = {"id": image_id, "source": source, "path": str(path)}
        info.update(kwargs)
        self.image_info.append(info)

    def class_index(self, source: str, class_id: int) -> int:
        """Internal id of (source, class_id); works before prepare()."""
        for index, info in enumerate(self.class_info):
            if info["source"] == source and info["id"] == class_id:
                return index
        raise KeyError(f"No class {class_id!r} registered for source {source!r}")

    def image_reference(self, image_id: int) -> str:
        """A string naming the image for humans (its path by default)."""
        return str(self.image_info[image_id].get("path", ""))

    def prepare(self, class_map: dict | None = None) -> None:
        """Build the lookup tables; call after adding classes and images.

        ``class_map`` is accepted for Matterport compatibility and ignored.
        """
        self._unreadable = None  # images may have changed: check them again before training
        self.num_classes = len(self.class_info)
        self.class_ids = np.arange(self.num_classes)
        self.class_names = [str(c["name"]).split(",")[0] for c in self.class_info]
        self.num_images = len(self.image_info)
        self._image_ids = np.arange(self.num_images)
        self.class_from_source_map = {
            f"{info['source']}.{info['id']}": int(i) for info, i in zip(self.class_info, self.class_ids)
        }
        self.image_from_source_map = {
            f"{info['source']}.{info['id']}": int(i) for info, i in zip(self.image_info, self._image_ids)
        }
        self.sources = sorted({c["source"] for c in self.class_info})
        self.source_class_ids = {
            source: [i for i, info in enumerate(self.class_info) if i == 0 or info["source"] == source]
            for source in self.sources
        }

    # -- lookups ------------------------------------------------------------
    def map_source_class_id(self, source_class_id: str) -> int:
        """Internal class id for "source.class_id" (e.g. "coco.12")."""
        try:
            return self.class_from_source_map[source_class_id]
        except AttributeError:
            raise RuntimeError("Call prepare() before map_source_class_id()") from None
        except KeyError:
            known = ", ".join(list(self.class_from_source_map)[:20])
            raise KeyError(f"Unknown source class id {source_class_id!r}; known: {known}") from None

    def get_source_class_id(self, class_id: int, source: str) -> int:
        """The source's own id of internal class ``class_id``."""
        info = self.class_info[class_id]
        if info["source"] != source:
            raise ValueError(
                f"Class {class_id} ({info['name']!r}) belongs to source {info['source']!r}, not {source!r}"
            )
        return info["id"]

    @property
    def image_ids(self) -> np.ndarray:
        return self._image_ids

    def source_image_link(self, image_id: int) -> str:
        """Path or URL of the image file."""
        return self.image_info[image_id]["path"]

    def __len__(self) -> int:
        return len(self.image_info)

    # -- data ---------------------------------------------------------------
    def _describe(self, image_id: int) -> str:
        info = self.image_info[image_id]
        return f"dataset image id {image_id} (source {info['source']!r}, id {info['id']!r})"

    def load_image(self, image_id: int) -> np.ndarray:
        """Load image ``image_id`` as HxWx3 uint8 RGB."""
        path = self.image_info[image_id]["path"]
        try:
            return read_image_rgb(path)
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"{self._describe(image_id)}: {exc}") from exc
        except ImageReadError as exc:
            raise ImageReadError(f"{self._describe(image_id)}: {exc}") from exc

    def unreadable_images(self) -> dict[int, str]:
        """``{image_id: error}`` for the images that cannot be fully decoded; each image is checked once
        per prepared dataset (threads; a progress bar when it takes over a second).

        Images loaded by this class's :meth:`load_image` are verified with
        :func:`~mrcnn.data.image_io.verify_image` (a fast full decode); a subclass that overrides
        ``load_image`` has it called instead.
        """
        cached = getattr(self, "_unreadable", None)
        if cached is not None:
            return cached
        custom_loader = type(self).load_image is not Dataset.load_image

        def check(image_id: int) -> str | None:
            try:
                if custom_loader:
                    self.load_image(image_id)
                else:
                    verify_image(self.image_info[image_id]["path"])
            except (ImageReadError, OSError) as exc:  # FileNotFoundError is an OSError
                return f"{self._describe(image_id)}: {exc}" if custom_loader else str(exc)
            return None

        ids = [int(i) for i in self.image_ids]
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            errors = list(
                tqdm(
                    pool.map(check, ids),
                    total=len(ids),
                    desc="Checking images",
                    unit="img",
                    delay=1.0,
                    disable=None,
                    leave=False,
                )
            )
        self._unreadable = {i: e for i, e in zip(ids, errors) if e is not None}
        return self._unreadable

    def image_size(self, image_id: int) -> tuple[int, int]:
        """(height, width), from image_info when known, else the file header."""
        info = self.image_info[image_id]
        if "height" in info and "width" in info:
            return int(info["height"]), int(info["width"])
        return read_image_size(info["path"])

    def load_mask(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Default: no instances. Override in subclasses."""
        logger.warning(
            "Dataset.load_mask() base implementation called for %s; override load_mask in your dataset class.",
            self._describe(image_id),
        )
        height, width = self.image_size(image_id)
        return np.zeros((height, width, 0), dtype=bool), np.zeros(0, dtype=np.int32)

    def instance_class_ids(self, image_id: int) -> list[int] | None:
        """Class ids of an image's instances without rasterising, if known cheaply."""
        return None

    def summary(self) -> str:
        """Images and instances per class, as a short text."""
        counts: Counter = Counter()
        known = True
        negatives = 0
        for image_id in range(len(self.image_info)):
            ids = self.instance_class_ids(image_id)
            if ids is None:
                known = False
                break
            negatives += not ids
            counts.update(abs(i) for i in ids)
        lines = [f"{type(self).__name__}: {len(self.image_info)} images, {len(self.class_info) - 1} classes"]
        if not known:
            lines.append("  instances per class: unknown (not recorded at load time)")
            return "\n".join(lines)
        lines[0] += f", {sum(counts.values())} instances, {negatives} images without instances"
        for class_id, info in enumerate(self.class_info):
            if class_id:
                lines.append(f"  {class_id:3d} {info['name']}: {counts.get(class_id, 0)}")
        return "\n".join(lines)
