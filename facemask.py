"""Face-mask segmentation: configs and the VIA-backed dataset.

Two class modes:

* ``single``: one class, ``mask`` (as the original face-mask project);
* ``subtypes``: ``surgical``, ``n95``, ``cloth``, ``fashion`` from the region attribute ``mask_type``.

Three config profiles: :class:`FaceMaskConfig` (Matterport-sized, for a GPU: ResNet-101, 1024 px),
:class:`FaceMaskCPUConfig` (the 2-core demo: ResNet-18, 256 px) and :class:`FaceMaskTinyConfig`
(tests and CI smoke runs: 128 px, a handful of ROIs).
"""
from __future__ import annotations

import os

from mrcnn.config import Config
from mrcnn.data.via_dataset import ViaDataset

CLASS_KEY = "mask_type"
SUBTYPES = ("surgical", "n95", "cloth", "fashion")
CLASS_MODES = ("single", "subtypes")
#: Spellings seen in real face-mask annotations, mapped onto our subtypes.
ALIASES = {"kn95": "n95", "ffp2": "n95", "respirator": "n95", "medical": "surgical",
           "procedure": "surgical", "fabric": "cloth", "homemade": "cloth", "designer": "fashion"}
ANNOTATION_FILE = "via_region_data.json"


def num_classes(classes: str) -> int:
    if classes not in CLASS_MODES:
        raise ValueError(f"classes must be one of {CLASS_MODES}, got {classes!r}")
    return 1 + (1 if classes == "single" else len(SUBTYPES))


class FaceMaskConfig(Config):
    """GPU-sized defaults (Colab T4/A100): Matterport's ResNet-101 at 1024 px, fine-tuned from COCO."""

    NAME = "facemask"
    IMAGES_PER_GPU = 2
    NUM_CLASSES = 1 + 1
    STEPS_PER_EPOCH = 100
    VALIDATION_STEPS = 10
    DETECTION_MIN_CONFIDENCE = 0.9

    def __init__(self, classes: str = "single", **overrides):
        self.NUM_CLASSES = num_classes(classes)
        self.CLASSES = classes
        super().__init__(**overrides)


class FaceMaskCPUConfig(FaceMaskConfig):
    """The 2-CPU-core demo: small backbone and images, fewer ROIs; trains from scratch in minutes."""

    BACKBONE = "resnet18"
    IMAGE_MIN_DIM = 256
    IMAGE_MAX_DIM = 256
    IMAGES_PER_GPU = 2
    RPN_ANCHOR_SCALES = (16, 32, 64, 128, 256)
    TOP_DOWN_PYRAMID_SIZE = 128
    FPN_CLASSIF_FC_LAYERS_SIZE = 256
    RPN_TRAIN_ANCHORS_PER_IMAGE = 128
    PRE_NMS_LIMIT = 2000
    POST_NMS_ROIS_TRAINING = 300
    POST_NMS_ROIS_INFERENCE = 200
    TRAIN_ROIS_PER_IMAGE = 64
    MAX_GT_INSTANCES = 8
    MINI_MASK_SHAPE = (28, 28)
    DETECTION_MAX_INSTANCES = 20
    DETECTION_MIN_CONFIDENCE = 0.7
    STEPS_PER_EPOCH = 50
    VALIDATION_STEPS = 5
    LEARNING_RATE = 0.01
    MASK_HEAD_CHANNELS = 128  # a quarter of the mask-head FLOPs of 256 (0.72 s vs 1.1 s per step)
    TRAIN_BN = None  # from scratch: BatchNorm must learn its statistics


class FaceMaskTinyConfig(FaceMaskCPUConfig):
    """Seconds-long smoke runs (tests, CI, the notebook's tiny mode)."""

    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    TOP_DOWN_PYRAMID_SIZE = 64
    FPN_CLASSIF_FC_LAYERS_SIZE = 128
    PRE_NMS_LIMIT = 500
    POST_NMS_ROIS_TRAINING = 100
    POST_NMS_ROIS_INFERENCE = 50
    TRAIN_ROIS_PER_IMAGE = 32
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64
    STEPS_PER_EPOCH = 2
    VALIDATION_STEPS = 1


