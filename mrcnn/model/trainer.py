"""The training model: custom ``train_step``/``test_step`` with the five losses, weight decay,
clipped SGD, per-head diagnostics; per-layer learning rates (layer-wise decay down the backbone);
the learning-rate warm-up; the checkpoint callback (atomic, best-by-val-loss)."""

from __future__ import annotations

import os
import re
import shutil
import time

import keras
import tensorflow as tf

from mrcnn import runs
from mrcnn.ops.boxes import compute_overlaps_tf
from mrcnn.ops.images import parse_image_meta_tf

from .box_head import box_losses
from .mask_head import mask_accuracy, mask_losses
from .rpn import rpn_losses
from .weights import save_weights_by_name

LOSS_NAMES = ("rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss", "mrcnn_bbox_loss", "mrcnn_mask_loss")
DIAGNOSTICS = ("rpn_recall", "roi_positive_fraction", "mask_accuracy")


class MaskRCNNTrainingModel(keras.Model):
    """Functional training graph whose ``train_step`` computes Matterport's losses."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_weights_cfg = {k: 1.0 for k in LOSS_NAMES}
        self.weight_decay = 0.0
        self.gradient_scales = None  # per trainable variable, from layer_lr_scales (None: all 1)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("loss",) + LOSS_NAMES + DIAGNOSTICS}

    def configure(self, loss_weights: dict, weight_decay: float):
        self.loss_weights_cfg = {k: float(loss_weights.get(k, 1.0)) for k in LOSS_NAMES}
        self.weight_decay = float(weight_decay)

    @property
    def metrics(self):
        return list(self.trackers.values())

    # ---------------------------------------------------------------------------------- losses
    def compute_losses(self, x, out) -> dict[str, tf.Tensor]:
        """The five losses by name: the RPN's two, the box head's two, the mask head's one."""
        active = parse_image_meta_tf(x["input_image_meta"])["active_class_ids"]
        return {
            **rpn_losses(x["input_rpn_match"], x["input_rpn_bbox"], out["rpn_class_logits"], out["rpn_bbox"]),
            **box_losses(
                out["target_class_ids"],
                out["target_bbox"],
                out["mrcnn_class_logits"],
                out["mrcnn_bbox"],
                active,
                out["rois"],
            ),
            **mask_losses(out["target_mask"], out["mask_class_ids"], out["mrcnn_mask"]),
        }

    def diagnostics(self, x, out) -> dict[str, tf.Tensor]:
        gt = out["gt_boxes_normalized"]
        real_gt = tf.cast(x["input_gt_class_ids"] > 0, tf.float32)
        best = tf.reduce_max(compute_overlaps_tf(gt, out["rpn_rois"]), axis=2)  # [B, G]
        hits = tf.cast(best >= 0.5, tf.float32) * real_gt
        real_rois = tf.cast(tf.reduce_any(tf.not_equal(out["rois"], 0.0), axis=-1), tf.float32)
        positives = tf.cast(out["target_class_ids"] > 0, tf.float32)
        return {
            "rpn_recall": tf.math.divide_no_nan(tf.reduce_sum(hits), tf.reduce_sum(real_gt)),
            "roi_positive_fraction": tf.math.divide_no_nan(tf.reduce_sum(positives), tf.reduce_sum(real_rois)),
            "mask_accuracy": mask_accuracy(out["target_mask"], out["mask_class_ids"], out["mrcnn_mask"]),
        }

    def l2_penalty(self):
        """Matterport's weight decay: WD * sum(w^2) / size(w) over trainable weights, BN gamma/beta excluded."""
        terms = [
            tf.reduce_sum(tf.square(tf.cast(v, tf.float32))) / tf.cast(tf.size(v), tf.float32)
            for v in self.trainable_variables
            if not v.path.endswith(("gamma", "beta"))
        ]
        return self.weight_decay * tf.add_n(terms) if terms else tf.constant(0.0)

    def _total(self, parts):
        return tf.add_n([self.loss_weights_cfg[k] * parts[k] for k in LOSS_NAMES])

    def _record(self, total, parts, diag):
        self.trackers["loss"].update_state(total)
        for k, v in {**parts, **diag}.items():
            self.trackers[k].update_state(v)
        return {m.name: m.result() for m in self.metrics}

    # ---------------------------------------------------------------------------------- steps
    def train_step(self, data):
        x = data[0] if isinstance(data, tuple) else data
        with tf.GradientTape() as tape:
            out = self(x, training=True)
            with tf.name_scope("losses"):
                parts = self.compute_losses(x, out)
            with tf.name_scope("weight_decay"):
                total = self._total(parts) + self.l2_penalty()
            # Gradients are summed over replicas by the optimizer: average them here.
            scaled = total / tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, tf.float32)
            if hasattr(self.optimizer, "scale_loss"):
                scaled = self.optimizer.scale_loss(scaled)
        variables = self.trainable_variables
        grads = tape.gradient(scaled, variables)
        if self.gradient_scales is not None:  # SGD: a scaled gradient is that variable's learning rate scaled
            grads = [g if s == 1.0 or g is None else g * s for g, s in zip(grads, self.gradient_scales)]
        self.optimizer.apply(grads, variables)
        with tf.name_scope("diagnostics"):
            diagnostics = self.diagnostics(x, out)
        return self._record(total, parts, diagnostics)

    def test_step(self, data):
        x = data[0] if isinstance(data, tuple) else data
        out = self(x, training=False)
        parts = self.compute_losses(x, out)
        return self._record(self._total(parts), parts, self.diagnostics(x, out))


