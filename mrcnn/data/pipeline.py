"""Training input pipeline: load -> resize/pad -> augment -> boxes -> mini-masks -> RPN targets -> tf.data.

:func:`load_image_gt` prepares one image in numpy (pure, seeded); :func:`build_dataset` turns a
prepared :class:`~mrcnn.data.dataset.Dataset` into a batched, prefetched ``tf.data.Dataset`` whose
elements are the model's input dict. Per-sample randomness comes from ``(seed, sample counter)``
only, so the stream is identical run to run with the same seed, whatever the thread count.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from mrcnn.ops.anchors import AnchorSpec
from mrcnn.ops.boxes import extract_bboxes
from mrcnn.ops.images import ResizeInfo, ResizeSpec, compose_image_meta, mold_image, resize_mask
from mrcnn.ops.masks import minimize_mask
from mrcnn.ops.rpn_targets import build_rpn_targets

from .augment import as_augmenter
from .dataset import Dataset
from .image_io import ImageReadError, InputStreamError

logger = logging.getLogger(__name__)

#: Samples skipped in a row (unreadable) before the stream stops with :class:`InputStreamError`.
MAX_CONSECUTIVE_SKIPS = 100


_STREAM_ERRORS: list[InputStreamError] = []  # raised inside tf.data threads; looked up by input_stream_error
_STREAM_LOCK = threading.Lock()


def input_stream_error(error: BaseException) -> InputStreamError | None:
    """The :class:`InputStreamError` behind a TensorFlow error from iterating a :func:`build_dataset`
    stream (TensorFlow re-raises it as an op error), or None."""
    if isinstance(error, InputStreamError):
        return error
    text = str(getattr(error, "message", error))
    if "InputStreamError" not in text and "after the check before training?" not in text:
        return None
    with _STREAM_LOCK:
        return _STREAM_ERRORS[-1] if _STREAM_ERRORS else InputStreamError(0, [text.splitlines()[0]])


INPUT_NAMES = (
    "input_image",
    "input_image_meta",
    "input_rpn_match",
    "input_rpn_bbox",
    "input_gt_class_ids",
    "input_gt_boxes",
    "input_gt_masks",
)


@dataclass
class ImageGT:
    """One image at network-input size with its ground truth."""

    image: np.ndarray  # [H, W, 3] uint8
    image_meta: np.ndarray  # [META]
    class_ids: np.ndarray  # [N] int32
    boxes: np.ndarray  # [N, 4] int32 pixel (y1, x1, y2, x2)
    masks: np.ndarray  # [H, W, N] or [mh, mw, N] bool (mini-masks)


def active_class_ids(dataset, config, image_id: int) -> np.ndarray:
    """1 for the classes of the image's source (Matterport's multi-source convention)."""
    active = np.zeros(config.NUM_CLASSES, dtype=np.int32)
    source = dataset.image_info[image_id]["source"]
    ids = dataset.source_class_ids.get(source, list(range(dataset.num_classes)))
    active[np.asarray(ids, dtype=int)] = 1
    return active


@dataclass(frozen=True)
class ResizedEntry:
    """One image and its ground truth at input size, before augmentation (read-only arrays)."""

    image: np.ndarray  # [H, W, 3] uint8
    masks: np.ndarray  # [H, W, N] bool
    class_ids: np.ndarray  # [N] int32
    original_shape: tuple
    info: ResizeInfo


class ResizedCache:
    """Images and masks already at input size, by image id, up to ``budget_mb`` of RAM.

    The first epoch decodes, rasterises and resizes as before; later ones start from here. On
    large photos with many instances that is most of a sample's time, and the input threads
    share the CPU with the train step. Entries are read-only (augmentation returns new arrays);
    once the budget is spent, the rest of the images are loaded every time. Thread-safe: when
    input threads ask for the same id at once (an epoch's end overlaps the next one's start), one
    loads it and the others wait for its entry instead of decoding the file again.
    """

    def __init__(self, budget_mb: float):
        self.budget = int(budget_mb * 2**20)
        self.used = 0
        self._items: dict[int, ResizedEntry] = {}
        self._loading: dict[int, threading.Event] = {}
        self._lock = threading.Lock()

    def get(self, image_id: int) -> ResizedEntry | None:
        with self._lock:
            return self._items.get(image_id)

    def get_or_load(self, image_id: int, load) -> ResizedEntry:
        """The cached entry, else ``load()``'s, kept if it fits. Concurrent calls for one id load once;
        the others wait for it (and load for themselves only if it failed or did not fit)."""
        with self._lock:
            entry = self._items.get(image_id)
            if entry is not None:
                return entry
            done = self._loading.get(image_id)
            loads_it = done is None
            if loads_it:
                done = self._loading[image_id] = threading.Event()
        if not loads_it:
            done.wait()
            return self.get(image_id) or load()
        try:
            entry = load()
            self.put(image_id, entry)
            return entry
        finally:
            with self._lock:
                del self._loading[image_id]
            done.set()

    def put(self, image_id: int, entry: ResizedEntry) -> None:
        arrays = (entry.image, entry.masks, entry.class_ids)
        size = sum(a.nbytes for a in arrays)
        with self._lock:
            if image_id in self._items or self.used + size > self.budget:
                return
            for a in arrays:
                a.flags.writeable = False
            self._items[image_id] = entry
            self.used += size

    def __len__(self) -> int:
        return len(self._items)


def resize_is_deterministic(config) -> bool:
    """Whether an image's resize is the same every time (all modes but "crop"), so it can be cached."""
    return ResizeSpec.from_config(config).deterministic


