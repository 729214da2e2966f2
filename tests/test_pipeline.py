"""Input pipeline on a tiny VIA dataset: load_image_gt, training_sample and build_dataset."""

import concurrent.futures
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from mrcnn.config import Config
from mrcnn.data import ViaDataset
from mrcnn.data.pipeline import (
    ResizedCache,
    ResizedEntry,
    build_dataset,
    input_cache,
    input_signature,
    load_image_gt,
    training_sample,
)
from mrcnn.data.shapes import region_to_mask
from mrcnn.ops.boxes import extract_bboxes
from mrcnn.ops.images import parse_image_meta, resize_image_for_config, resize_mask
from mrcnn.ops.masks import expand_mask

DARK, BRIGHT = 30, 230


class TinyConfig(Config):
    NAME = "t"
    NUM_CLASSES = 3
    BACKBONE = "resnet18"
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    IMAGES_PER_GPU = 2
    MAX_GT_INSTANCES = 4
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    MINI_MASK_SHAPE = (28, 28)


def rect(x, y, w, h, kind):
    return {
        "shape_attributes": {"name": "rect", "x": x, "y": y, "width": w, "height": h},
        "region_attributes": {"kind": kind},
    }


def polygon(xs, ys, kind):
    return {
        "shape_attributes": {"name": "polygon", "all_points_x": xs, "all_points_y": ys},
        "region_attributes": {"kind": kind},
    }


