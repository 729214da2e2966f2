"""Read any common image file as an HxWx3 uint8 RGB array.

Conventions (fixed so results never depend on image content):

* Transparency (RGBA, LA, palette with transparency) is composited onto a
  white background, so transparent areas look as they do in a viewer.
* 16-bit images (I;16 PNG/TIFF, mode "I") are scaled to 8 bit by ``>> 8``
  (a fixed shift, not by the image maximum, so brightness is consistent
  across a dataset). Float images ("F") are clipped to 0..1 when their max
  is <= 1, else to 0..255.
* EXIF orientation is applied (``ImageOps.exif_transpose``); the returned
  array and ``read_image_size`` both use the displayed orientation.
* Multi-frame files (GIF, TIFF stacks) give their first frame.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["ImageReadError", "read_image_rgb", "read_image_size", "verify_image"]

_EXIF_ORIENTATION = 0x0112
_SWAPPED_ORIENTATIONS = {5, 6, 7, 8}


class InputStreamError(RuntimeError):
    """A training stream stopped: ``count`` samples in a row were unreadable, or all ``total`` images
    failed (``last``: the newest errors)."""

    def __init__(self, count: int, last: list[str], total: int | None = None):
        self.count, self.last, self.total = count, list(last), total
        what = (
            f"none of the {total} images can be read any more"
            if total
            else f"{count} training samples in a row could not be read"
        )
        super().__init__(
            f"{what} (deleted, moved or broken after the check before training?); last: {'; '.join(self.last[-3:])}"
        )


class ImageReadError(ValueError):
    """A file exists but cannot be decoded as an image."""


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"Image file not found: {path}")
    if not path.is_file():
        raise ImageReadError(f"Cannot read image {path}: not a regular file")


def _open(path: Path) -> Image.Image:
    try:
        return Image.open(path)
    except UnidentifiedImageError as exc:
        raise ImageReadError(
            f"Cannot read image {path}: not a recognised image format ({path.stat().st_size} bytes)"
        ) from exc
    except Image.DecompressionBombError as exc:
        raise ImageReadError(
            f"Cannot read image {path}: {exc} (raise PIL.Image.MAX_IMAGE_PIXELS if the file is trusted)"
        ) from exc
    except OSError as exc:
        raise ImageReadError(f"Cannot read image {path}: {exc}") from exc


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # broken EXIF: treat as unrotated
        return 1


def _composite_on_white(img: Image.Image) -> np.ndarray:
    rgba = np.asarray(img.convert("RGBA"), dtype=np.float32)
    alpha = rgba[..., 3:4] / 255.0
    rgb = rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _high_bit_depth_to_gray8(img: Image.Image) -> np.ndarray:
    data = np.asarray(img)
    if img.mode == "F":
        data = data.astype(np.float64)
        finite_max = np.nanmax(data) if data.size else 0.0
        scale = 255.0 if finite_max <= 1.0 else 1.0
        return np.clip(np.nan_to_num(data) * scale, 0, 255).astype(np.uint8)
    data = np.clip(data.astype(np.int64), 0, 65535)
    return (data >> 8).astype(np.uint8)


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode == "RGB":
        return np.asarray(img, dtype=np.uint8)
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in img.info):
        return _composite_on_white(img)
    if mode.startswith("I") or mode == "F":
        gray = _high_bit_depth_to_gray8(img)
        return np.repeat(gray[..., None], 3, axis=2)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def read_image_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image as HxWx3 uint8 RGB in its displayed (EXIF) orientation."""
    path = Path(path)
    _check_exists(path)
    with _open(path) as img:
        try:
            img.seek(0)
            img.load()
            try:
                shown = ImageOps.exif_transpose(img)
            except Exception as exc:  # malformed EXIF; keep pixels as stored
                warnings.warn(f"{path}: ignoring unreadable EXIF orientation ({exc})", stacklevel=2)
                shown = img
            array = _to_rgb_array(shown)
        except (OSError, ValueError, SyntaxError) as exc:
            raise ImageReadError(f"Cannot read image {path} (format {img.format}, mode {img.mode}): {exc}") from exc
    if array.ndim != 3 or array.shape[2] != 3 or array.size == 0:
        raise ImageReadError(f"Cannot read image {path}: decoded to shape {array.shape}")
    # Writable, as Matterport's (skimage) load_image was: np.asarray of a PIL image is a read-only view,
    # and user code that draws on the image in place would fail.
    return np.ascontiguousarray(array) if array.flags.writeable else np.array(array, order="C")


def read_image_size(path: str | os.PathLike) -> tuple[int, int]:
    """Return (height, width) as displayed, read from the header only."""
    path = Path(path)
    _check_exists(path)
    with _open(path) as img:
        width, height = img.size
        if _orientation(img) in _SWAPPED_ORIENTATIONS:
            width, height = height, width
    return int(height), int(width)


def verify_image(path: str | os.PathLike) -> None:
    """Decode the whole file once, or raise ``FileNotFoundError``/``ImageReadError`` naming it.

    Catches what the header-only :func:`read_image_size` cannot: truncated or corrupt pixel data.
    JPEGs are decoded at 1/8 scale (``Image.draft``): every entropy-coded byte is still read, so a
    truncated or corrupt stream fails as in a full decode, at about a third of the time.
    """
    path = Path(path)
    _check_exists(path)
    with _open(path) as img:
        try:
            img.seek(0)
            if img.format == "JPEG":
                img.draft(img.mode, (max(1, img.width // 8), max(1, img.height // 8)))
            img.load()
        except (OSError, ValueError, SyntaxError) as exc:
            raise ImageReadError(f"Cannot read image {path} (format {img.format}, mode {img.mode}): {exc}") from exc
