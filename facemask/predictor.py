"""One-image prediction for the web app (facemask-app): decode bytes, detect, summarise, draw the overlay.

The result dict (JSON-ready) is documented in :meth:`Predictor.predict`.
"""

from __future__ import annotations

import base64
import os
import tempfile
import threading
import time

import cv2
import numpy as np
from PIL import Image

#: Long side above which uploads are downscaled (keeping aspect) before detection.
DEFAULT_MAX_SIDE = 4096
#: Decoded pixel count above which uploads are refused (checked from the header, before decoding).
DEFAULT_MAX_PIXELS = 50_000_000
#: Long side of the overlay image in the answer: a display size, so a 48 MP photo's answer stays small
#: (a 4096x3072 PNG overlay made an 18 MB JSON answer).
DEFAULT_OVERLAY_SIDE = 1280


class UploadError(ValueError):
    """A client-side problem with an upload; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def decode_image_bytes(data: bytes, filename: str | None = None, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Uploaded bytes -> HxWx3 uint8 RGB with :mod:`mrcnn.data.image_io`'s rules (EXIF
    orientation, grayscale/16-bit, transparency composited on white). Raises :class:`UploadError`
    (415 for non-images, 413 for too many pixels)."""
    from mrcnn.data.image_io import ImageReadError, read_image_rgb, read_image_size

    if not data:
        raise UploadError("the uploaded file is empty", 400)
    suffix = os.path.splitext(filename or "")[1][:10] or ".img"
    fd, path = tempfile.mkstemp(suffix=suffix, prefix="upload_")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        name = filename or "upload"
        try:
            h, w = read_image_size(path)
        except ImageReadError as e:
            if isinstance(e.__cause__, Image.DecompressionBombError):
                raise UploadError(
                    f"{name} has too many pixels to decode safely (a decompression bomb?); "
                    f"the limit is {max_pixels / 1e6:.0f} megapixels",
                    413,
                ) from None
            raise UploadError(
                f"{name} is not a readable image ({_reason(e, path)}); upload a JPEG, PNG, BMP, TIFF, WebP or GIF file",
                415,
            ) from None
        if h * w > max_pixels:
            raise UploadError(
                f"{name} is {w}x{h} = {h * w / 1e6:.1f} megapixels; the limit is {max_pixels / 1e6:.0f} megapixels", 413
            )
        try:
            return read_image_rgb(path)
        except ImageReadError as e:
            raise UploadError(f"{name} could not be decoded ({_reason(e, path)})", 415) from None
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass


def _reason(exc: Exception, path: str) -> str:
    text = str(exc).replace(f"Cannot read image {path}", "").strip(" :")
    return text.replace(path, "the file") or type(exc).__name__


