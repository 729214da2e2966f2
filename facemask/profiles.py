"""Face-mask config profiles: :class:`FaceMaskConfig` (Matterport-sized, for a GPU: ResNet-101,
1024 px), :class:`FaceMaskR50Config` (ResNet-50 at 512 px with Matterport's heads: a pretrained start
from ImageNet or COCO, on a CPU too), :class:`FaceMaskCPUConfig` (the 2-core demo: ResNet-18, 256 px)
and :class:`FaceMaskTinyConfig` (tests and CI smoke runs: 128 px, a handful of ROIs).

Each records its profile (``PROFILE``) and classes (``CLASSES``, ``CLASS_NAMES``, ``CLASS_KEY``),
so a run's ``config.json`` says everything evaluate/inference/export need.
"""

from __future__ import annotations

from mrcnn.config import Config

from .data import SINGLE_CLASS, ClassSpec


class FaceMaskConfig(Config):
    """GPU-sized defaults (Colab T4/A100): Matterport's ResNet-101 at 1024 px, fine-tuned from COCO."""

    NAME = "facemask"
    IMAGES_PER_GPU = 2
    NUM_CLASSES = 1 + 1
    STEPS_PER_EPOCH = 100
    VALIDATION_STEPS = 10
    DETECTION_MIN_CONFIDENCE = 0.9
    # torchvision's and Detectron2's per-class NMS IoU (Matterport: 0.3). At 0.3 an object whose box
    # overlaps a neighbour's by IoU > 0.3 (nested or touching objects, faces side by side) is suppressed:
    # on real food photos (plates around the food) that missed every plate, mAP@0.5 0.925 vs 0.991.
    DETECTION_NMS_THRESHOLD = 0.5

    PROFILE = "gpu"
    CLASSES = "single"  # the --classes mode; CLASS_NAMES are the names without BG
    CLASS_NAMES = (SINGLE_CLASS,)
    CLASS_KEY = None  # the VIA region attribute holding the class (None = detected)

    def __init__(self, classes: str | ClassSpec = "single", **overrides):
        spec = classes if isinstance(classes, ClassSpec) else ClassSpec.parse(classes)
        if spec.names:
            for key, value in spec.to_config().items():
                setattr(self, key, value)
        super().__init__(**overrides)

    @property
    def class_spec(self) -> ClassSpec:
        return ClassSpec(self.CLASSES, tuple(self.CLASS_NAMES), self.CLASS_KEY)


class FaceMaskR50Config(FaceMaskConfig):
    """ResNet-50 FPN at 512 px with Matterport's layer sizes, so ``--weights imagenet`` (the ResNet-50
    ImageNet file) and ``--weights coco`` (by name: ResNet-101's blocks that a ResNet-50 has) both load:
    a pretrained start for users with internet, on a GPU or a CPU."""

    PROFILE = "r50"
    BACKBONE = "resnet50"
    IMAGE_MIN_DIM = 512
    IMAGE_MAX_DIM = 512
    IMAGES_PER_GPU = 1
    RPN_ANCHOR_SCALES = (16, 32, 64, 128, 256)  # Matterport's 32-512 at half its 1024-px input
    POST_NMS_ROIS_TRAINING = 1000
    POST_NMS_ROIS_INFERENCE = 500
    TRAIN_ROIS_PER_IMAGE = 128
    MAX_GT_INSTANCES = 100
    DETECTION_MIN_CONFIDENCE = 0.7
    STEPS_PER_EPOCH = 50
    MIXED_PRECISION = "auto"  # bfloat16 on CPUs with bfloat16 instructions, float32 elsewhere


class FaceMaskCPUConfig(FaceMaskConfig):
    """The 2-CPU-core demo: small backbone and images, fewer ROIs; trains from scratch in minutes."""

    PROFILE = "cpu"
    BACKBONE = "resnet18"
    IMAGE_MIN_DIM = 256
    IMAGE_MAX_DIM = 256
    IMAGES_PER_GPU = 2
    RPN_ANCHOR_SCALES = (16, 32, 64, 128, 256)
    TOP_DOWN_PYRAMID_SIZE = 128
    RPN_CONV_CHANNELS = 128  # the FPN's width, as torchvision's: Matterport's 512: 0.505 s/step, this 0.41 s
    FPN_CLASSIF_FC_LAYERS_SIZE = 256
    RPN_TRAIN_ANCHORS_PER_IMAGE = 128
    PRE_NMS_LIMIT = 2000
    POST_NMS_ROIS_TRAINING = 300
    POST_NMS_ROIS_INFERENCE = 200
    TRAIN_ROIS_PER_IMAGE = 64
    MAX_GT_INSTANCES = 100  # Matterport's: real photos (crowds, droplets) have dozens per image
    MINI_MASK_SHAPE = (28, 28)
    DETECTION_MAX_INSTANCES = 20
    DETECTION_MIN_CONFIDENCE = 0.7
    STEPS_PER_EPOCH = 50
    VALIDATION_STEPS = 10  # the same 20 val images each epoch (all of a smaller set)
    LEARNING_RATE = 0.01
    MASK_HEAD_CHANNELS = 128  # a quarter of the mask-head FLOPs of 256 (0.72 s vs 1.1 s per step)
    TRAIN_BN = None  # from scratch: BatchNorm must learn its statistics
    # bfloat16 convolutions where the CPU has bfloat16 instructions (AMD Zen 4+, Intel Sapphire Rapids+):
    # a train step in 0.67x the float32 time (bench/precision.py), the same demo mAP; float32 elsewhere.
    MIXED_PRECISION = "auto"


class FaceMaskTinyConfig(FaceMaskCPUConfig):
    """Seconds-long smoke runs (tests, CI, the notebook's tiny mode)."""

    PROFILE = "tiny"
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    TOP_DOWN_PYRAMID_SIZE = 64
    RPN_CONV_CHANNELS = 64
    FPN_CLASSIF_FC_LAYERS_SIZE = 128
    PRE_NMS_LIMIT = 500
    POST_NMS_ROIS_TRAINING = 100
    POST_NMS_ROIS_INFERENCE = 50
    TRAIN_ROIS_PER_IMAGE = 32
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64
    STEPS_PER_EPOCH = 2
    VALIDATION_STEPS = 1
    MIXED_PRECISION = False  # the same float32 numbers on every machine the tests run on


PROFILES = {"gpu": FaceMaskConfig, "r50": FaceMaskR50Config, "cpu": FaceMaskCPUConfig, "tiny": FaceMaskTinyConfig}


def make_config(
    profile: str = "cpu",
    classes: str | ClassSpec = "single",
    config_file: str | None = None,
    inference: bool = False,
    **overrides,
) -> Config:
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
