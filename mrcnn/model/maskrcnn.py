"""``MaskRCNN``: Matterport's API (train / detect / load_weights / find_last) on Keras 3."""

from __future__ import annotations

import datetime
import gc
import math
import os
import re
import traceback

import keras
import numpy as np
import tensorflow as tf

from mrcnn import runs
from mrcnn.ops.boxes import unmold_boxes
from mrcnn.ops.images import ResizeSpec, compose_image_meta, mold_image
from mrcnn.ops.masks import paste_masks

from .backbone import BatchNorm
from .graph import build_inference_graph, build_training_graph
from .loop import chief_value, distributed_inputs, is_chief, run_epochs, step_functions
from .mask_head import select_class_masks
from .precision import LossScaleOptimizer, build_policy, needs_loss_scaling, policy_name
from .trainer import CheckpointCallback, MaskRCNNTrainingModel, layer_lr_scales, learning_rate_schedule
from .weights import CLASS_SPECIFIC_HEADS, iter_layers, load_weights_by_name, save_weights_by_name

_HEADS = r"(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)"
_RESNET_FROM = {3: r"(res[3-5].*)|(bn[3-5].*)", 4: r"(res[4-5].*)|(bn[4-5].*)", 5: r"(res5.*)|(bn5.*)"}
_MOBILENET_FROM = {
    3: r"(block_([3-9]|1[0-6])_.*)|(Conv_1.*)",
    4: r"(block_([6-9]|1[0-6])_.*)|(Conv_1.*)",
    5: r"(block_1[3-6]_.*)|(Conv_1.*)",
}


def layer_regex(layers: str, backbone="resnet101") -> str:
    """Matterport's named layer groups ('heads', '3+', '4+', '5+', 'all') or a regex unchanged."""
    if layers == "heads":
        return _HEADS
    if layers == "all":
        return ".*"
    m = re.fullmatch(r"([345])\+", layers)
    if m:
        stages = _MOBILENET_FROM if backbone == "mobilenetv2" else _RESNET_FROM
        return f"{stages[int(m.group(1))]}|{_HEADS}"
    try:
        re.compile(layers)
    except re.error as e:
        raise ValueError(f"layers={layers!r} is neither heads/3+/4+/5+/all nor a valid regex: {e}") from None
    return layers


_OOM_HELP = """out of memory while training ({error}).
Lower, in this order: IMAGES_PER_GPU (batch size), IMAGE_MAX_DIM/IMAGE_MIN_DIM, TRAIN_ROIS_PER_IMAGE,
POST_NMS_ROIS_TRAINING, MAX_GT_INSTANCES; or pick a smaller BACKBONE (resnet50, resnet18), or set
MIXED_PRECISION = True on a GPU."""


def validation_steps(config, val_dataset) -> int:
    """VALIDATION_STEPS, but no more batches than it takes to see every val image once: the val
    batches are the same each epoch, so more steps would only repeat images (Matterport's default
    of 50 steps on its 13-image balloon val set)."""
    return max(1, min(int(config.VALIDATION_STEPS), math.ceil(len(val_dataset.image_ids) / config.BATCH_SIZE)))


def _last_epoch(log_dir: str, default: int) -> int:
    """The epoch of the last checkpoint written in ``log_dir`` (after an interrupted fit)."""
    from mrcnn.runs import read_state

    return int(read_state(log_dir).get("epoch", default)) if log_dir and os.path.isdir(log_dir) else default


