"""The whole training path learns: a few hundred real train steps on two synthetic images
overfit them, and detect() then finds every ground-truth mask (mask IoU > 0.5)."""
from __future__ import annotations

import numpy as np

import facemask
from mrcnn.data.dataset import Dataset
from mrcnn.model import MaskRCNN
from mrcnn.ops.masks import compute_overlaps_masks


def _subset(dataset, image_ids):
    """A prepared dataset holding only ``image_ids`` of ``dataset`` (same classes)."""
    sub = type(dataset)()
    for info in dataset.class_info[1:]:
        sub.add_class(info["source"], info["id"], info["name"])
    for i in image_ids:
        info = dict(dataset.image_info[i])
        sub.add_image(info.pop("source"), info.pop("id"), info.pop("path"), **info)
    sub.prepare()
    return sub


def test_training_overfits_two_images(tiny_facemask_dir, tmp_path):
    full = facemask.load_dataset(str(tiny_facemask_dir), "train", verbose=False)
    with_masks = [i for i in full.image_ids if full.load_mask(i)[0].shape[-1] > 0][:2]
    data = _subset(full, with_masks)
    assert isinstance(data, Dataset) and len(data.image_ids) == 2

    config = facemask.make_config("tiny", STEPS_PER_EPOCH=60, VALIDATION_STEPS=1, IMAGES_PER_GPU=2)
    model = MaskRCNN("training", config, str(tmp_path))
    model.train(data, None, learning_rate=0.02, epochs=4, layers="all", verbose=0)
    model.train(data, None, learning_rate=0.002, epochs=5, layers="all", verbose=0)

    inference = MaskRCNN("inference", facemask.make_config("tiny", inference=True, DETECTION_MIN_CONFIDENCE=0.5),
                         str(tmp_path))
    inference.load_weights(model.find_last())
    for image_id in data.image_ids:
        gt_masks, _ = data.load_mask(image_id)
        result = inference.detect([data.load_image(image_id)])[0]
        assert result["masks"].shape[:2] == gt_masks.shape[:2]
        iou = compute_overlaps_masks(gt_masks, result["masks"])
        best = iou.max(axis=1) if iou.size else np.zeros(gt_masks.shape[-1])
        assert (best > 0.5).all(), f"image {image_id}: best mask IoU per GT {best.round(2)}"
