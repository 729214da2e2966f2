"""Mask R-CNN model: graphs, layers, losses, weights and the ``MaskRCNN`` API class."""

from .maskrcnn import MaskRCNN, layer_regex

__all__ = ["MaskRCNN", "layer_regex"]