class MaskRCNN:
    """Mask R-CNN in ``mode="training"`` or ``"inference"``.

    ``strategy``: a ``tf.distribute`` strategy (``MirroredStrategy()``, or
    ``MultiWorkerMirroredStrategy()`` in each worker process) to build and train under; set
    ``config.GPU_COUNT`` to its replica count so BATCH_SIZE is the global batch. In a cluster every
    worker makes the same calls; only the chief writes the run folder.
    """

    def __init__(self, mode: str, config, model_dir: str, strategy: tf.distribute.Strategy | None = None):
        if mode not in ("training", "inference"):
            raise ValueError(f"mode must be 'training' or 'inference', got {mode!r}")
        config.validate()
        self.mode, self.config, self.model_dir = mode, config, model_dir
        self.strategy = strategy or tf.distribute.get_strategy()
        self.epoch = 0
        self.log_dir = None
        self.set_log_dir()
        with self.strategy.scope(), build_policy(config.MIXED_PRECISION):
            if mode == "training":
                self.keras_model = build_training_graph(config, model_class=MaskRCNNTrainingModel)
                self.keras_model.configure(config.LOSS_WEIGHTS, config.WEIGHT_DECAY)
            else:
                self.keras_model = build_inference_graph(config)
        self._predict_fn = None

    # -------------------------------------------------------------------------------- run folders
    def set_log_dir(self, model_path: str | None = None) -> None:
        """New timestamped run folder, or the folder (and epoch) of ``model_path`` when it is one
        of our checkpoints, so training continues where it stopped. The workers of a cluster all
        take the chief's clock, so they agree on the folder."""
        name = self.config.NAME or "model"
        parsed = runs.parse_checkpoint_path(model_path, name) if model_path else None
        if parsed:
            self.log_dir, self.epoch = parsed
            return
        now = datetime.datetime.fromtimestamp(chief_value(self.strategy, datetime.datetime.now().timestamp()))
        self.log_dir = runs.new_run_dir(self.model_dir, name, when=now)

    def checkpoint_path(self, epoch: int) -> str:
        return runs.checkpoint_path(self.log_dir, self.config.NAME or "model", epoch)

    def find_last(self) -> str:
        """The newest checkpoint of the newest run folder of this config's NAME."""
        return runs.find_last_checkpoint(self.model_dir, self.config.NAME or "model")

    # -------------------------------------------------------------------------------- weights
    def load_weights(self, filepath: str, by_name: bool = True, exclude=None, verbose: int = 1):
        """Load a by-name h5 (Matterport's ``mask_rcnn_coco.h5`` or our checkpoints).

        ``exclude``: layer names/regexes to skip, e.g. the class-specific heads when NUM_CLASSES
        differs. If ``filepath`` is one of our checkpoints, the run folder and epoch are resumed.
        """
        if not by_name:
            raise ValueError("only by_name=True is supported: weights are matched by layer name")
        report = load_weights_by_name(self.keras_model, filepath, exclude=exclude, verbose=verbose)
        if exclude and set(CLASS_SPECIFIC_HEADS) & set(report.excluded) and self.mode == "inference":
            print("Warning: the class-specific heads were excluded and are untrained: train before detecting.")
        self.set_log_dir(filepath)
        return report

    def save_weights(self, filepath: str) -> None:
        save_weights_by_name(self.keras_model, filepath)

    def get_imagenet_weights(self) -> str:
        """ImageNet ResNet-50 weights, downloaded once into Keras' cache, MD5-checked.

        This is the keras-applications v0.2 release file, whose layer names (``conv1``,
        ``res2a_branch2a``, ``bn2a_branch2a`` ...) are the ones our ResNet uses, so it loads by name
        (Matterport used the same file). ``MRCNN_IMAGENET_WEIGHTS`` replaces the source
        (:mod:`mrcnn.model.pretrained`).
        """
        from .pretrained import PRETRAINED, fetch_pretrained

        if self.config.BACKBONE not in PRETRAINED["imagenet"].backbones:
            raise ValueError(
                f"the ImageNet weights are a ResNet-50; BACKBONE is {self.config.BACKBONE!r}: use "
                "BACKBONE='resnet50', COCO weights for resnet101, or train small backbones from scratch"
            )
        return fetch_pretrained("imagenet")

    # -------------------------------------------------------------------------------- training
    def layers_matching(self, layers: str) -> list[str]:
        """Names of the weighted layers that ``layers`` (a named group or a regex) selects for training.
        A selection that matches no layer is an error: it would train nothing, silently."""
        regex = re.compile(layer_regex(layers, self.config.BACKBONE))
        names = [layer.name for layer in iter_layers(self.keras_model) if layer.weights and regex.fullmatch(layer.name)]
        if not names:
            raise ValueError(
                f"layers={layers!r} matches no layer of the model; use heads, 3+, 4+, 5+, all or a "
                "regex on layer names (e.g. 'mrcnn_.*' or '(res5.*)|(mrcnn_.*)')"
            )
        return names

    def set_trainable(self, layers: str, verbose: int = 0) -> list[str]:
        """Make the layers ``layers`` selects (see :meth:`layers_matching`) trainable, freeze the rest.
        Returns the names of trainable layers."""
        selected = set(self.layers_matching(layers))
        trained = []
        for layer in iter_layers(self.keras_model):
            if not layer.weights:
                continue
            trainable = layer.name in selected
            # Plain Keras BN (e.g. in MobileNetV2) would switch to batch statistics when trainable.
            inner = getattr(layer, "layer", layer)
            if (
                isinstance(inner, keras.layers.BatchNormalization)
                and not isinstance(inner, BatchNorm)
                and self.config.TRAIN_BN is False
            ):
                trainable = False
            layer.trainable = trainable
            if trainable:
                trained.append(layer.name)
        if verbose:
            print(f"Training {len(trained)} layers matching {layers!r}")
        return trained

    def _run_steps(self) -> int:
        """Optimizer steps the run has taken in its completed epochs (where a stage or a resume starts)."""
        return self.epoch * self.config.STEPS_PER_EPOCH

    def compile(self, learning_rate: float, momentum: float) -> None:
        """Clipped SGD at ``learning_rate``, ramped up over the run's first LEARNING_RATE_WARMUP_STEPS."""
        schedule = learning_rate_schedule(
            learning_rate, self.config.LEARNING_RATE_WARMUP_STEPS, first_step=self._run_steps()
        )
        with self.strategy.scope():
            optimizer = keras.optimizers.SGD(
                learning_rate=schedule, momentum=momentum, global_clipnorm=self.config.GRADIENT_CLIP_NORM
            )
            if needs_loss_scaling(self.config.MIXED_PRECISION):
                optimizer = LossScaleOptimizer(optimizer)
            self.keras_model.compile(optimizer=optimizer, jit_compile=False)
            # Built here, in the strategy's scope: its slots must be mirrored like the weights.
            optimizer.build(self.keras_model.trainable_variables)

    def train(
        self,
        train_dataset,
        val_dataset,
        learning_rate: float,
        epochs: int,
        layers: str,
        augmentation=None,
        custom_callbacks=None,
        no_augmentation_sources=None,
        verbose: int = 1,
        layer_lr_decay: float | None = None,
    ):
        """Train ``layers`` until epoch ``epochs`` (continuing from ``self.epoch``), as Matterport.

        ``layer_lr_decay`` (0, 1]: the backbone's stages train at lower rates the earlier they are
        (res5 at ``learning_rate``, res4 at ``learning_rate * decay``, ... conv1 at ``decay ** 4``;
        :func:`~mrcnn.model.trainer.layer_lr_scales`); None: every layer at ``learning_rate``.

        ``augmentation``: None, "default" (albumentations policy) or an albumentations/imgaug
        transform. Checkpoints each epoch in ``self.log_dir``; TensorBoard logs beside them.
        Runs the tf.distribute loop of :mod:`mrcnn.model.loop` (not ``fit``); ``custom_callbacks``
        run on every worker, the checkpoint and TensorBoard callbacks on the chief only.
        """
        if self.mode != "training":
            raise ValueError("create the model with mode='training' to train")
        if no_augmentation_sources:
            raise ValueError("no_augmentation_sources is not supported; pass augmentation=None instead")
        cfg = self.config
        if epochs <= self.epoch:
            print(f"Already at epoch {self.epoch} >= {epochs}: nothing to train for this stage.")
            return None
        strategy, chief = self.strategy, is_chief(self.strategy)
        replicas = strategy.num_replicas_in_sync
        if replicas > 1 and cfg.GPU_COUNT != replicas:
            raise ValueError(
                f"config GPU_COUNT={cfg.GPU_COUNT} but the strategy has {replicas} replicas: "
                f"set GPU_COUNT={replicas} (BATCH_SIZE is the global batch)"
            )
        if chief:  # the other workers of a cluster never write into the run folder
            os.makedirs(self.log_dir, exist_ok=True)
            cfg.save(os.path.join(self.log_dir, "config.json"))
        train_ds, val_ds, val_steps = self._input_datasets(train_dataset, val_dataset, augmentation)
        self.set_trainable(layers, verbose=verbose and chief)
        self.keras_model.gradient_scales = (
            None if layer_lr_decay is None else layer_lr_scales(self.keras_model.trainable_variables, layer_lr_decay)
        )
        self.compile(learning_rate, cfg.LEARNING_MOMENTUM)
        callbacks = (
            [
                keras.callbacks.TensorBoard(log_dir=self.log_dir, histogram_freq=0, write_graph=False),
                CheckpointCallback(
                    self.checkpoint_path, self.log_dir, monitor="val_loss" if val_ds is not None else "loss"
                ),
            ]
            if chief
            else []
        )
        callbacks += list(custom_callbacks or [])  # on every worker, as fit runs them
        if verbose and chief:
            warmup = cfg.LEARNING_RATE_WARMUP_STEPS - self._run_steps()
            ramp = f" (warm-up: linear ramp over the next {warmup} steps)" if warmup > 0 else ""
            compute = policy_name(cfg.MIXED_PRECISION)
            dtype = f", compute {compute} (MIXED_PRECISION={cfg.MIXED_PRECISION!r})" if compute != "float32" else ""
            decay = f", layer-wise LR decay {layer_lr_decay:g} down the backbone" if layer_lr_decay else ""
            print(
                f"\nStarting at epoch {self.epoch}. LR={learning_rate}{ramp}{decay}, layers={layers}{dtype}\n"
                f"Checkpoint path: {self.checkpoint_path(0).replace('0000', '*')}"
            )
        try:
            history = run_epochs(
                self.keras_model,
                strategy,
                train_ds,
                val_ds,
                initial_epoch=self.epoch,
                epochs=epochs,
                steps_per_epoch=cfg.STEPS_PER_EPOCH,
                validation_steps=val_steps,
                callbacks=callbacks,
                verbose=verbose if chief else 0,
            )
        except BaseException as error:  # also Ctrl-C
            # The traceback's frames hold the tf.data iterators, whose loader threads need the GIL;
            # destroyed at interpreter exit they deadlock. Drop the frames' locals now (the
            # traceback's lines stay) so the pipeline shuts down while Python still runs.
            traceback.clear_frames(error.__traceback__)
            del train_ds, val_ds
            gc.collect()
            self.epoch = _last_epoch(self.log_dir, self.epoch)
            if isinstance(error, tf.errors.ResourceExhaustedError):
                raise MemoryError(_OOM_HELP.format(error=error.message.splitlines()[0])) from error
            from mrcnn.data.pipeline import input_stream_error

            stream_error = input_stream_error(error) if isinstance(error, tf.errors.OpError) else None
            if stream_error is not None:  # the input files went away: say so, not a TF op traceback
                raise stream_error from None
            raise
        self.epoch = max(self.epoch, epochs)
        return history

    def _input_datasets(self, train_dataset, val_dataset, augmentation):
        """(train, val, val_steps): the distributed input pipelines of :meth:`train`."""
        from mrcnn.data.pipeline import build_dataset

        cfg, strategy = self.config, self.strategy
        per_replica = cfg.BATCH_SIZE // strategy.num_replicas_in_sync
        train_ds = distributed_inputs(
            strategy,
            lambda shard: build_dataset(
                train_dataset,
                cfg,
                shuffle=True,
                augmentation=augmentation,
                seed=cfg.SEED,
                batch_size=per_replica,
                shard=shard,
            ),
        )
        # The same val batches every epoch, so val_loss (which picks best.h5) compares epochs on the
        # same images, not on the next slice of a small val set.
        val_steps = validation_steps(cfg, val_dataset) if val_dataset is not None else 0
        val_ds = (
            distributed_inputs(
                strategy,
                lambda shard: build_dataset(
                    val_dataset,
                    cfg,
                    shuffle=False,
                    augmentation=None,
                    seed=cfg.SEED,
                    batch_size=per_replica,
                    shard=shard,
                    pass_samples=val_steps * cfg.BATCH_SIZE,
                ),
            )
            if val_dataset is not None
            else None
        )
        return train_ds, val_ds, val_steps

    def time_steps(self, train_dataset, val_dataset, layers: str, steps: int = 5, augmentation=None) -> dict:
        """Seconds a train step of ``layers`` takes (median of ``steps`` after 2 untimed ones, which
        trace), a val step, and a checkpoint write, on the real input pipelines; every weight (BatchNorm
        statistics included) is put back afterwards, so training starts as if this never ran.
        Returns ``{"train_step", "val_step", "checkpoint", "trace"}`` in seconds."""
        import statistics
        import tempfile
        import time

        saved = self.keras_model.get_weights()
        train_ds, val_ds, _ = self._input_datasets(train_dataset, val_dataset, augmentation)
        self.set_trainable(layers)
        self.compile(self.config.LEARNING_RATE, self.config.LEARNING_MOMENTUM)
        train_fn, test_fn = step_functions(self.keras_model, self.strategy)

        def timed(fn, iterator, n):
            times = []
            for _ in range(n):
                start = time.perf_counter()
                fn(iterator)
                times.append(time.perf_counter() - start)
            return times

        started = time.perf_counter()
        train_iter = iter(train_ds)
        trace = sum(timed(train_fn, train_iter, 2))
        result = {"train_step": statistics.median(timed(train_fn, train_iter, steps)), "val_step": 0.0, "trace": trace}
        if val_ds is not None:
            val_iter = iter(val_ds)
            result["trace"] += timed(test_fn, val_iter, 1)[0]
            result["val_step"] = statistics.median(timed(test_fn, val_iter, 2))
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            save_weights_by_name(self.keras_model, os.path.join(tmp, "probe.h5"))
            result["checkpoint"] = time.perf_counter() - start
        result["total"] = time.perf_counter() - started
        self.keras_model.set_weights(saved)
        del train_iter, train_ds, val_ds
        gc.collect()
        return result

    # -------------------------------------------------------------------------------- inference
    def mold_inputs(self, images):
        """Resize/pad images to the network input; returns (molded [B,H,W,3], metas, windows)."""
        molded, metas, windows = [], [], []
        resize = ResizeSpec.from_config(self.config)
        for image in images:
            resized, info = resize.resize(image)
            molded.append(mold_image(resized, self.config))
            metas.append(
                compose_image_meta(
                    0, image.shape, resized.shape, info.window, info.scale, np.zeros(self.config.NUM_CLASSES, np.int32)
                )
            )
            windows.append(info.window)
        return np.stack(molded), np.stack(metas), np.array(windows)

    def unmold_detections(self, detections, mrcnn_mask, original_shape, image_shape, window):
        """One image's padded detections -> boxes in original pixels, class ids, scores, full masks."""
        zero = np.where(detections[:, 4] == 0)[0]
        n = zero[0] if len(zero) else detections.shape[0]
        boxes = detections[:n, :4]
        class_ids = detections[:n, 4].astype(np.int32)
        scores = detections[:n, 5]
        masks = select_class_masks(mrcnn_mask[:n], class_ids)
        boxes = unmold_boxes(boxes, window, image_shape, original_shape)
        keep = np.where((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))[0]
        boxes, class_ids, scores, masks = boxes[keep], class_ids[keep], scores[keep], masks[keep]
        return boxes, class_ids, scores, paste_masks(masks, boxes, original_shape)

    def _predict(self, molded, metas):
        if self._predict_fn is None:
            model = self.keras_model

            @tf.function(reduce_retracing=True, autograph=False)
            def fn(image, meta):
                return model({"input_image": image, "input_image_meta": meta}, training=False)

            self._predict_fn = fn
        out = self._predict_fn(tf.constant(molded), tf.constant(metas))
        return {k: v.numpy() for k, v in out.items()}

    def detect(self, images, verbose: int = 0) -> list[dict]:
        """Detect instances in RGB images of any size (a list; any length).

        Returns one dict per image: ``rois`` [N, 4] (y1, x1, y2, x2 in original pixels),
        ``class_ids`` [N], ``scores`` [N], ``masks`` [H, W, N] bool at the original size.
        """
        if self.mode != "inference":
            raise ValueError("create the model with mode='inference' to detect")
        images = [np.asarray(im) for im in images]
        results = []
        batch = self.config.BATCH_SIZE
        for start in range(0, len(images), batch):
            chunk = images[start : start + batch]
            # A short last batch is padded with copies of its last image: one batch shape, one trace.
            molded, metas, windows = self.mold_inputs(chunk + [chunk[-1]] * (batch - len(chunk)))
            out = self._predict(molded, metas)
            for i, image in enumerate(chunk):
                rois, class_ids, scores, masks = self.unmold_detections(
                    out["detections"][i], out["mrcnn_mask"][i], image.shape, molded[i].shape, windows[i]
                )
                results.append({"rois": rois, "class_ids": class_ids, "scores": scores, "masks": masks})
            if verbose:
                print(f"detect: {start + len(chunk)}/{len(images)} images")
        return results
