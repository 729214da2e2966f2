"""Face-mask segmentation on top of :mod:`mrcnn`: config profiles, classes and the VIA dataset,
and the commands (``python -m facemask.train``, ``facemask.evaluate``, ``facemask.inference``,
``facemask.app``, ``facemask.export``, ``facemask.fit_anchors``, ``facemask.synthetic``).

``import facemask`` is light (no TensorFlow): the commands import what they need when they run.
"""

from .data import (
    ALIASES,
    ANNOTATION_FILE,
    CLASS_KEY,
    CLASS_MODES,
    SINGLE_CLASS,
    SUBTYPES,
    ClassSpec,
    FaceMaskDataset,
    load_dataset,
)
from .profiles import PROFILES, FaceMaskConfig, FaceMaskCPUConfig, FaceMaskTinyConfig, make_config

__all__ = [
    "ALIASES",
    "ANNOTATION_FILE",
    "CLASS_KEY",
    "CLASS_MODES",
    "SINGLE_CLASS",
    "SUBTYPES",
    "ClassSpec",
    "FaceMaskDataset",
    "load_dataset",
    "PROFILES",
    "FaceMaskConfig",
    "FaceMaskCPUConfig",
    "FaceMaskTinyConfig",
    "make_config",
]