_RESNET_STAGE = re.compile(r"^(?:res|bn)([2-5])|^(?:bn_)?conv1(?:/|$)")


def backbone_stage(variable_path: str) -> int | None:
    """The ResNet stage (1 = conv1, 2..5 = res2..res5, their BN included) a variable belongs to, in
    Matterport's layer names; None outside the ResNet backbone (FPN, RPN, heads, other backbones)."""
    m = _RESNET_STAGE.match(variable_path)
    if not m:
        return None
    return int(m.group(1)) if m.group(1) else 1


def layer_lr_scales(variables, decay: float) -> list[float]:
    """Layer-wise learning-rate decay: ``decay ** (5 - stage)`` for the backbone's variables (res5 at
    the full rate, res4 at ``decay``, ... conv1 at ``decay ** 4``), 1 for the rest."""
    if not 0.0 < decay <= 1.0:
        raise ValueError(f"the layer-wise learning-rate decay must be in (0, 1], got {decay}")
    scales = []
    for v in variables:
        stage = backbone_stage(v.path)
        scales.append(1.0 if stage is None else float(decay) ** (5 - stage))
    return scales


class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """``learning_rate`` after a linear ramp from ``learning_rate * start_factor`` over the run's first
    ``warmup_steps`` steps (torchvision's and Detectron2's warm-up). ``first_step``: the run's step count
    when this optimizer starts, so a later stage or a resume goes on with the ramp."""

    def __init__(self, learning_rate: float, warmup_steps: int, first_step: int = 0, start_factor: float = 0.001):
        self.learning_rate = float(learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.first_step = int(first_step)
        self.start_factor = float(start_factor)

    def __call__(self, step):
        run_step = tf.cast(step, tf.float32) + float(self.first_step)
        progress = tf.minimum(run_step / float(max(self.warmup_steps, 1)), 1.0)
        return self.learning_rate * (self.start_factor + (1.0 - self.start_factor) * progress)

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "warmup_steps": self.warmup_steps,
            "first_step": self.first_step,
            "start_factor": self.start_factor,
        }


def learning_rate_schedule(learning_rate: float, warmup_steps: int, first_step: int):
    """The plain ``learning_rate`` once the run is past its warm-up, else a :class:`LinearWarmup`."""
    if first_step >= warmup_steps:
        return float(learning_rate)
    return LinearWarmup(learning_rate, warmup_steps, first_step)


class CheckpointCallback(keras.callbacks.Callback):
    """Each epoch: write ``mask_rcnn_<name>_<epoch>.h5`` atomically, keep ``best.h5`` by ``monitor``,
    and ``history.jsonl`` + ``state.json`` (last epoch, best value and epoch, seconds spent in epochs) through :mod:`mrcnn.runs`."""

    def __init__(self, checkpoint_path_fn, log_dir, monitor="val_loss"):
        super().__init__()
        self.checkpoint_path_fn = checkpoint_path_fn
        self.log_dir = log_dir
        self.monitor = monitor
        state = runs.read_state(log_dir)
        self.best = float(state.get("best", float("inf")))
        self.best_epoch = state.get("best_epoch")
        self.train_seconds = float(state.get("train_seconds", 0.0))  # the run's epochs so far, resumes included
        self._epoch_started = None
        runs.remove_stale_temp_files(log_dir)  # left by a killed run: the run starts or resumes here

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._epoch_started is not None:
            self.train_seconds += time.perf_counter() - self._epoch_started
        path = self.checkpoint_path_fn(epoch + 1)
        # The epoch's checkpoint appears last, after its history line and state: --weights last resumes
        # from the newest checkpoint, so a kill before the rename re-trains this epoch (its history line
        # written again, the last one wins) instead of resuming after an epoch the history lacks.
        with runs.atomic_write(path) as checkpoint:
            save_weights_by_name(self.model, checkpoint)
            value = logs.get(self.monitor, logs.get("loss"))
            if value is not None and float(value) < self.best:
                self.best, self.best_epoch = float(value), epoch + 1
                with runs.atomic_write(os.path.join(self.log_dir, runs.BEST_FILE)) as tmp:
                    shutil.copyfile(checkpoint, tmp)  # the checkpoint just written: no second serialisation
            runs.record_epoch(
                self.log_dir,
                epoch + 1,
                logs,
                best=self.best,
                best_epoch=self.best_epoch,
                monitor=self.monitor,
                last_checkpoint=path,
                train_seconds=round(self.train_seconds, 2),
            )