def input_cache(config) -> ResizedCache | None:
    """The config's :class:`ResizedCache`, or None (no budget, or random crops)."""
    if config.INPUT_CACHE_MB <= 0 or not resize_is_deterministic(config):
        return None
    return ResizedCache(config.INPUT_CACHE_MB)


def load_image_gt(
    dataset,
    config,
    image_id: int,
    augmentation=None,
    rng: np.random.Generator | None = None,
    use_mini_mask: bool | None = None,
    cache: ResizedCache | None = None,
) -> ImageGT:
    """Load, resize, augment one image and its masks; recompute boxes from the final masks.
    ``cache`` keeps the resized image and masks for the next call with this id (see
    :class:`ResizedCache`; never with IMAGE_RESIZE_MODE "crop", whose resize is random)."""
    rng = rng or np.random.default_rng()

    def load_resized() -> ResizedEntry:
        image = dataset.load_image(image_id)
        masks, class_ids = dataset.load_mask(image_id)
        resized, info = ResizeSpec.from_config(config).resize(image, rng)
        return ResizedEntry(resized, resize_mask(masks, info), np.asarray(class_ids, dtype=np.int32), image.shape, info)

    if cache is not None and resize_is_deterministic(config):
        entry = cache.get_or_load(image_id, load_resized)
    else:
        entry = load_resized()
    image, masks, class_ids = entry.image, entry.masks, entry.class_ids

    augmenter = as_augmenter(augmentation)
    if augmenter is not None:
        before = image.shape
        image, masks_nhw = augmenter(image, np.transpose(masks, (2, 0, 1)), seed=int(rng.integers(2**31)))
        if image.shape != before:
            raise ValueError(
                f"augmentation changed the image shape {before} -> {image.shape}; "
                "use size-preserving transforms (batching needs a fixed size)"
            )
        masks = np.transpose(masks_nhw, (1, 2, 0))

    keep = masks.any(axis=(0, 1))  # instances cropped away by resize/augment (works for N == 0 too)
    masks, class_ids = masks[:, :, keep], class_ids[keep]
    boxes = extract_bboxes(masks)
    mini = config.USE_MINI_MASK if use_mini_mask is None else use_mini_mask
    if mini:
        masks = minimize_mask(boxes, masks, config.MINI_MASK_SHAPE)
    meta = compose_image_meta(
        image_id,
        entry.original_shape,
        image.shape,
        entry.info.window,
        entry.info.scale,
        active_class_ids(dataset, config, image_id),
    )
    return ImageGT(image, meta, class_ids, boxes, masks)


