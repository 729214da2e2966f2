"""Datasets and annotation readers (VIA 1.x/2.x, COCO) for Mask R-CNN."""

from .coco import CocoDataset
from .dataset import Dataset
from .image_io import ImageReadError, read_image_rgb, read_image_size, verify_image
from .shapes import RegionError, SkipRegion, region_bbox, region_to_mask
from .via import ViaFormatError, read_via, region_class_name, summarize
from .via_dataset import UnknownClassError, ViaDataset

__all__ = [
    "CocoDataset",
    "Dataset",
    "ViaDataset",
    "read_via",
    "read_image_rgb",
    "read_image_size",
    "verify_image",
    "region_to_mask",
    "region_bbox",
    "region_class_name",
    "summarize",
    "ImageReadError",
    "RegionError",
    "SkipRegion",
    "ViaFormatError",
    "UnknownClassError",
]
