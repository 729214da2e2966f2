"""Mask IoU, mini-masks, unmolding, and resize_image / resize_mask."""

import numpy as np
import pytest
import tensorflow as tf

from mrcnn.ops.boxes import extract_bboxes
from mrcnn.ops.images import resize_image, resize_mask
from mrcnn.ops.masks import (
    compute_overlaps_masks,
    compute_overlaps_masks_tf,
    expand_mask,
    minimize_mask,
    paste_masks,
    paste_masks_tf,
    unmold_mask,
)
from mrcnn.ops.rle import encode_rle


def brute_force_mask_iou(m1, m2):
    out = np.zeros((m1.shape[-1], m2.shape[-1]))
    for i in range(m1.shape[-1]):
        for j in range(m2.shape[-1]):
            inter = np.logical_and(m1[..., i], m2[..., j]).sum()
            union = np.logical_or(m1[..., i], m2[..., j]).sum()
            out[i, j] = inter / union if union else 0.0
    return out


def disk(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


@pytest.mark.parametrize("seed", [0, 1])
def test_compute_overlaps_masks_three_ways(seed):
    rng = np.random.default_rng(seed)
    shape = (40, 50)
    m1 = np.stack([disk(shape, *rng.uniform(5, 40, 2), rng.uniform(3, 15)) for _ in range(5)], axis=-1)
    m2 = np.stack(
        [disk(shape, *rng.uniform(5, 40, 2), rng.uniform(3, 15)) for _ in range(4)]
        + [np.zeros(shape, bool), m1[..., 0]],
        axis=-1,
    )  # an empty mask and an exact copy
    ref = brute_force_mask_iou(m1, m2)
    got = compute_overlaps_masks(m1, m2)
    got_tf = compute_overlaps_masks_tf(tf.constant(m1), tf.constant(m2)).numpy()
    assert got.shape == got_tf.shape == (5, 6)
    np.testing.assert_allclose(got, ref, atol=1e-6)
    np.testing.assert_allclose(got_tf, ref, atol=1e-6)
    assert got[0, 5] == pytest.approx(1.0)
    assert (got[:, 4] == 0).all()


def test_compute_overlaps_masks_empty_sets():
    m = np.ones((8, 8, 2), bool)
    assert compute_overlaps_masks(m, np.zeros((8, 8, 0), bool)).shape == (2, 0)
    assert compute_overlaps_masks(np.zeros((8, 8, 0), bool), m).shape == (0, 2)


def test_minimize_expand_round_trip():
    shape = (120, 160)
    masks = np.stack([disk(shape, 50, 70, 30), disk(shape, 100, 130, 12)], axis=-1)
    masks[40:60, 60:65, 0] = False  # a notch, so the blob is not trivially convex
    boxes = extract_bboxes(masks)
    mini = minimize_mask(boxes, masks, (28, 28))
    assert mini.shape == (28, 28, 2) and mini.dtype == bool
    back = expand_mask(boxes, mini, shape)
    assert back.shape == masks.shape
    ious = np.diag(compute_overlaps_masks(masks, back))
    assert (ious > 0.9).all(), ious
    # Nothing is pasted outside the box.
    for i, (y1, x1, y2, x2) in enumerate(boxes):
        outside = back[..., i].copy()
        outside[y1:y2, x1:x2] = False
        assert not outside.any()


def test_minimize_mask_empty_instance():
    masks = np.zeros((20, 20, 1), bool)
    mini = minimize_mask(extract_bboxes(masks), masks, (7, 7))
    assert mini.shape == (7, 7, 1) and not mini.any()
    assert not expand_mask(np.zeros((1, 4), int), mini, (20, 20)).any()


def test_unmold_mask_places_mask_in_box():
    soft = np.zeros((28, 28), np.float32)
    soft[:, :14] = 0.9  # left half on
    full = unmold_mask(soft, (10, 20, 30, 60), (64, 80))
    assert full.shape == (64, 80) and full.dtype == bool
    assert full[10:30, 20:40].all()
    assert not full[10:30, 40:60].any()
    outside = full.copy()
    outside[10:30, 20:60] = False
    assert not outside.any()


def test_unmold_mask_clips_box_crossing_border():
    ones = np.ones((28, 28), np.float32)
    full = unmold_mask(ones, (-6, 50, 10, 90), (40, 64))
    assert full.shape == (40, 64)
    expected = np.zeros((40, 64), bool)
    expected[0:10, 50:64] = True
    np.testing.assert_array_equal(full, expected)
    # Degenerate box -> empty mask.
    assert not unmold_mask(ones, (5, 5, 5, 9), (20, 20)).any()


def test_unmold_mask_threshold():
    soft = np.full((14, 14), 0.4, np.float32)
    assert not unmold_mask(soft, (0, 0, 10, 10), (10, 10)).any()
    assert unmold_mask(soft, (0, 0, 10, 10), (10, 10), threshold=0.3).all()


# ----------------------------------------------------------------------------------- resizing
def scene(h, w):
    """An image with a bright rectangle and the matching one-instance mask."""
    image = np.full((h, w, 3), 40, np.uint8)
    mask = np.zeros((h, w, 1), bool)
    y1, x1, y2, x2 = h // 4, w // 3, h // 4 + h // 3, w // 3 + w // 4
    image[y1:y2, x1:x2] = 250
    mask[y1:y2, x1:x2, 0] = True
    return image, mask


def assert_mask_on_bright(image, mask):
    bright = image[..., 0] > 145
    m = mask[..., 0]
    assert m.any()
    # Almost every mask pixel is bright and almost every bright pixel is masked (edges may blend).
    assert bright[m].mean() > 0.95
    assert m[bright].mean() > 0.95
    # No sub-pixel bias either: the mask's centroid is the content's (brightness-weighted) centroid.
    weight = np.clip(image[..., 0].astype(float) - 40, 0, None)
    ys, xs = np.mgrid[: m.shape[0], : m.shape[1]]
    content = np.array([(weight * ys).sum(), (weight * xs).sum()]) / weight.sum()
    centroid = np.array([ys[m].mean(), xs[m].mean()])
    assert np.abs(centroid - content).max() < 0.5, (centroid, content)


def test_resize_square_documented_example():
    image, mask = scene(100, 150)
    out, info = resize_image(image, min_dim=128, max_dim=256, mode="square")
    # Short side 100 -> 128 (scale 1.28), long side 150 -> 192 <= 256, padded to 256 x 256, centred.
    assert out.shape == (256, 256, 3) and out.dtype == np.uint8
    assert info.scale == pytest.approx(1.28)
    assert info.window == (64, 32, 192, 224)
    assert info.padding == ((64, 64), (32, 32), (0, 0))
    assert info.crop is None
    assert (out[:64] == 0).all() and (out[192:] == 0).all() and (out[:, :32] == 0).all()
    assert (out[64:192, 32:224] > 0).all()
    m = resize_mask(mask, info)
    assert m.shape == (256, 256, 1) and m.dtype == bool
    assert_mask_on_bright(out, m)


def test_resize_square_limited_by_max_dim():
    image, mask = scene(100, 300)
    out, info = resize_image(image, min_dim=128, max_dim=256, mode="square")
    # 128 / 100 would make the long side 384 > 256, so the long side is capped: scale 256 / 300.
    assert out.shape == (256, 256, 3)
    assert info.scale == pytest.approx(256 / 300)
    h2 = round(100 * 256 / 300)
    top = (256 - h2) // 2
    assert info.window == (top, 0, top + h2, 256)
    assert_mask_on_bright(out, resize_mask(mask, info))


def test_resize_pad64():
    image, mask = scene(90, 130)
    out, info = resize_image(image, min_dim=64, max_dim=1024, mode="pad64")
    # No upscaling (90 >= 64); each side padded up to a multiple of 64, split evenly.
    assert out.shape == (128, 192, 3)
    assert info.scale == 1.0
    assert info.padding == ((19, 19), (31, 31), (0, 0))
    assert info.window == (19, 31, 109, 161)
    np.testing.assert_array_equal(out[19:109, 31:161], image)
    m = resize_mask(mask, info)
    assert m.shape == (128, 192, 1)
    np.testing.assert_array_equal(m[19:109, 31:161], mask)
    with pytest.raises(ValueError, match="divisible by 64"):
        resize_image(image, min_dim=100, mode="pad64")


def test_resize_crop():
    image, mask = scene(100, 150)
    rng = np.random.default_rng(0)
    out, info = resize_image(image, min_dim=128, max_dim=256, mode="crop", rng=rng)
    assert out.shape == (128, 128, 3)
    assert info.scale == pytest.approx(1.28)
    assert info.window == (0, 0, 128, 128)
    y, x, h, w = info.crop
    assert (h, w) == (128, 128) and y == 0 and 0 <= x <= 192 - 128
    m = resize_mask(mask, info)
    assert m.shape == (128, 128, 1)
    # Same crop of the scaled image.
    scaled, _ = resize_image(image, min_dim=128, max_dim=None, mode="pad64")
    np.testing.assert_array_equal(out, scaled[:128, x : x + 128])
    if m.any():
        assert_mask_on_bright(out, m)
    # Same rng seed -> same crop.
    _, info2 = resize_image(image, min_dim=128, max_dim=256, mode="crop", rng=np.random.default_rng(0))
    assert info2.crop == info.crop


def test_resize_none():
    image, mask = scene(70, 90)
    out, info = resize_image(image, min_dim=128, max_dim=256, mode="none")
    assert out is image or np.array_equal(out, image)
    assert info.window == (0, 0, 70, 90) and info.scale == 1.0
    np.testing.assert_array_equal(resize_mask(mask, info), mask)


def test_resize_mask_several_instances_follow_content():
    h, w = 80, 120
    image = np.zeros((h, w, 3), np.uint8)
    masks = np.zeros((h, w, 3), bool)
    for i, (y1, x1, y2, x2) in enumerate([(5, 5, 30, 40), (40, 60, 75, 110), (10, 80, 30, 100)]):
        image[y1:y2, x1:x2, i] = 255
        masks[y1:y2, x1:x2, i] = True
    out, info = resize_image(image, min_dim=128, max_dim=192, mode="square")
    assert out.shape == (192, 192, 3)
    m = resize_mask(masks, info)
    assert m.shape == (192, 192, 3)
    for i in range(3):
        bright = out[..., i] > 127
        assert bright[m[..., i]].mean() > 0.95 and m[..., i][bright].mean() > 0.95


def skimage_unmold_mask(mask, box, image_shape, threshold=0.5):
    """Matterport's unmold_mask: scikit-image resize into the box, clipped to the image, >= threshold."""
    from skimage.transform import resize

    y1, x1, y2, x2 = (int(v) for v in box)
    full = np.zeros(tuple(image_shape[:2]), bool)
    if y2 <= y1 or x2 <= x1:
        return full
    soft = resize(
        mask, (y2 - y1, x2 - x1), order=1, mode="constant", cval=0, clip=True, preserve_range=True, anti_aliasing=False
    )
    pad = 256  # paste into a canvas with room around the image, then crop the image out
    canvas = np.zeros((image_shape[0] + 2 * pad, image_shape[1] + 2 * pad), bool)
    canvas[pad + y1 : pad + y2, pad + x1 : pad + x2] = soft >= threshold
    return canvas[pad : pad + image_shape[0], pad : pad + image_shape[1]]


def test_paste_masks_equals_scikit_image_resize():
    """The two-tap paste reproduces Matterport's scikit-image resize pixel for pixel: up- and
    down-scaling, boxes crossing or outside the border, degenerate boxes, masks whose minimum is
    above 0 (scikit-image's clip undoes the edge fade), 0-valued minimum, constant masks."""
    rng = np.random.default_rng(3)
    h, w = 70, 90
    masks, boxes = [], []
    for t in range(300):
        mh, mw = [(28, 28), (14, 14), (28, 21)][t % 3]
        kind = t % 5
        soft = rng.random((mh, mw)).astype(np.float32)
        if kind == 1:
            soft = (soft * 0.6 + 0.3).astype(np.float32)  # min > 0
        elif kind == 2:
            soft[soft < 0.3] = 0  # min == 0
        elif kind == 3:
            soft = np.full((mh, mw), rng.choice([0.2, 0.5, 0.9]), np.float32)
        elif kind == 4:
            soft = (1 / (1 + np.exp(-rng.normal(0, 4, (mh, mw))))).astype(np.float32)  # sigmoid-like
        y1, x1 = int(rng.integers(-30, h + 5)), int(rng.integers(-30, w + 5))
        box = np.array([y1, x1, y1 + int(rng.integers(-2, 80)), x1 + int(rng.integers(-2, 80))])
        want = skimage_unmold_mask(soft, box, (h, w))
        np.testing.assert_array_equal(unmold_mask(soft, box, (h, w)), want, err_msg=f"case {t}, box {box}")
        if mh == 28 and mw == 28:
            masks.append(soft)
            boxes.append(box)
    full = paste_masks(np.stack(masks), np.stack(boxes), (h, w))
    assert full.shape == (h, w, len(masks)) and full.dtype == bool
    for i in range(len(masks)):
        np.testing.assert_array_equal(full[..., i], skimage_unmold_mask(masks[i], boxes[i], (h, w)))
    assert paste_masks(np.zeros((0, 28, 28)), np.zeros((0, 4), int), (h, w)).shape == (h, w, 0)


def test_paste_masks_matches_numpy_unmold_mask():
    rng = np.random.default_rng(0)
    h, w = 60, 80
    for t in range(20):
        soft = (rng.random((28, 28)) * 0.6 + 0.3 * (t % 2)).astype(np.float32)  # odd t: min > 0 (clip path)
        y1, x1 = int(rng.integers(-8, h - 2)), int(rng.integers(-8, w - 2))
        box = np.array([y1, x1, max(y1 + int(rng.integers(1, 50)), 1), max(x1 + int(rng.integers(1, 60)), 1)])
        want = unmold_mask(soft, box, (h, w))
        got = paste_masks_tf(tf.constant(soft[None]), tf.constant(box[None]), h, w).numpy()[0].astype(bool)
        np.testing.assert_array_equal(got, want, err_msg=f"box {box}")


def test_encode_rle_round_trips_one_mask_and_a_stack():
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(1)
    masks = rng.random((13, 17, 3)) > 0.6
    one = encode_rle(masks[..., 0])
    assert isinstance(one["counts"], str) and one["size"] == [13, 17]
    np.testing.assert_array_equal(mask_utils.decode(one).astype(bool), masks[..., 0])
    stack = encode_rle(masks)
    assert len(stack) == 3 and all(isinstance(r["counts"], str) for r in stack)
    np.testing.assert_array_equal(mask_utils.decode(stack).astype(bool), masks)
    assert encode_rle(np.zeros((13, 17, 0), bool)) == []