def training_sample(
    dataset, config, image_id: int, augmentation, seed, cache: ResizedCache | None = None
) -> dict[str, np.ndarray]:
    """Everything the training graph needs for one image, padded to fixed shapes."""
    rng = np.random.default_rng(seed)
    gt = load_image_gt(dataset, config, image_id, augmentation, rng, cache=cache)
    class_ids, boxes, masks = gt.class_ids, gt.boxes, gt.masks
    if len(class_ids) > config.MAX_GT_INSTANCES:
        keep = np.sort(rng.choice(len(class_ids), config.MAX_GT_INSTANCES, replace=False))
        class_ids, boxes, masks = class_ids[keep], boxes[keep], masks[:, :, keep]
    anchors = AnchorSpec.from_config(config).anchors(gt.image.shape)
    rpn_match, rpn_bbox = build_rpn_targets(
        anchors,
        class_ids,
        boxes,
        anchors_per_image=config.RPN_TRAIN_ANCHORS_PER_IMAGE,
        bbox_std_dev=config.RPN_BBOX_STD_DEV,
        rng=rng,
    )
    n, cap = len(class_ids), config.MAX_GT_INSTANCES
    padded_ids = np.zeros(cap, np.int32)
    padded_ids[:n] = class_ids
    padded_boxes = np.zeros((cap, 4), np.float32)
    padded_boxes[:n] = boxes
    padded_masks = np.zeros(masks.shape[:2] + (cap,), np.uint8)  # uint8: bool breaks tf.distribute
    padded_masks[:, :, :n] = masks
    return {
        "input_image": mold_image(gt.image, config),
        "input_image_meta": gt.image_meta.astype(np.float32),
        "input_rpn_match": rpn_match[:, None].astype(np.int32),
        "input_rpn_bbox": rpn_bbox.astype(np.float32),
        "input_gt_class_ids": padded_ids,
        "input_gt_boxes": padded_boxes,
        "input_gt_masks": padded_masks,
    }


def input_signature(config) -> dict[str, tf.TensorSpec]:
    """Static shapes of one (unbatched) training sample."""
    h, w = int(config.IMAGE_SHAPE[0]), int(config.IMAGE_SHAPE[1])
    num_anchors = len(AnchorSpec.from_config(config).anchors((h, w)))
    mask_shape = tuple(config.MINI_MASK_SHAPE) if config.USE_MINI_MASK else (h, w)
    cap = config.MAX_GT_INSTANCES
    return {
        "input_image": tf.TensorSpec((h, w, config.IMAGE_CHANNEL_COUNT), tf.float32),
        "input_image_meta": tf.TensorSpec((config.IMAGE_META_SIZE,), tf.float32),
        "input_rpn_match": tf.TensorSpec((num_anchors, 1), tf.int32),
        "input_rpn_bbox": tf.TensorSpec((config.RPN_TRAIN_ANCHORS_PER_IMAGE, 4), tf.float32),
        "input_gt_class_ids": tf.TensorSpec((cap,), tf.int32),
        "input_gt_boxes": tf.TensorSpec((cap, 4), tf.float32),
        "input_gt_masks": tf.TensorSpec(mask_shape + (cap,), tf.uint8),
    }


def _is_readable(ok, sample):
    return ok


def _without_flag(ok, sample):
    return sample


def readable_image_ids(dataset, image_ids: np.ndarray, show: int = 10) -> np.ndarray:
    """``image_ids`` [N] without the images that cannot be decoded (each logged as a warning naming the
    file); raises ``ValueError`` when none is left. Datasets that are not a
    :class:`~mrcnn.data.dataset.Dataset` are returned unchecked (their bad samples are skipped later)."""
    if not isinstance(dataset, Dataset):
        return image_ids
    unreadable = dataset.unreadable_images()
    bad = [i for i in image_ids.tolist() if i in unreadable]
    if not bad:
        return image_ids
    if len(bad) == len(image_ids):
        raise ValueError(f"none of the {len(bad)} images can be read, e.g. {unreadable[bad[0]]}")
    for i in bad[:show]:
        logger.warning("Skipping an unreadable image (not used for training): %s", unreadable[i])
    if len(bad) > show:
        logger.warning("... and %d more unreadable images skipped", len(bad) - show)
    return np.asarray([i for i in image_ids.tolist() if i not in unreadable], dtype=np.int64)