PROFILES = {"gpu": FaceMaskConfig, "cpu": FaceMaskCPUConfig, "tiny": FaceMaskTinyConfig}


def make_config(profile: str = "cpu", classes: str = "single", config_file: str | None = None,
                inference: bool = False, **overrides) -> Config:
    """A face-mask config of ``profile`` with overrides from ``config_file`` and keyword args.

    ``inference=True`` gives batch size 1, as detect() on single images wants.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}")
    config = PROFILES[profile](classes=classes)
    if config_file:
        config.apply_file(config_file)
    if inference:
        overrides = {"IMAGES_PER_GPU": 1, "GPU_COUNT": 1, **overrides}
    return config.apply(overrides).validate()


class FaceMaskDataset(ViaDataset):
    """VIA-annotated face-mask photos in Matterport's layout: ``DIR/train``, ``DIR/val``, each with a
    ``via_region_data.json``."""

    def load_facemask(self, dataset_dir: str, subset: str, classes: str = "single", *,
                      class_key: str = CLASS_KEY, annotation_file: str = ANNOTATION_FILE,
                      verbose: bool = True) -> dict:
        num_classes(classes)  # validates the mode
        folder = os.path.join(dataset_dir, subset)
        json_path = os.path.join(folder, annotation_file)
        if not os.path.isfile(json_path):
            raise FileNotFoundError(
                f"no annotations at {json_path}: expected {dataset_dir}/{subset}/{annotation_file} "
                "(VIA json + images, Matterport's layout). Generate demo data with "
                "`python -m tools.make_synthetic --out datasets/facemask`.")
        if classes == "single":
            return self.load_via(json_path, source="facemask", single_class="mask", verbose=verbose)
        return self.load_via(json_path, source="facemask", class_key=class_key, class_names=list(SUBTYPES),
                             aliases=ALIASES, verbose=verbose)


def load_dataset(dataset_dir: str, subset: str, classes: str = "single", verbose: bool = True) -> FaceMaskDataset:
    """A prepared :class:`FaceMaskDataset` for ``subset``."""
    dataset = FaceMaskDataset()
    dataset.load_facemask(dataset_dir, subset, classes, verbose=verbose)
    dataset.prepare()
    return dataset


def resolve_weights(spec: str, model_dir: str, name: str = "facemask") -> str | None:
    """``last`` -> newest checkpoint, ``coco`` -> the (downloaded) COCO file, ``none``/``imagenet``
    -> returned as is for the caller, anything else -> an existing file path."""
    from mrcnn.model.weights import get_coco_weights
    from mrcnn.runs import find_last_checkpoint

    key = spec.lower()
    if key == "last":
        return find_last_checkpoint(model_dir, name)
    if key == "coco":
        return get_coco_weights()
    if key in ("none", "imagenet"):
        return key
    if not os.path.isfile(spec):
        raise FileNotFoundError(f"weights file not found: {spec}")
    return spec


def config_for_weights(weights_path: str | None, profile: str = "cpu", classes: str = "single",
                       config_file: str | None = None, **overrides) -> Config:
    """Inference config matching a checkpoint: the run's saved ``config.json`` when there is one
    (so backbone, image size and classes match training), else ``profile``/``classes``."""
    from mrcnn.runs import run_config_path

    saved = run_config_path(weights_path) if weights_path and os.path.isfile(weights_path) else None
    if saved:
        config = FaceMaskConfig(classes=classes)
        config.apply_file(saved)
        if config_file:
            config.apply_file(config_file)
        return config.apply({"IMAGES_PER_GPU": 1, "GPU_COUNT": 1, **overrides}).validate()
    return make_config(profile, classes, config_file, inference=True, **overrides)
