"""Validation mAP while training: an optional Keras callback (``train.py --eval-every N``).

Every ``every`` epochs the current weights are copied by layer name into one inference model (built
once), which is evaluated on the val set with :func:`mrcnn.metrics.evaluate_model` exactly as
``evaluate.py`` does (detections ranked down to 0.05, and the figure at the config's
DETECTION_MIN_CONFIDENCE). The values go to ``<run>/val_map.json`` and ``<run>/val_map.png``,
beside ``losses.png``; a resumed run appends to them.
"""
from __future__ import annotations

import copy
import os

import keras

from mrcnn import runs

MAP_FILE = "val_map.json"
MAP_PLOT = "val_map.png"


class PeriodicEvaluation(keras.callbacks.Callback):
    """Val mask mAP@0.5 of ``maskrcnn`` (a training :class:`~mrcnn.model.maskrcnn.MaskRCNN`) on
    ``dataset`` every ``every`` epochs (``limit``: the first N val images only)."""

    def __init__(self, maskrcnn, dataset, every: int = 2, limit: int | None = None):
        super().__init__()
        self.maskrcnn, self.dataset, self.every, self.limit = maskrcnn, dataset, int(every), limit
        self._inference = None

    def _inference_model(self):
        if self._inference is None:
            from .maskrcnn import MaskRCNN

            from mrcnn.metrics import ranked_detection_settings

            config = copy.deepcopy(self.maskrcnn.config)
            ranked, self.reference = ranked_detection_settings(config)
            config.apply({"IMAGES_PER_GPU": 1, "GPU_COUNT": 1, **ranked})
            self._inference = MaskRCNN("inference", config, self.maskrcnn.model_dir)
        return self._inference

    def on_epoch_end(self, epoch, logs=None):
        from mrcnn.metrics import evaluate_model
        from mrcnn.visualize import plot_map_per_epoch

        from .loop import is_chief
        from .weights import copy_weights_by_name

        epoch += 1
        if epoch % self.every or not is_chief(self.maskrcnn.strategy):
            return
        inference = self._inference_model()
        copy_weights_by_name(self.maskrcnn.keras_model, inference.keras_model)
        evaluator, _ = evaluate_model(inference, self.dataset, limit=self.limit, progress=False, keep_examples=0,
                                      reference_confidence=self.reference[0], reference_max=self.reference[1])
        summary = evaluator.summary()
        log_dir = self.maskrcnn.log_dir
        path = os.path.join(log_dir, MAP_FILE)
        history = [r for r in runs.read_json(path).get("epochs", []) if r["epoch"] < epoch]
        def plain(value):  # NaN (no val image with GT) -> null in the JSON
            return None if value != value else float(value)

        history.append({"epoch": epoch, "mask_mAP50": plain(summary["mask_mAP50"]),
                        "mask_mAP50_at_min_confidence": plain(summary["mask_mAP50_at_min_confidence"])})
        runs.write_json(path, {"epochs": history})
        plot_map_per_epoch([r["epoch"] for r in history], {
            f"ranked (score >= {self._inference.config.DETECTION_MIN_CONFIDENCE:g})": [r["mask_mAP50"] for r in history],
            f"score >= {self.reference[0]:g}": [r["mask_mAP50_at_min_confidence"] for r in history]},
            os.path.join(log_dir, MAP_PLOT))
        print(f"\nepoch {epoch}: val mask mAP@0.5 {summary['mask_mAP50']:.3f} (ranked), "
              f"{summary['mask_mAP50_at_min_confidence']:.3f} at >= {self.reference[0]:g}")
