"""The whole training path learns: a few hundred real train steps on two synthetic images
overfit them, and detect() then finds every ground-truth mask (mask IoU > 0.5), in float32 and with
the same weights under MIXED_PRECISION (float16, bfloat16)."""

from __future__ import annotations

import copy

import numpy as np

import facemask
from mrcnn.data.dataset import Dataset
from mrcnn.model import MaskRCNN
from mrcnn.ops.boxes import compute_overlaps
from mrcnn.ops.masks import compute_overlaps_masks

# detect() under MIXED_PRECISION vs float32, same weights (measured: box and mask IoU >= 0.997, scores
# within 1e-4): a detection agrees when its box IoU and mask IoU reach MIN_IOU and its score is within SCORE_TOLERANCE.
MIN_IOU, SCORE_TOLERANCE = 0.9, 0.01


def _subset(dataset, image_ids):
    """A copy of the prepared ``dataset`` holding only ``image_ids`` (same classes, same reader)."""
    sub = copy.deepcopy(dataset)
    sub.image_info = [dict(dataset.image_info[i]) for i in image_ids]
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

    inference = MaskRCNN(
        "inference", facemask.make_config("tiny", inference=True, DETECTION_MIN_CONFIDENCE=0.5), str(tmp_path)
    )
    inference.load_weights(model.find_last())
    for image_id in data.image_ids:
        gt_masks, _ = data.load_mask(image_id)
        assert gt_masks.shape[-1] > 0  # trained on real objects, so the check below means something
        result = inference.detect([data.load_image(image_id)])[0]
        assert result["masks"].shape[:2] == gt_masks.shape[:2]
        iou = compute_overlaps_masks(gt_masks, result["masks"])
        best = iou.max(axis=1) if iou.size else np.zeros(gt_masks.shape[-1])
        assert (best > 0.5).all(), f"image {image_id}: best mask IoU per GT {best.round(2)}"

    # The same weights under MIXED_PRECISION (float16 / bfloat16 convs, float32 box geometry) give the
    # same detections: every float32 one is found again, box IoU and mask IoU high, score close.
    for policy in (True, "mixed_bfloat16"):
        mixed = MaskRCNN(
            "inference",
            facemask.make_config("tiny", inference=True, DETECTION_MIN_CONFIDENCE=0.5, MIXED_PRECISION=policy),
            str(tmp_path),
        )
        mixed.load_weights(model.find_last())
        for image_id in data.image_ids:
            image = data.load_image(image_id)
            plain, other = inference.detect([image])[0], mixed.detect([image])[0]
            assert len(plain["class_ids"]) and len(other["class_ids"]) == len(plain["class_ids"]), policy
            box_iou = compute_overlaps(plain["rois"].astype(float), other["rois"].astype(float))
            match = box_iou.argmax(axis=1)
            mask_iou = compute_overlaps_masks(plain["masks"], other["masks"])[np.arange(len(match)), match]
            assert (box_iou.max(axis=1) >= MIN_IOU).all() and (mask_iou >= MIN_IOU).all(), (policy, box_iou, mask_iou)
            assert np.abs(plain["scores"] - other["scores"][match]).max() <= SCORE_TOLERANCE, policy
