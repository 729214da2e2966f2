"""Augmentation of an image and its instance masks together.

The default policy uses albumentations (flip, small affine, colour jitter, blur/noise) and keeps
the image size, which batching needs. Any albumentations transform is accepted; an imgaug
augmenter (``imgaug`` is optional: unmaintained and broken on numpy 2) is wrapped by
:class:`ImgaugAdapter`. Boxes are always recomputed from the augmented masks by the pipeline.
"""

from __future__ import annotations

import copy
import random
import threading

import numpy as np

# imgaug augmenters that move pixels; only these are applied to masks (Matterport's rule).
_IMGAUG_MASK_SAFE = {
    "Sequential",
    "SomeOf",
    "OneOf",
    "Sometimes",
    "Fliplr",
    "Flipud",
    "CropAndPad",
    "Affine",
    "PiecewiseAffine",
    "Rot90",
    "Crop",
    "Pad",
    "PerspectiveTransform",
}


def default_augmentation():
    """A conservative policy suited to photos of people: geometry small, colour moderate."""
    import albumentations as A

    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.Affine(
                scale=(0.85, 1.15),
                translate_percent=(-0.06, 0.06),
                rotate=(-12, 12),
                border_mode=0,
                fill=0,
                fill_mask=0,
                p=0.6,
            ),
            A.ColorJitter(brightness=0.25, contrast=0.25, saturation=0.25, hue=0.03, p=0.6),
            A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.GaussNoise(std_range=(0.02, 0.06))], p=0.25),
        ]
    )


class ImgaugAdapter:
    """Wrap an imgaug augmenter so it can be used like an albumentations transform."""

    def __init__(self, augmenter):
        self.augmenter = augmenter

    def __call__(self, image, masks, seed: int):
        import imgaug

        def hook(images, augmenter, parents, default):
            return augmenter.__class__.__name__ in _IMGAUG_MASK_SAFE

        if len(masks) == 0:
            det = self.augmenter.to_deterministic()
            det.seed_(int(seed) % (2**31))
            return det.augment_image(image), masks
        det = self.augmenter.to_deterministic()
        det.seed_(int(seed) % (2**31))
        image_out = det.augment_image(image)
        masks_hwn = np.transpose(masks, (1, 2, 0)).astype(np.uint8)
        masks_out = det.augment_image(masks_hwn, hooks=imgaug.HooksImages(activator=hook))
        return image_out, np.transpose(masks_out, (2, 0, 1)).astype(bool)


class Augmenter:
    """Thread-safe, seedable call ``(image, masks[N,H,W], seed) -> (image, masks)``.

    Each thread gets its own copy of the albumentations pipeline and re-seeds it per sample, so
    results depend only on the sample seed, not on thread scheduling.
    """

    def __init__(self, transform):
        self.transform = transform
        self._local = threading.local()
        self._is_imgaug = hasattr(transform, "to_deterministic")
        if self._is_imgaug:
            self._adapter = ImgaugAdapter(transform)
        elif not callable(transform):
            raise TypeError(f"augmentation must be an albumentations or imgaug transform, got {type(transform)!r}")

    def _thread_copy(self):
        t = getattr(self._local, "transform", None)
        if t is None:
            t = copy.deepcopy(self.transform)
            self._local.transform = t
        return t

    def __call__(self, image: np.ndarray, masks: np.ndarray, seed: int):
        if self._is_imgaug:
            return self._adapter(image, masks, seed)
        t = self._thread_copy()
        seed = int(seed) % (2**31)
        if hasattr(t, "set_random_state"):
            # One shared stream for the whole pipeline. (albumentations' Compose.set_random_seed gives
            # every child the *same* seed, so their apply/parameter draws are all correlated.)
            t.set_random_state(np.random.default_rng(seed), random.Random(seed))
        elif hasattr(t, "set_random_seed"):
            t.set_random_seed(seed)
        if len(masks) == 0:  # albumentations cannot stack an empty mask list
            out = t(image=image)
            return out["image"], np.zeros((0,) + out["image"].shape[:2], dtype=bool)
        out = t(image=image, masks=masks.astype(np.uint8))
        out_masks = np.asarray(out["masks"]).astype(bool).reshape((-1,) + out["image"].shape[:2])
        return out["image"], out_masks


def as_augmenter(augmentation) -> Augmenter | None:
    """None -> None; "default" -> the default policy; a transform -> wrapped."""
    if augmentation is None or augmentation is False:
        return None
    if isinstance(augmentation, Augmenter):
        return augmentation
    if isinstance(augmentation, str):
        if augmentation != "default":
            raise ValueError(f"augmentation must be None, 'default' or a transform, got {augmentation!r}")
        augmentation = default_augmentation()
    return Augmenter(augmentation)
