"""Image resizing to the network input (Matterport's modes), molding, and image meta vectors."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import tensorflow as tf


@dataclass(frozen=True)
class ResizeInfo:
    """How an image was mapped to the network input: ``input = original * scale`` then padded."""

    window: tuple[int, int, int, int]  # (y1, x1, y2, x2) of the image inside the padded input
    scale: float
    padding: tuple  # ((top, bottom), (left, right), (0, 0))
    crop: tuple | None  # (y, x, h, w) for "crop" mode


def _resize_array(image: np.ndarray, shape, order: int) -> np.ndarray:
    """Resize [H, W] or [H, W, C] to ``shape`` (h, w): bilinear (order 1) or nearest (order 0).

    OpenCV does the work (several times faster than scikit-image); more than 512 channels, which
    ``cv2.resize`` refuses, are resized in chunks.
    """
    h, w = int(shape[0]), int(shape[1])
    interpolation = cv2.INTER_LINEAR if order == 1 else cv2.INTER_NEAREST_EXACT  # pixel-centre aligned with LINEAR
    if image.ndim == 3 and image.shape[2] == 0:
        return np.zeros((h, w, 0), dtype=image.dtype)
    work = image.astype(np.uint8) if image.dtype == bool else image
    if work.ndim == 3 and work.shape[2] > 512:
        out = np.concatenate(
            [_resize_array(work[:, :, i : i + 512], shape, order) for i in range(0, work.shape[2], 512)], axis=2
        )
    else:
        out = cv2.resize(work, (w, h), interpolation=interpolation)
        if work.ndim == 3 and out.ndim == 2:  # cv2 drops a trailing channel of size 1
            out = out[:, :, None]
    return out.astype(image.dtype)


def compute_scale(h: int, w: int, min_dim=None, max_dim=None, min_scale=0, mode="square") -> float:
    """Scale so the short side reaches ``min_dim`` without the long side passing ``max_dim``."""
    scale = 1.0
    if min_dim:
        scale = max(1.0, min_dim / min(h, w))  # Matterport: scale up only
    if min_scale and scale < min_scale:
        scale = float(min_scale)
    if max_dim and mode == "square" and round(max(h, w) * scale) > max_dim:
        scale = max_dim / max(h, w)
    return scale


def compute_scale_tf(h, w, min_dim=None, max_dim=None, min_scale=0, dtype=tf.float64):
    """TF twin of :func:`compute_scale` in "square" mode (float64 like Python): scalar tensors -> scalar.
    ``dtype=tf.float32`` for graphs that cannot hold float64 (TFLite): the resized size can then
    differ by 1 px where h * scale lies within float32 rounding of .5."""
    h = tf.cast(h, dtype)
    w = tf.cast(w, dtype)
    scale = tf.constant(1.0, dtype)
    if min_dim:
        scale = tf.maximum(scale, float(min_dim) / tf.minimum(h, w))
    if min_scale:
        scale = tf.maximum(scale, float(min_scale))
    if max_dim:
        long_side = tf.maximum(h, w)
        scale = tf.where(tf.round(long_side * scale) > float(max_dim), float(max_dim) / long_side, scale)
    return scale


def resize_geometry(h: int, w: int, min_dim=None, max_dim=None, min_scale=0, mode="square"):
    """Where :func:`resize_image` puts an h x w image, without touching pixels: (scale, (h2, w2)
    resized size, padding ((top, bottom), (left, right), (0, 0))). "crop" mode has no padding (its
    crop offset is random); "none" keeps the image as it is."""
    if mode == "none":
        return 1.0, (h, w), ((0, 0), (0, 0), (0, 0))
    scale = compute_scale(h, w, min_dim, max_dim, min_scale, mode)
    h2, w2 = (round(h * scale), round(w * scale)) if scale != 1 else (h, w)
    if mode == "square":
        top, left = (max_dim - h2) // 2, (max_dim - w2) // 2
        padding = ((top, max_dim - h2 - top), (left, max_dim - w2 - left), (0, 0))
    elif mode == "pad64":
        if min_dim and min_dim % 64:
            raise ValueError(f"pad64 mode needs IMAGE_MIN_DIM divisible by 64, got {min_dim}")
        ph, pw = (64 - h2 % 64) % 64, (64 - w2 % 64) % 64
        padding = ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0))
    elif mode == "crop":
        padding = ((0, 0), (0, 0), (0, 0))
    else:
        raise ValueError(f"unknown resize mode {mode!r}")
    return scale, (h2, w2), padding


def resize_image(
    image: np.ndarray, min_dim=None, max_dim=None, min_scale=0, mode="square", rng: np.random.Generator | None = None
) -> tuple[np.ndarray, ResizeInfo]:
    """Resize and pad ``image`` [H, W, C] as Matterport's ``utils.resize_image`` does.

    Modes: ``none`` (unchanged), ``square`` (scale, then zero-pad to max_dim x max_dim), ``pad64``
    (scale, then pad each side up to a multiple of 64), ``crop`` (scale, then a random min_dim crop).
    The geometry is :func:`resize_geometry`'s.
    """
    h, w = image.shape[:2]
    scale, (h2, w2), padding = resize_geometry(h, w, min_dim, max_dim, min_scale, mode)
    if mode == "none":
        return image, ResizeInfo((0, 0, h, w), 1.0, padding, None)
    if scale != 1:
        image = _resize_array(image, (h2, w2), order=1)
    if mode == "crop":
        rng = rng or np.random.default_rng()
        y = int(rng.integers(0, h2 - min_dim + 1))
        x = int(rng.integers(0, w2 - min_dim + 1))
        image = image[y : y + min_dim, x : x + min_dim]
        return image, ResizeInfo((0, 0, min_dim, min_dim), scale, padding, (y, x, min_dim, min_dim))
    image = np.pad(image, padding[: image.ndim], mode="constant", constant_values=0)
    window = (padding[0][0], padding[1][0], padding[0][0] + h2, padding[1][0] + w2)
    return image, ResizeInfo(window, scale, padding, None)


def resize_image_tf(image, min_dim=None, max_dim=None, min_scale=0, dtype=tf.float64):
    """TF twin of :func:`resize_image` in "square" mode: uint8 [H, W, 3] ->
    (float32 [max_dim, max_dim, 3], window int32 [4], scale float64 scalar).

    ``tf.image.resize`` bilinear (half-pixel centres, edges clamped) samples as
    ``cv2.resize(INTER_LINEAR)``; OpenCV computes uint8 in 11-bit fixed point, so pixels may differ
    by 1 (rounded to the nearest integer as OpenCV does).
    """
    shape = tf.shape(image)
    h, w = shape[0], shape[1]
    scale = compute_scale_tf(h, w, min_dim, max_dim, min_scale, dtype)
    h2 = tf.cast(tf.round(tf.cast(h, dtype) * scale), tf.int32)
    w2 = tf.cast(tf.round(tf.cast(w, dtype) * scale), tf.int32)
    img = tf.cast(image, tf.float32)
    resized = tf.cond(
        tf.logical_and(tf.equal(h2, h), tf.equal(w2, w)),
        lambda: img,
        lambda: tf.clip_by_value(tf.round(tf.image.resize(img, tf.stack([h2, w2]), method="bilinear")), 0.0, 255.0),
    )
    top = (max_dim - h2) // 2
    left = (max_dim - w2) // 2
    padded = tf.pad(resized, [[top, max_dim - h2 - top], [left, max_dim - w2 - left], [0, 0]])
    # reshape, not ensure_shape: same static shape, and TFLite has no EnsureShape builtin.
    return tf.reshape(padded, [max_dim, max_dim, 3]), tf.stack([top, left, top + h2, left + w2]), scale


def resize_mask(mask: np.ndarray, info: ResizeInfo) -> np.ndarray:
    """Apply the same scale/pad/crop to bool masks [H, W, N] as :func:`resize_image` did."""
    h, w = mask.shape[:2]
    if info.scale != 1:
        target = (round(h * info.scale), round(w * info.scale))
        mask = _resize_array(mask.astype(bool), target, order=0)
    if info.crop is not None:
        y, x, ch, cw = info.crop
        return mask[y : y + ch, x : x + cw].astype(bool)
    return np.pad(mask, info.padding[: mask.ndim], mode="constant", constant_values=0).astype(bool)


@dataclass(frozen=True)
class ResizeSpec:
    """The config's resize settings (IMAGE_MIN_DIM, IMAGE_MAX_DIM, IMAGE_MIN_SCALE, IMAGE_RESIZE_MODE),
    read once; the ops below take them as plain values."""

    min_dim: int | None
    max_dim: int | None
    min_scale: float = 0.0
    mode: str = "square"

    @classmethod
    def from_config(cls, config) -> ResizeSpec:
        return cls(
            config.IMAGE_MIN_DIM, config.IMAGE_MAX_DIM, float(config.IMAGE_MIN_SCALE or 0), config.IMAGE_RESIZE_MODE
        )

    @property
    def fixed_size(self) -> bool:
        """Every image becomes max_dim x max_dim ("square", "crop"): what batched training needs."""
        return self.mode in ("square", "crop")

    @property
    def deterministic(self) -> bool:
        """The same image always resizes the same way (all modes but "crop"), so it can be cached."""
        return self.mode != "crop"

    def resize(self, image: np.ndarray, rng=None):
        """:func:`resize_image` with these settings -> (image, :class:`ResizeInfo`)."""
        return resize_image(
            image, min_dim=self.min_dim, max_dim=self.max_dim, min_scale=self.min_scale, mode=self.mode, rng=rng
        )

    def geometry(self, h: int, w: int):
        """:func:`resize_geometry` with these settings."""
        return resize_geometry(h, w, self.min_dim, self.max_dim, self.min_scale, self.mode)


def resize_image_for_config(image: np.ndarray, config, rng=None):
    """:func:`resize_image` with the config's IMAGE_* settings (:class:`ResizeSpec`)."""
    return ResizeSpec.from_config(config).resize(image, rng)


