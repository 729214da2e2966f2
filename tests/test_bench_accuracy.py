"""bench/accuracy.py's torch-free parts: the budget -> stages sizing, and saved torchvision detections
scored by our metric code after a round trip through the npz (masks bit-packed)."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
accuracy = pytest.importorskip("accuracy")


def test_ours_stages_fit_the_budget():
    stages, steps_per_epoch = accuracy.ours_stages(900, 0.85, 0.01)  # 15 min at 0.85 s/step
    assert (stages, steps_per_epoch) == ("all:0.01:16,all:0.001:21", 50)  # 1,050 steps ~ 1,059 wanted
    stages, steps_per_epoch = accuracy.ours_stages(5, 0.85, 0.01)  # tiny budgets still give two stages
    assert (stages, steps_per_epoch) == ("all:0.01:1,all:0.001:2", 3)
    # Fine-tuning the synthetic pretraining: the first fifth of stage one on the heads (train.py's default).
    assert accuracy.ours_stages(900, 0.85, 0.01, synthetic=True)[0] == "heads:0.01:3,all:0.01:16,all:0.001:21"


def test_method_names_and_table_order(tmp_path):
    import argparse
    import json

    def name(weights, decay=None):
        return accuracy.ours_method(argparse.Namespace(ours_weights=weights, ours_layer_lr_decay=decay))

    assert [name("none"), name("synthetic"), name("none", 0.5)] == ["ours", "ours+synthetic", "ours+lld0.5"]
    for method in ("torchvision", "ours+synthetic", "ours+lld0.5", "ours"):
        (tmp_path / "set").mkdir(exist_ok=True)
        (tmp_path / "set" / f"{method}.json").write_text(json.dumps({"dataset": "set", "method": method}))
    (tmp_path / "set" / "torchvision_train.json").write_text("{}")  # the worker's record: not a row
    assert [r["method"] for r in accuracy.collect(tmp_path)] == ["ours", "ours+lld0.5", "ours+synthetic", "torchvision"]


def test_saved_detections_replay_through_evaluate_model(tmp_path):
    from mrcnn.data.dataset import Dataset
    from mrcnn.evaluation import evaluate_model

    masks = np.zeros((2, 40, 60, 1), bool)
    masks[0, 5:20, 10:30, 0] = True
    masks[1, 10:35, 20:50, 0] = True

    class TwoImages(Dataset):
        def load_image(self, image_id):
            return np.zeros((40, 60, 3), np.uint8)

        def load_mask(self, image_id):
            return masks[image_id], np.array([1])

    dataset = TwoImages()
    dataset.add_class("t", 1, "thing")
    for i in range(2):
        dataset.add_image("t", image_id=i, path=None)
    dataset.prepare()
    # Image 0: exact mask; image 1: a false positive scored above the right one (AP 1 still, as ranked).
    wrong = np.zeros((40, 60, 1), bool)
    wrong[0:5, 0:5] = True
    predictions = [
        {"rois": np.array([[5, 10, 20, 30]]), "class_ids": np.array([1]), "scores": np.array([0.9]), "masks": masks[0]},
        {
            "rois": np.array([[0, 0, 5, 5], [10, 20, 35, 50]]),
            "class_ids": np.array([1, 1]),
            "scores": np.array([0.5, 0.3]),
            "masks": np.concatenate([wrong, masks[1]], -1),
        },
    ]
    accuracy.save_predictions(tmp_path / "p.npz", predictions)
    loaded = accuracy.load_predictions(tmp_path / "p.npz")
    assert all(np.array_equal(a["masks"], b["masks"]) for a, b in zip(loaded, predictions))
    evaluator, _ = evaluate_model(
        accuracy.ReplayDetector(loaded),
        dataset,
        progress=False,
        keep_examples=0,
        reference_confidence=0.4,
        reference_max=100,
    )
    summary = evaluator.summary()
    assert summary["mask_mAP50"] == pytest.approx((1.0 + 0.5) / 2)  # image 1: hit at rank 2 -> AP 0.5
    assert summary["mask_mAP50_at_min_confidence"] == pytest.approx((1.0 + 0.0) / 2)  # 0.3 cut at 0.4
