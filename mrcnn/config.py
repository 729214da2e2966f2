"""Mask R-CNN configuration: Matterport's attribute names and defaults, validated.

Subclass :class:`Config` and override class attributes, exactly as with Matterport::

    class BalloonConfig(Config):
        NAME = "balloon"
        NUM_CLASSES = 1 + 1
        IMAGES_PER_GPU = 1

Derived values (``BATCH_SIZE``, ``IMAGE_SHAPE``, ``IMAGE_META_SIZE``) are computed in ``__init__``,
and :meth:`Config.validate` explains what is inconsistent. A config can be written to and read from
a small JSON/YAML file (:meth:`save`, :meth:`load`, :meth:`apply_file`) so every run records what it used.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from mrcnn.runs import atomic_write

#: Attributes computed from the others; never read from a file.
DERIVED = ("BATCH_SIZE", "IMAGE_SHAPE", "IMAGE_META_SIZE")

#: Resize modes understood by :func:`mrcnn.ops.images.resize_image`.
RESIZE_MODES = ("none", "square", "pad64", "crop")
MIXED_PRECISION_POLICIES = ("mixed_float16", "mixed_bfloat16")  # True means the first

#: Backbones built into :mod:`mrcnn.model.backbone` with their feature strides (C2..C5 -> P2..P6).
KNOWN_BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "mobilenetv2")


class ConfigError(ValueError):
    """A configuration value is missing or inconsistent with another one."""


class Config:
    """Base configuration; subclass it and override what differs."""

    NAME: str | None = None
    GPU_COUNT: int = 1
    IMAGES_PER_GPU: int = 2
    STEPS_PER_EPOCH: int = 1000
    VALIDATION_STEPS: int = 50

    # Backbone: a name from KNOWN_BACKBONES or a callable ``f(input_image, config) -> [C2, C3, C4, C5]``.
    BACKBONE: Any = "resnet101"
    # Only needed for a callable BACKBONE: ``f(image_shape) -> np.array([[h, w], ...])`` per level.
    COMPUTE_BACKBONE_SHAPE: Any = None
    BACKBONE_STRIDES: list[int] = [4, 8, 16, 32, 64]
    FPN_CLASSIF_FC_LAYERS_SIZE: int = 1024
    TOP_DOWN_PYRAMID_SIZE: int = 256

    NUM_CLASSES: int = 1  # including background

    # Anchor side lengths in pixels *of the resized network input*, one per pyramid level.
    RPN_ANCHOR_SCALES: tuple[int, ...] = (32, 64, 128, 256, 512)
    RPN_ANCHOR_RATIOS: list[float] = [0.5, 1, 2]  # width / height
    RPN_ANCHOR_STRIDE: int = 1
    # Width of the RPN's shared 3x3 conv. Matterport's 512 (mask_rcnn_coco.h5 has it); torchvision
    # and Detectron2 keep the FPN's width (TOP_DOWN_PYRAMID_SIZE), for half or less of its cost.
    RPN_CONV_CHANNELS: int = 512
    RPN_NMS_THRESHOLD: float = 0.7
    RPN_TRAIN_ANCHORS_PER_IMAGE: int = 256
    PRE_NMS_LIMIT: int = 6000
    POST_NMS_ROIS_TRAINING: int = 2000
    POST_NMS_ROIS_INFERENCE: int = 1000

    USE_MINI_MASK: bool = True
    MINI_MASK_SHAPE: tuple[int, int] = (56, 56)

    IMAGE_RESIZE_MODE: str = "square"
    IMAGE_MIN_DIM: int = 800
    IMAGE_MAX_DIM: int = 1024
    IMAGE_MIN_SCALE: float = 0
    IMAGE_CHANNEL_COUNT: int = 3
    MEAN_PIXEL = np.array([123.7, 116.8, 103.9])

    TRAIN_ROIS_PER_IMAGE: int = 200
    ROI_POSITIVE_RATIO: float = 0.33
    POOL_SIZE: int = 7
    MASK_POOL_SIZE: int = 14
    MASK_SHAPE: list[int] = [28, 28]
    MAX_GT_INSTANCES: int = 100

    RPN_BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])
    BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])

    DETECTION_MAX_INSTANCES: int = 100
    DETECTION_MIN_CONFIDENCE: float = 0.7
    DETECTION_NMS_THRESHOLD: float = 0.3

    LEARNING_RATE: float = 0.001
    LEARNING_MOMENTUM: float = 0.9
    # Linear learning-rate warm-up over the run's first N optimizer steps, from LEARNING_RATE / 1000
    # (torchvision's and Detectron2's recipe; Matterport has none: 0). Counted from the run's start, so a
    # later stage or a resume goes on with the ramp instead of starting it again.
    LEARNING_RATE_WARMUP_STEPS: int = 0
    WEIGHT_DECAY: float = 0.0001
    LOSS_WEIGHTS: dict[str, float] = {
        "rpn_class_loss": 1.0,
        "rpn_bbox_loss": 1.0,
        "mrcnn_class_loss": 1.0,
        "mrcnn_bbox_loss": 1.0,
        "mrcnn_mask_loss": 1.0,
    }
    TRAIN_BN: bool | None = False
    GRADIENT_CLIP_NORM: float = 5.0

    # Additions of ours (not in Matterport), all optional.
    MASK_HEAD_CHANNELS: int = 256  # width of the mask head's convs (Matterport: 256)
    # Keras dtype policy while the model is built (mrcnn.model.precision): False = float32, True or
    # "mixed_float16" (GPUs, with loss scaling), "mixed_bfloat16" (TPUs, Ampere+ GPUs, bf16 CPUs),
    # "auto" (bfloat16 on a CPU with bfloat16 instructions and no GPU, float32 elsewhere).
    MIXED_PRECISION: bool | str = False
    # RAM for training images and masks already resized to the input size, so later epochs skip
    # decoding, rasterising and resizing (IMAGE_RESIZE_MODE "crop" draws a new crop each time and
    # is never cached). Per input pipeline: training and validation each have their own. 0 turns it
    # off, e.g. for a Dataset whose load_image/load_mask vary per call.
    INPUT_CACHE_MB: int = 1024
    SEED: int | None = 42  # data order / augmentation seed (train.py: weight init too); None = nondeterministic

    def __init__(self, **overrides: Any):
        for key, value in overrides.items():
            self._set(key, value)
        self._compute_derived()

    # ------------------------------------------------------------------ derived values
    def _compute_derived(self) -> None:
        self.BATCH_SIZE = self.IMAGES_PER_GPU * self.GPU_COUNT
        side = self.IMAGE_MIN_DIM if self.IMAGE_RESIZE_MODE == "crop" else self.IMAGE_MAX_DIM
        self.IMAGE_SHAPE = np.array([side, side, self.IMAGE_CHANNEL_COUNT])
        # image_id(1) + original shape(3) + resized shape(3) + window(4) + scale(1) + active class ids
        self.IMAGE_META_SIZE = 1 + 3 + 3 + 4 + 1 + self.NUM_CLASSES

    def _set(self, key: str, value: Any) -> None:
        if key in DERIVED:
            raise ConfigError(f"{key} is computed from other values and cannot be set")
        if not hasattr(self, key) and key != key.upper():
            raise ConfigError(f"unknown config attribute {key!r} (attributes are UPPER_CASE)")
        if key in ("MEAN_PIXEL", "RPN_BBOX_STD_DEV", "BBOX_STD_DEV"):
            value = np.asarray(value, dtype=np.float64)
        setattr(self, key, value)

    # ------------------------------------------------------------------ validation
    def validate(self) -> Config:
        """Check that values are consistent; raise :class:`ConfigError` naming the problem."""
        problems = []
        if not self.NAME:
            problems.append("NAME is not set: give your config a name (it names the run folders)")
        if int(self.NUM_CLASSES) < 2:
            problems.append(f"NUM_CLASSES={self.NUM_CLASSES}: it counts the background, so it must be >= 2")
        if not callable(self.BACKBONE) and self.BACKBONE not in KNOWN_BACKBONES:
            problems.append(f"BACKBONE={self.BACKBONE!r} is not one of {KNOWN_BACKBONES} or a callable")
        if callable(self.BACKBONE) and self.COMPUTE_BACKBONE_SHAPE is None:
            problems.append("a callable BACKBONE needs COMPUTE_BACKBONE_SHAPE as well")
        if len(self.RPN_ANCHOR_SCALES) != len(self.BACKBONE_STRIDES):
            problems.append(
                f"RPN_ANCHOR_SCALES has {len(self.RPN_ANCHOR_SCALES)} values but BACKBONE_STRIDES has "
                f"{len(self.BACKBONE_STRIDES)}: one anchor scale per pyramid level is needed"
            )
        if any(s <= 0 for s in self.RPN_ANCHOR_SCALES) or any(r <= 0 for r in self.RPN_ANCHOR_RATIOS):
            problems.append("RPN_ANCHOR_SCALES and RPN_ANCHOR_RATIOS must be positive")
        if len(self.RPN_ANCHOR_RATIOS) == 0:
            problems.append("RPN_ANCHOR_RATIOS is empty")
        if (
            not isinstance(self.INPUT_CACHE_MB, (int, float))
            or isinstance(self.INPUT_CACHE_MB, bool)
            or self.INPUT_CACHE_MB < 0
        ):
            problems.append(f"INPUT_CACHE_MB={self.INPUT_CACHE_MB!r} must be a number of MB >= 0 (0 = no cache)")
        if not (isinstance(self.MIXED_PRECISION, bool) or self.MIXED_PRECISION in (*MIXED_PRECISION_POLICIES, "auto")):
            problems.append(
                f'MIXED_PRECISION={self.MIXED_PRECISION!r} must be False, True, "auto" or one of '
                f"{MIXED_PRECISION_POLICIES}"
            )
        if (
            not isinstance(self.LEARNING_RATE_WARMUP_STEPS, int)
            or isinstance(self.LEARNING_RATE_WARMUP_STEPS, bool)
            or self.LEARNING_RATE_WARMUP_STEPS < 0
        ):
            problems.append(
                f"LEARNING_RATE_WARMUP_STEPS={self.LEARNING_RATE_WARMUP_STEPS!r} must be a whole number "
                f"of steps >= 0 (0 = no warm-up)"
            )
        if int(self.RPN_CONV_CHANNELS) < 1:
            problems.append(f"RPN_CONV_CHANNELS={self.RPN_CONV_CHANNELS} must be >= 1 (Matterport's is 512)")
        if self.IMAGE_RESIZE_MODE not in RESIZE_MODES:
            problems.append(f"IMAGE_RESIZE_MODE={self.IMAGE_RESIZE_MODE!r} is not one of {RESIZE_MODES}")
        side = self.IMAGE_MIN_DIM if self.IMAGE_RESIZE_MODE == "crop" else self.IMAGE_MAX_DIM
        if self.IMAGE_RESIZE_MODE in ("square", "crop") and side % 64:
            problems.append(
                f"image side {side} must be divisible by 64 (2**6) so every FPN level halves cleanly; "
                f"try {max(64, side // 64 * 64)} or {(side // 64 + 1) * 64}"
            )
        if (
            self.IMAGE_MIN_DIM
            and self.IMAGE_MAX_DIM
            and self.IMAGE_MIN_DIM > self.IMAGE_MAX_DIM
            and self.IMAGE_RESIZE_MODE == "square"
        ):
            problems.append(f"IMAGE_MIN_DIM={self.IMAGE_MIN_DIM} is larger than IMAGE_MAX_DIM={self.IMAGE_MAX_DIM}")
        if len(np.asarray(self.MEAN_PIXEL)) != self.IMAGE_CHANNEL_COUNT:
            problems.append("MEAN_PIXEL must have one value per image channel")
        if not 0 < self.ROI_POSITIVE_RATIO <= 1:
            problems.append("ROI_POSITIVE_RATIO must be in (0, 1]")
        if list(self.MASK_SHAPE) != [2 * self.MASK_POOL_SIZE] * 2:
            problems.append(
                f"MASK_SHAPE={list(self.MASK_SHAPE)} must be twice MASK_POOL_SIZE "
                f"({self.MASK_POOL_SIZE}): the mask head upsamples by 2"
            )
        missing = set(Config.LOSS_WEIGHTS) - set(self.LOSS_WEIGHTS)
        if missing:
            problems.append(f"LOSS_WEIGHTS lacks {sorted(missing)}")
        if self.POST_NMS_ROIS_TRAINING < self.TRAIN_ROIS_PER_IMAGE:
            problems.append(
                f"POST_NMS_ROIS_TRAINING={self.POST_NMS_ROIS_TRAINING} is below "
                f"TRAIN_ROIS_PER_IMAGE={self.TRAIN_ROIS_PER_IMAGE}"
            )
        if self.IMAGES_PER_GPU < 1 or self.GPU_COUNT < 1:
            problems.append("IMAGES_PER_GPU and GPU_COUNT must be >= 1")
        if problems:
            raise ConfigError(f"{type(self).__name__} is invalid:\n  - " + "\n  - ".join(problems))
        return self

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """All UPPER_CASE attributes as plain JSON-able values (callables by their qualified name)."""
        out = {}
        for key in dir(self):
            if key.startswith("_") or key != key.upper():
                continue
            value = getattr(self, key)
            if isinstance(value, np.ndarray):
                value = value.tolist()
            elif isinstance(value, tuple):
                value = list(value)
            elif callable(value):
                value = f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', repr(value))}"
            elif isinstance(value, np.generic):
                value = value.item()
            out[key] = value
        return out

    def save(self, path: str) -> None:
        """Write the config as JSON (``.json``) or YAML (``.yaml``/``.yml``), atomically."""
        self.write_values(self.to_dict(), path)

    @staticmethod
    def write_values(data: dict[str, Any], path: str) -> None:
        """Write a mapping of config values as JSON or YAML (by extension), atomically."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with atomic_write(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            if path.endswith((".yaml", ".yml")):
                import yaml

                yaml.safe_dump(data, f, sort_keys=True)
            else:
                json.dump(data, f, indent=2, sort_keys=True)

    @staticmethod
    def read_file(path: str) -> dict[str, Any]:
        """Read overrides from a JSON or YAML file; error messages name the file."""
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
        try:
            if path.endswith((".yaml", ".yml")):
                import yaml

                data = yaml.safe_load(text) or {}
            else:
                data = json.loads(text)
        except Exception as e:  # json.JSONDecodeError / yaml.YAMLError
            raise ConfigError(
                f"config file {path} is not valid {'YAML' if path.endswith(('yaml', 'yml')) else 'JSON'}: {e}"
            ) from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping of NAME: value")
        return data

    def apply(self, overrides: dict[str, Any], source: str = "overrides") -> Config:
        """Set values from a mapping (derived keys in it are ignored), recompute derived values."""
        for key, value in overrides.items():
            if key in DERIVED:
                continue
            if key != key.upper():
                raise ConfigError(f"{source}: {key!r} is not a config attribute (attributes are UPPER_CASE)")
            if key == "BACKBONE" and isinstance(value, str) and "." in value:
                continue  # a callable recorded by name cannot be restored from a file
            self._set(key, value)
        self._compute_derived()
        return self

    def apply_file(self, path: str) -> Config:
        return self.apply(self.read_file(path), source=path)

    @classmethod
    def load(cls, path: str) -> Config:
        """A config of this class with the values of a saved file applied."""
        return cls().apply_file(path)

    # ------------------------------------------------------------------ display
    def display(self) -> None:
        """Print every attribute, as Matterport does."""
        print("\nConfigurations:")
        for key, value in self.to_dict().items():
            print(f"{key:30} {value}")
        print()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} NAME={self.NAME!r} BACKBONE={self.BACKBONE!r} NUM_CLASSES={self.NUM_CLASSES}>"