def mold_image(images: np.ndarray, config) -> np.ndarray:
    """uint8 RGB -> float32 minus the mean pixel (the network input)."""
    return images.astype(np.float32) - np.asarray(config.MEAN_PIXEL, dtype=np.float32)


# ------------------------------------------------------------------------------------ image meta
def compose_image_meta(image_id, original_image_shape, image_shape, window, scale, active_class_ids) -> np.ndarray:
    """Pack per-image facts into one float vector (Matterport layout, length 12 + NUM_CLASSES)."""
    return np.array(
        [image_id] + list(original_image_shape) + list(image_shape) + list(window) + [scale] + list(active_class_ids),
        dtype=np.float32,
    )


def compose_image_meta_tf(image_id, original_image_shape, image_shape, window, scale, active_class_ids):
    """TF twin of :func:`compose_image_meta` -> float32 [12 + NUM_CLASSES]."""
    parts = [
        tf.reshape(image_id, [1]),
        original_image_shape,
        image_shape,
        window,
        tf.reshape(scale, [1]),
        active_class_ids,
    ]
    return tf.concat([tf.cast(p, tf.float32) for p in parts], axis=0)


def parse_image_meta(meta: np.ndarray) -> dict:
    """Unpack [B, META] (numpy) into named arrays."""
    return {
        "image_id": meta[:, 0].astype(np.int32),
        "original_image_shape": meta[:, 1:4].astype(np.int32),
        "image_shape": meta[:, 4:7].astype(np.int32),
        "window": meta[:, 7:11].astype(np.int32),
        "scale": meta[:, 11].astype(np.float32),
        "active_class_ids": meta[:, 12:].astype(np.int32),
    }


def parse_image_meta_tf(meta: tf.Tensor) -> dict:
    """TF twin of :func:`parse_image_meta` (float values kept)."""
    return {
        "image_id": meta[:, 0],
        "original_image_shape": meta[:, 1:4],
        "image_shape": meta[:, 4:7],
        "window": meta[:, 7:11],
        "scale": meta[:, 11],
        "active_class_ids": meta[:, 12:],
    }