def build_dataset(
    dataset,
    config,
    *,
    shuffle: bool = True,
    augmentation=None,
    seed: int | None = 0,
    repeat: bool = True,
    batch_size: int | None = None,
    drop_remainder: bool = True,
    num_parallel_calls=tf.data.AUTOTUNE,
    shard: tuple[int, int] = (1, 0),
    pass_samples: int | None = None,
    max_skips: int = MAX_CONSECUTIVE_SKIPS,
) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of batched training inputs (dict) from a prepared Dataset.

    Loading runs in parallel threads (``tf.numpy_function``); order and content are deterministic
    for a given ``seed``. Images without any instance are kept: they train the RPN's negatives.
    Unreadable images (truncated, corrupt, missing) never stop training: every image is decoded once
    here and the bad ones are left out with a warning naming the file; one that breaks later is
    skipped when met, with a warning. ``ValueError`` when no image can be read. Iterating raises
    (as a TensorFlow error; :func:`input_stream_error` finds it) an :class:`InputStreamError` once
    every image has failed or ``max_skips`` samples in a row were skipped, so a stream whose
    files vanish mid-run stops with the files named instead of waiting for a readable sample forever.
    ``shard=(count, index)``: keep every count-th sample of the seeded stream from ``index`` (one
    input pipeline of a multi-worker run; the shards of one seed are disjoint and share its order).
    ``pass_samples=N`` (validation): the first N samples (images cycled if fewer), with the same random
    draws, over and over, so each pass of N yields the same batches (needs ``shuffle=False``).
    """
    image_ids = np.asarray(dataset.image_ids, dtype=np.int64)
    if len(image_ids) == 0:
        raise ValueError("the dataset has no images: did you call dataset.prepare() after loading?")
    image_ids = readable_image_ids(dataset, image_ids)
    if not ResizeSpec.from_config(config).fixed_size:
        raise ValueError("batched training needs IMAGE_RESIZE_MODE 'square' or 'crop' (fixed input size)")
    augmenter = as_augmenter(augmentation)
    seed = int(np.random.SeedSequence().entropy % (2**31)) if seed is None else int(seed)
    spec = input_signature(config)
    names = list(spec)

    empty = [np.zeros(spec[k].shape, spec[k].dtype.as_numpy_dtype) for k in names]
    cache = input_cache(config)
    failed: set[int] = set()
    skips = {"count": 0, "last": []}  # samples skipped in a row, and the last errors
    lock = threading.Lock()
    bound = int(max_skips)

    def load(counter, image_id):
        try:
            sample = training_sample(dataset, config, int(image_id), augmenter, seed=[seed, int(counter)], cache=cache)
        except (ImageReadError, OSError) as exc:  # became unreadable after the check: skip, don't crash
            with lock:
                first = int(image_id) not in failed
                failed.add(int(image_id))
                skips["count"] += 1
                skips["last"] = (skips["last"] + [str(exc).splitlines()[0]])[-3:]
                # Nothing left to train on, or (a shard sees only part of the images) too many misses in
                # a row: stop instead of filtering an endless stream of skips.
                all_failed = len(failed) == len(image_ids)
                stop = all_failed or skips["count"] >= bound
                count, last = skips["count"], list(skips["last"])
            if stop:
                error = InputStreamError(count, last, len(image_ids) if all_failed else None)
                with _STREAM_LOCK:
                    _STREAM_ERRORS[:] = [error]
                raise error from exc
            if first:
                logger.warning("Skipping an unreadable training image: %s", exc)
            return [np.bool_(False)] + empty
        with lock:
            skips["count"] = 0
        return [np.bool_(True)] + [sample[k] for k in names]

    def tf_load(counter, image_id):
        ok, *outs = tf.numpy_function(
            load, [counter, image_id], [tf.bool] + [spec[k].dtype for k in names], stateful=False
        )
        return ok, {k: tf.ensure_shape(t, spec[k].shape) for k, t in zip(names, outs)}

    if pass_samples is not None:
        if shuffle:
            raise ValueError("pass_samples repeats the same samples: use it with shuffle=False")
        # Numbered before repeating: each pass draws the same random numbers (seed, position).
        ds = tf.data.Dataset.from_tensor_slices(np.resize(image_ids, int(pass_samples))).enumerate()
        ds = ds.repeat() if repeat else ds
    else:
        ds = tf.data.Dataset.from_tensor_slices(image_ids)
        if shuffle:
            ds = ds.shuffle(len(image_ids), seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        ds = ds.enumerate()
    if shard[0] > 1:
        ds = ds.shard(*shard)  # before loading: each worker reads only its own images
    ds = ds.map(tf_load, num_parallel_calls=num_parallel_calls, deterministic=True)
    ds = ds.filter(_is_readable).map(_without_flag)
    ds = ds.batch(batch_size or config.BATCH_SIZE, drop_remainder=drop_remainder)
    options = tf.data.Options()
    options.deterministic = True
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)