def limit_side(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Downscale so the long side is at most ``max_side`` (INTER_AREA); returns (image, factor)."""
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image, 1.0
    f = max_side / max(h, w)
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), f


def overlay_at(image: np.ndarray, rois: np.ndarray, masks: np.ndarray, max_side: int):
    """(image, rois, masks) downscaled so the long side is at most ``max_side``, for drawing the
    overlay at display size (masks resized one at a time, never a second full-size stack)."""
    small, f = limit_side(image, max_side)
    if f == 1.0:
        return image, rois, masks
    h, w = small.shape[:2]
    out = np.zeros((h, w, masks.shape[2]), dtype=bool)
    for i in range(masks.shape[2]):
        out[..., i] = (
            cv2.resize(np.ascontiguousarray(masks[..., i], dtype=np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
        )
    return small, np.round(np.asarray(rois, dtype=np.float64) * f).astype(int), out


def png_base64(image_rgb: np.ndarray) -> str:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return base64.b64encode(buf.tobytes()).decode("ascii")


class Predictor:
    """Wraps a model with ``detect([image]) -> [dict(rois, class_ids, scores, masks[H,W,N])]``
    (a :class:`mrcnn.model.maskrcnn.MaskRCNN` in inference mode) and its class names."""

    def __init__(
        self,
        model,
        class_names,
        *,
        max_side: int = DEFAULT_MAX_SIDE,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        overlay_side: int = DEFAULT_OVERLAY_SIDE,
        description: str = "",
    ):
        self.model = model
        self.class_names = list(class_names)
        self.max_side = int(max_side)
        self.overlay_side = int(overlay_side)
        self.max_pixels = int(max_pixels)
        self.description = description
        self._lock = threading.Lock()  # one detect at a time: the model is not re-entrant on CPU

    def predict_bytes(self, data: bytes, filename: str | None = None) -> dict:
        t0 = time.perf_counter()
        image = decode_image_bytes(data, filename, max_pixels=self.max_pixels)
        result = self.predict(image)
        result["timing_ms"]["decode"] = round((time.perf_counter() - t0) * 1000 - result["timing_ms"]["total"], 1)
        result["timing_ms"]["total"] = round((time.perf_counter() - t0) * 1000, 1)
        return result

    def predict(self, image: np.ndarray) -> dict:
        """RGB uint8 image -> {detections: [{class_id, class_name, score, box [y1, x1, y2, x2],
        mask_area_pct}], mask_area_pct, masked_face_pct (None without a "face" class),
        overlay_png_base64, overlay_width, overlay_height, width, height, original_width,
        original_height, downscaled, timing_ms {detect, overlay, total}}. Coordinates refer to the
        (possibly downscaled) width x height image; the overlay shows it at most ``overlay_side``
        pixels on its long side."""
        from mrcnn.visualize import draw_instances

        from .coverage import mask_coverage

        t0 = time.perf_counter()
        oh, ow = image.shape[:2]
        image, _ = limit_side(image, self.max_side)
        h, w = image.shape[:2]
        with self._lock:
            r = self.model.detect([image])[0]
        t1 = time.perf_counter()
        masks = np.asarray(r["masks"], dtype=bool)
        ids = np.asarray(r["class_ids"]).reshape(-1).astype(int)
        scores = np.asarray(r["scores"]).reshape(-1).astype(float)
        rois = np.asarray(r["rois"]).reshape(-1, 4).astype(int)
        face_pct, area_pct = mask_coverage({"masks": masks, "class_ids": ids, "rois": rois}, self.class_names, (h, w))
        detections = []
        for i in range(len(ids)):
            detections.append(
                {
                    "class_id": int(ids[i]),
                    "class_name": self._name(ids[i]),
                    "score": round(float(scores[i]), 4),
                    "box": [int(v) for v in rois[i]],
                    "mask_area_pct": round(float(masks[..., i].sum()) / float(h * w) * 100.0, 3),
                }
            )
        shown, shown_rois, shown_masks = overlay_at(image, rois, masks, self.overlay_side)
        del image, masks, r  # the full-size arrays are not needed for the overlay
        overlay = draw_instances(shown, shown_rois, shown_masks, ids, self.class_names, scores)
        b64 = png_base64(overlay)
        t2 = time.perf_counter()
        return {
            "detections": detections,
            "counts": {name: sum(d["class_name"] == name for d in detections) for name in self.class_names[1:]},
            "mask_area_pct": round(area_pct, 3),
            "masked_face_pct": None if face_pct is None else round(face_pct, 3),
            "overlay_png_base64": b64,
            "overlay_width": int(overlay.shape[1]),
            "overlay_height": int(overlay.shape[0]),
            "width": int(w),
            "height": int(h),
            "original_width": int(ow),
            "original_height": int(oh),
            "downscaled": (h, w) != (oh, ow),
            "timing_ms": {
                "detect": round((t1 - t0) * 1000, 1),
                "overlay": round((t2 - t1) * 1000, 1),
                "total": round((t2 - t0) * 1000, 1),
            },
        }

    def _name(self, class_id: int) -> str:
        return self.class_names[class_id] if 0 <= class_id < len(self.class_names) else f"class_{class_id}"