# name, (height, width), regions
IMAGES = [
    ("a.png", (100, 150), [rect(10, 20, 30, 25, "a"), polygon([80, 130, 130, 95], [40, 40, 90, 85], "b")]),
    ("b.jpg", (120, 120), [rect(5 + 38 * (i % 3), 5 + 55 * (i // 3), 28, 40, "ab"[i % 2]) for i in range(6)]),
    ("c.jpg", (90, 160), []),  # a negative image
    ("d.png", (128, 128), [rect(40, 40, 48, 48, "b")]),
]


def write_via(directory: Path, images=IMAGES) -> Path:
    """Dark images with every region drawn bright, and their VIA 2 json."""
    directory.mkdir(parents=True, exist_ok=True)
    via = {}
    for name, (h, w), regions in images:
        pixels = np.full((h, w, 3), DARK, np.uint8)
        for region in regions:
            pixels[region_to_mask(region["shape_attributes"], h, w)] = BRIGHT
        path = directory / name
        Image.fromarray(pixels).save(path, quality=95) if name.endswith(".jpg") else Image.fromarray(pixels).save(path)
        size = path.stat().st_size
        via[f"{name}{size}"] = {"filename": name, "size": size, "regions": regions, "file_attributes": {}}
    json_path = directory / "via_region_data.json"
    json_path.write_text(json.dumps(via))
    return json_path


def load_dataset(json_path: Path) -> ViaDataset:
    dataset = ViaDataset()
    dataset.load_via(json_path, class_names=["a", "b"], verbose=False)
    dataset.prepare()
    return dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> ViaDataset:
    return load_dataset(write_via(tmp_path_factory.mktemp("via")))


@pytest.fixture(scope="module")
def config() -> TinyConfig:
    return TinyConfig().validate()


def image_index(dataset, name):
    return next(i for i, info in enumerate(dataset.image_info) if info["id"] == name)


def test_dataset_fixture(dataset):
    assert dataset.class_names == ["BG", "a", "b"]
    assert len(dataset.image_ids) == 4
    assert dataset.load_mask(image_index(dataset, "b.jpg"))[0].shape == (120, 120, 6)


@pytest.mark.parametrize("name", [name for name, _, _ in IMAGES])
def test_load_image_gt_without_mini_mask(dataset, config, name):
    image_id = image_index(dataset, name)
    gt = load_image_gt(dataset, config, image_id, rng=np.random.default_rng(0), use_mini_mask=False)
    original = dataset.load_image(image_id)
    masks, class_ids = dataset.load_mask(image_id)
    assert gt.image.shape == (128, 128, 3) and gt.image.dtype == np.uint8
    assert gt.masks.shape == (128, 128, len(class_ids)) and gt.masks.dtype == bool
    np.testing.assert_array_equal(gt.class_ids, class_ids)
    np.testing.assert_array_equal(gt.boxes, extract_bboxes(gt.masks))
    # The same resize applied by hand gives the same image and masks.
    image, info = resize_image_for_config(original, config)
    np.testing.assert_array_equal(gt.image, image)
    np.testing.assert_array_equal(gt.masks, resize_mask(masks, info))
    meta = parse_image_meta(gt.image_meta[None])
    assert meta["image_id"][0] == image_id
    assert meta["original_image_shape"][0].tolist() == list(original.shape)
    assert meta["image_shape"][0].tolist() == [128, 128, 3]
    assert tuple(meta["window"][0]) == info.window
    assert meta["scale"][0] == pytest.approx(info.scale)
    assert meta["active_class_ids"][0].tolist() == [1, 1, 1]
    # Masks sit on the bright content (within a pixel: nearest-neighbour masks vs bilinear image edges).
    for i in range(gt.masks.shape[-1]):
        mask, red = gt.masks[..., i], gt.image[..., 0].astype(int)
        assert (red[mask] > DARK + 30).mean() > 0.95
        assert np.median(red[mask]) > BRIGHT - 20
    bright = gt.image[..., 0] > BRIGHT - 20
    assert (gt.masks.any(axis=-1)[bright]).mean() > 0.95 if bright.any() else len(class_ids) == 0


def test_load_image_gt_documented_window(dataset, config):
    gt = load_image_gt(dataset, config, image_index(dataset, "a.png"), use_mini_mask=False)
    meta = parse_image_meta(gt.image_meta[None])
    # 100 x 150 -> scale min(128/100 -> 1.28 capped by 128/150) = 128/150 -> 85 x 128, centred.
    assert meta["scale"][0] == pytest.approx(128 / 150)
    assert meta["window"][0].tolist() == [21, 0, 106, 128]


def test_load_image_gt_mini_mask_boxes_from_full_masks(dataset, config):
    image_id = image_index(dataset, "b.jpg")
    full = load_image_gt(dataset, config, image_id, rng=np.random.default_rng(1), use_mini_mask=False)
    mini = load_image_gt(dataset, config, image_id, rng=np.random.default_rng(1))
    assert mini.masks.shape == (28, 28, 6) and mini.masks.dtype == bool
    np.testing.assert_array_equal(mini.boxes, full.boxes)
    np.testing.assert_array_equal(mini.boxes, extract_bboxes(full.masks))
    back = expand_mask(mini.boxes, mini.masks, (128, 128))
    inter = (back & full.masks).sum(axis=(0, 1))
    union = (back | full.masks).sum(axis=(0, 1))
    assert (inter / union > 0.9).all()


def test_training_sample_matches_signature(dataset, config):
    spec = input_signature(config)
    for image_id in dataset.image_ids:
        sample = training_sample(dataset, config, int(image_id), None, seed=[0, int(image_id)])
        assert set(sample) == set(spec)
        for key, s in spec.items():
            assert sample[key].shape == tuple(s.shape), key
            assert sample[key].dtype == s.dtype.as_numpy_dtype, key


def test_negative_image_sample(dataset, config):
    sample = training_sample(dataset, config, image_index(dataset, "c.jpg"), "default", seed=[0, 0])
    assert not sample["input_gt_class_ids"].any() and not sample["input_gt_masks"].any()
    assert not (sample["input_rpn_match"] == 1).any()
    assert (sample["input_rpn_match"] == -1).sum() == config.RPN_TRAIN_ANCHORS_PER_IMAGE


def test_more_instances_than_max_are_subsampled(dataset, config):
    image_id = image_index(dataset, "b.jpg")
    all_boxes = load_image_gt(dataset, config, image_id, use_mini_mask=False).boxes
    chosen = []
    for seed in range(4):
        sample = training_sample(dataset, config, image_id, None, seed=[seed, 0])
        ids, boxes = sample["input_gt_class_ids"], sample["input_gt_boxes"]
        assert ids.shape == (4,) and (ids > 0).all()  # 6 instances -> MAX_GT_INSTANCES = 4, all real
        rows = [int(np.flatnonzero((all_boxes == b).all(axis=1))[0]) for b in boxes.astype(np.int32)]
        assert len(set(rows)) == 4  # distinct instances of the image
        chosen.append(tuple(rows))
        assert sample["input_gt_masks"].any(axis=(0, 1)).all()
    assert len(set(chosen)) > 1  # which 4 depends on the seed


class ShiftLeft:
    """A size-keeping 'augmentation': move everything ``dx`` px left, zero fill (drops what leaves)."""

    def __init__(self, dx):
        self.dx = dx

    def __call__(self, image, masks):
        image = np.concatenate([image[:, self.dx :], np.zeros_like(image[:, : self.dx])], axis=1)
        masks = np.concatenate([masks[:, :, self.dx :], np.zeros_like(masks[:, :, : self.dx])], axis=2)
        return {"image": image, "masks": masks}


def test_instances_cropped_away_are_dropped(dataset, config):
    image_id = image_index(dataset, "a.png")
    plain = load_image_gt(dataset, config, image_id, use_mini_mask=False)
    # The rect "a" sits at x < 35 after resizing; shifting by 64 px removes it, the polygon "b" stays.
    assert plain.boxes[0, 3] < 64 <= plain.boxes[1, 1]
    shifted = load_image_gt(dataset, config, image_id, augmentation=ShiftLeft(64), use_mini_mask=False)
    assert shifted.class_ids.tolist() == [2]
    assert shifted.masks.shape == (128, 128, 1)
    np.testing.assert_array_equal(shifted.boxes[0], plain.boxes[1] - [0, 64, 0, 64])
    sample = training_sample(dataset, config, image_id, ShiftLeft(64), seed=[0, 0])
    assert sample["input_gt_class_ids"].tolist() == [2, 0, 0, 0]


def test_default_augmentation_keeps_masks_aligned(dataset, config):
    image_id = image_index(dataset, "d.png")
    plain = load_image_gt(dataset, config, image_id, use_mini_mask=False)
    changed = 0
    for seed in range(8):
        gt = load_image_gt(
            dataset, config, image_id, augmentation="default", rng=np.random.default_rng(seed), use_mini_mask=False
        )
        assert gt.image.shape == (128, 128, 3)
        if len(gt.class_ids) == 0:
            continue
        mask = gt.masks[..., 0]
        gray = gt.image.astype(float).mean(axis=-1)
        assert gray[mask].mean() > 2 * gray[~mask].mean()
        assert (gray[mask] > (DARK + BRIGHT) / 2 * 0.8).mean() > 0.85
        np.testing.assert_array_equal(gt.boxes, extract_bboxes(gt.masks))
        changed += not np.array_equal(gt.image, plain.image)
    assert changed >= 4  # the policy does change most samples


def take(ds, n):
    return [{k: v.numpy() for k, v in batch.items()} for batch in ds.take(n)]


def test_build_dataset_matches_signature(dataset, config):
    spec = input_signature(config)
    ds = build_dataset(dataset, config, seed=0)
    assert set(ds.element_spec) == set(spec)
    for key, s in spec.items():
        assert ds.element_spec[key].shape.as_list() == [2] + s.shape.as_list(), key
        assert ds.element_spec[key].dtype == s.dtype, key
    for batch in take(ds, 2):
        for key, s in spec.items():
            assert batch[key].shape == (2,) + tuple(s.shape), key
            assert batch[key].dtype == s.dtype.as_numpy_dtype, key


def test_build_dataset_is_deterministic(dataset, config):
    first = take(build_dataset(dataset, config, augmentation="default", seed=0), 3)
    again = take(build_dataset(dataset, config, augmentation="default", seed=0, num_parallel_calls=1), 3)
    other = take(build_dataset(dataset, config, augmentation="default", seed=1), 3)
    for a, b in zip(first, again):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert any(not np.array_equal(a["input_image"], c["input_image"]) for a, c in zip(first, other))


class CountingDataset(ViaDataset):
    """Counts the files each image id is read from."""

    def load_image(self, image_id):
        self.reads[image_id] = self.reads.get(image_id, 0) + 1
        return super().load_image(image_id)


def test_resized_input_cache_gives_the_same_stream_and_reads_each_image_once(tmp_path, dataset, config):
    # 4 images, batches of 2, 4 epochs with augmentation: the cached stream equals the uncached one
    # sample for sample (the same random draws), and each file is decoded once, not four times.
    counting = CountingDataset()
    counting.load_via(write_via(tmp_path), verbose=False)
    counting.prepare()
    counting.reads = {}
    uncached = TinyConfig(INPUT_CACHE_MB=0)
    want = take(build_dataset(counting, uncached, augmentation="default", seed=0), 8)
    reads_uncached = dict(counting.reads)
    counting.reads = {}
    got = take(build_dataset(counting, config, augmentation="default", seed=0), 8)
    for a, b in zip(got, want):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert sorted(counting.reads.values()) == [1, 1, 1, 1]
    assert min(reads_uncached.values()) >= 4


def test_resized_input_cache_keeps_to_its_budget_and_never_caches_random_crops(dataset, config):
    image_bytes = 128 * 128 * 3
    cache = ResizedCache(budget_mb=2.5 * image_bytes / 2**20)  # room for two images without masks
    for image_id in range(4):
        gt = load_image_gt(dataset, config, image_id, cache=cache)
        again = load_image_gt(dataset, config, image_id, cache=cache)
        np.testing.assert_array_equal(gt.image, again.image)
        np.testing.assert_array_equal(gt.masks, again.masks)
    assert 1 <= len(cache) <= 2 and cache.used <= cache.budget
    cached = cache.get(next(iter(cache._items)))
    # a transform writing into a cached array would corrupt later epochs
    assert not cached.image.flags.writeable and not cached.masks.flags.writeable
    assert input_cache(TinyConfig(IMAGE_RESIZE_MODE="crop", IMAGE_MIN_DIM=96)) is None
    assert input_cache(TinyConfig(INPUT_CACHE_MB=0)) is None


def test_resized_input_cache_loads_an_image_once_when_threads_ask_for_it_together():
    # An epoch's last samples and the next epoch's first ones are in flight at once on the input
    # threads: asking for one id from 4 threads together must decode it once and share the entry.
    cache = ResizedCache(budget_mb=1)
    calls, start = [], threading.Barrier(4)

    def slow_load():
        calls.append(1)
        time.sleep(0.3)  # long enough for the other threads to arrive while it loads
        return ResizedEntry(
            np.zeros((64, 64, 3), np.uint8), np.zeros((64, 64, 1), bool), np.ones(1, np.int32), (64, 64, 3), None
        )

    def ask():
        start.wait()
        return cache.get_or_load(7, slow_load)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda _: ask(), range(4)))
    assert len(calls) == 1
    assert all(g is got[0] for g in got) and cache.get(7) is got[0]

    # a load that fails leaves nothing pending: the next call loads again (and may succeed)
    def broken():
        raise OSError("gone")

    with pytest.raises(OSError):
        cache.get_or_load(8, broken)
    assert cache.get_or_load(8, slow_load) is cache.get(8) and len(calls) == 2


@pytest.mark.timeout(120)
def test_images_that_all_break_after_the_precheck_stop_the_stream_instead_of_hanging(tmp_path):
    # The files pass the pre-check in build_dataset, then all disappear before the first sample is
    # loaded (nothing cached yet): every sample is skipped, so the filtered, repeated stream would
    # wait forever for a readable one. It must end with an error naming the problem.
    broken = load_dataset(write_via(tmp_path / "data"))
    ds = build_dataset(broken, TinyConfig(), seed=0)
    for image in (tmp_path / "data").glob("*.*g"):
        image.unlink()
    with pytest.raises(tf.errors.OpError, match="none of the 4 images can be read any more"):
        take(ds, 1)


def test_build_dataset_without_shuffle_covers_dataset(dataset, config):
    ds = build_dataset(dataset, config, shuffle=False, repeat=False, drop_remainder=False, seed=0)
    ids = np.concatenate([b["input_image_meta"][:, 0] for b in take(ds, 10)]).astype(int)
    assert ids.tolist() == [0, 1, 2, 3]


def test_pass_samples_repeats_the_same_augmented_batches_every_pass(dataset, config):
    # Validation: 6 samples per pass over 4 images (ids cycle: 0 1 2 3 0 1), batches of 2, with
    # augmentation. Every pass must give the same batches, augmented the same way, while an image
    # met twice in one pass gets different draws (the pass is not one sample repeated).
    ds = build_dataset(dataset, config, shuffle=False, augmentation="default", seed=0, pass_samples=6)
    batches = take(ds, 9)  # 3 passes of 3 batches
    ids = [b["input_image_meta"][:, 0].astype(int).tolist() for b in batches]
    assert ids == [[0, 1], [2, 3], [0, 1]] * 3
    for later in (batches[3:6], batches[6:9]):
        for a, b in zip(batches[:3], later):
            for key in a:
                np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert not np.array_equal(batches[0]["input_image"], batches[2]["input_image"])
    with pytest.raises(ValueError, match="shuffle=False"):
        build_dataset(dataset, config, shuffle=True, pass_samples=6)


def test_empty_dataset_raises_clear_error(tmp_path, config):
    empty = ViaDataset()
    with pytest.raises(ValueError, match="no images.*prepare"):
        build_dataset(empty, config)
    json_path = tmp_path / "via_region_data.json"
    json_path.write_text("{}")
    empty.load_via(json_path, class_names=["a", "b"], verbose=False)
    empty.prepare()
    with pytest.raises(ValueError, match="no images"):
        build_dataset(empty, config)


def test_build_dataset_rejects_variable_size_mode(dataset):
    with pytest.raises(ValueError, match="fixed input size"):
        build_dataset(dataset, TinyConfig(IMAGE_RESIZE_MODE="pad64"))


def test_build_dataset_feeds_tf_function(dataset, config):
    ds = build_dataset(dataset, config, seed=0)

    @tf.function
    def count_positives(batch):
        return tf.reduce_sum(tf.cast(batch["input_rpn_match"] == 1, tf.int32))

    assert int(count_positives(next(iter(ds)))) >= 0


def test_default_augmentation_draws_are_independent():
    # Regression: seeding every albumentations child with the same seed correlated their p-draws, so
    # ~40% of samples were left untouched. Independent draws leave ~6% (0.5 * 0.4 * 0.4 * 0.75).
    from mrcnn.data.augment import as_augmenter

    augmenter = as_augmenter("default")
    image = np.zeros((64, 64, 3), np.uint8)
    image[10:30, 5:25] = 200  # not flip-symmetric
    masks = np.zeros((1, 64, 64), bool)
    masks[0, 10:30, 5:25] = True
    untouched = 0
    for seed in range(60):
        out, out_masks = augmenter(image, masks, seed=seed)
        untouched += np.array_equal(out, image)
        again, again_masks = augmenter(image, masks, seed=seed)
        np.testing.assert_array_equal(out, again)
        np.testing.assert_array_equal(out_masks, again_masks)
    assert untouched <= 12, untouched
