"""Smoke/behaviour tests of mrcnn.visualize (headless)."""

import numpy as np
import pytest

from mrcnn import visualize as vis

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _scene():
    rng = np.random.default_rng(0)
    image = rng.integers(40, 200, (120, 160, 3), dtype=np.uint8)
    masks = np.zeros((120, 160, 2), bool)
    masks[60:90, 70:110, 0] = True
    masks[70:100, 20:50, 1] = True
    boxes = np.array([[60, 70, 90, 110], [70, 20, 100, 50]])
    return image, boxes, masks, np.array([1, 2]), ["BG", "cat", "dog"], np.array([0.97, 0.61])


def _is_png(path):
    data = path.read_bytes()
    return len(data) > 1000 and data[:8] == PNG_MAGIC


def test_random_colors():
    c = vis.random_colors(5)
    assert len(c) == 5 and len(set(c)) == 5
    assert all(0 <= v <= 1 for col in c for v in col)
    assert c == vis.random_colors(5)
    assert vis.random_colors(0) == []


def test_apply_mask_only_inside():
    image, _, masks, *_ = _scene()
    out = vis.apply_mask(image, masks[..., 0], (1.0, 0.0, 0.0), alpha=0.5)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.all(out[~masks[..., 0]] == image[~masks[..., 0]])
    assert np.all(out[masks[..., 0]][:, 0] >= image[masks[..., 0]][:, 0])
    assert np.any(out[masks[..., 0]] != image[masks[..., 0]])
    # the input is not modified
    assert not np.shares_memory(out, image)


@pytest.mark.parametrize("show_boxes", [True, False])
def test_draw_instances_changes_masks_not_far_outside(show_boxes):
    image, boxes, masks, ids, names, scores = _scene()
    before = image.copy()
    out = vis.draw_instances(image, boxes, masks, ids, names, scores, show_boxes=show_boxes)
    assert out.shape == image.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(image, before)
    for i in range(2):
        inside = masks[..., i]
        assert np.mean(np.any(out[inside] != image[inside], axis=-1)) > 0.9
    # far from every instance (and from the labels above the boxes): untouched
    far = np.zeros(image.shape[:2], bool)
    far[:20, 130:] = True
    far[105:, 120:] = True
    np.testing.assert_array_equal(out[far], image[far])


def test_draw_instances_inputs_variants():
    image, boxes, masks, ids, names, scores = _scene()
    gray = image[..., 0].astype(np.float32) / 255.0
    out = vis.draw_instances(gray, None, masks, ids, names, None, title="t")
    assert out.shape == (120, 160, 3)
    out = vis.draw_instances(image, boxes, None, ids, names, scores)
    assert out.shape == image.shape
    # padding rows and no instances
    pb = np.concatenate([boxes, np.zeros((1, 4))])
    pm = np.concatenate([masks, np.zeros((120, 160, 1), bool)], axis=2)
    vis.draw_instances(image, pb, pm, np.array([1, 2, 0]), names, np.array([0.9, 0.8, 0.0]))
    out = vis.draw_instances(image, np.zeros((0, 4)), np.zeros((120, 160, 0), bool), np.zeros(0, int), names)
    np.testing.assert_array_equal(out, image)


def test_save_overlay(tmp_path):
    image, boxes, masks, ids, names, scores = _scene()
    path = tmp_path / "sub" / "overlay.png"
    out = vis.save_overlay(path, image, boxes, masks, ids, names, scores)
    assert _is_png(path)
    assert out.shape == image.shape


def test_plots_write_png(tmp_path):
    image, boxes, masks, ids, names, scores = _scene()
    p = tmp_path / "gt_vs_pred.png"
    vis.plot_gt_vs_pred(
        image, boxes, ids, masks, boxes[:1], ids[:1], scores[:1], masks[..., :1], names, p, figsize=(6, 3)
    )
    assert _is_png(p)

    p = tmp_path / "pr.png"
    vis.plot_pr_curves(
        {
            "cat": {"precision": [1, 1, 0.5, 0], "recall": [0, 0.5, 1, 1], "ap": 0.75},
            "dog": {"precision": [0, 0], "recall": [0, 1]},
        },
        p,
        "PR",
    )
    assert _is_png(p)

    p = tmp_path / "losses.png"
    vis.plot_losses({"loss": [3, 2, 1.5], "val_loss": [3.2, 2.5, 2.0], "mrcnn_mask_loss": [1, 0.5], "lr": []}, p)
    assert _is_png(p)

    p = tmp_path / "anchors.png"
    rng = np.random.default_rng(0)
    hw = rng.uniform(10, 200, (50, 2))
    default = np.array([[32, 32], [45, 22], [22, 45], [128, 128]])
    vis.plot_anchor_fit(hw, default, default * 1.2, p)
    assert _is_png(p)
    vis.plot_anchor_fit(hw, default, None, tmp_path / "anchors2.png")
    assert _is_png(tmp_path / "anchors2.png")


def test_display_instances_on_axis():
    from matplotlib.figure import Figure

    image, boxes, masks, ids, names, scores = _scene()
    fig = Figure()
    ax = fig.subplots()
    out = vis.display_instances(image, boxes, masks, ids, names, scores, title="x", ax=ax)
    assert out is ax
    assert len(ax.patches) >= 4  # 2 boxes + >= 2 contour polygons
    assert len(ax.texts) == 2
