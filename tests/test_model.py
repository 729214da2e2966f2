"""Model tests through the real code paths on tiny configs (CPU): train steps, save/load,
Matterport-layout weights with exclude, staged freezing, detect() at any size."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import facemask
from mrcnn.data.pipeline import build_dataset
from mrcnn.model import MaskRCNN
from mrcnn.model.weights import WeightsMismatchError, iter_layers


def tiny_config(**overrides):
    return facemask.make_config("tiny", **{"DETECTION_MIN_CONFIDENCE": 0.0, **overrides})


@pytest.fixture(scope="module")
def datasets(tiny_facemask_dir):
    return (
        facemask.load_dataset(str(tiny_facemask_dir), "train", verbose=False),
        facemask.load_dataset(str(tiny_facemask_dir), "val", verbose=False),
    )


@pytest.fixture(scope="module")
def training_model(tmp_path_factory):
    return MaskRCNN("training", tiny_config(), str(tmp_path_factory.mktemp("logs")))


def _weights_by_layer(model, names):
    layers = {layer.name: layer for layer in iter_layers(model.keras_model)}
    return {n: [w.numpy().copy() for w in layers[n].weights] for n in names}


def _one_batch(dataset, config):
    return next(iter(build_dataset(dataset, config, shuffle=False, seed=0)))


def test_train_step_gives_finite_losses_and_changes_weights(training_model, datasets):
    model = training_model
    batch = _one_batch(datasets[0], model.config)
    before = _weights_by_layer(model, ["conv1", "mrcnn_mask", "rpn_class_raw"])
    model.set_trainable("all")
    model.compile(0.01, 0.9)
    logs = model.keras_model.train_on_batch(batch, return_dict=True)
    for name in ("loss", "rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss", "mrcnn_bbox_loss", "mrcnn_mask_loss"):
        assert np.isfinite(logs[name]), name
    assert logs["rpn_class_loss"] > 0 and logs["mrcnn_mask_loss"] > 0 and logs["mrcnn_class_loss"] > 0
    after = _weights_by_layer(model, ["conv1", "mrcnn_mask", "rpn_class_raw"])
    for name in before:
        assert not np.allclose(before[name][0], after[name][0]), f"{name} did not change"


def test_heads_stage_leaves_backbone_unchanged(training_model, datasets):
    model = training_model
    batch = _one_batch(datasets[0], model.config)
    trained = model.set_trainable("heads")
    assert "mrcnn_mask" in trained and "fpn_p2" in trained and "rpn_conv_shared" in trained
    assert not any(n.startswith(("res", "bn", "conv1")) for n in trained)
    model.compile(0.01, 0.9)
    names = ["conv1", "res2a_branch2a", "res5b_branch2b", "bn5b_branch2b", "mrcnn_mask", "fpn_c5p5"]
    before = _weights_by_layer(model, names)
    model.keras_model.train_on_batch(batch)
    after = _weights_by_layer(model, names)
    for name in ("conv1", "res2a_branch2a", "res5b_branch2b", "bn5b_branch2b"):
        for b, a in zip(before[name], after[name]):
            np.testing.assert_array_equal(b, a, err_msg=f"{name} changed in a heads-only step")
    assert not np.allclose(before["mrcnn_mask"][0], after["mrcnn_mask"][0])
    assert not np.allclose(before["fpn_c5p5"][0], after["fpn_c5p5"][0])


def test_layer_groups_select_stages(training_model):
    model = training_model
    four_plus = set(model.set_trainable("4+"))
    assert "res4a_branch2a" in four_plus and "res5a_branch2a" in four_plus and "mrcnn_class_logits" in four_plus
    assert "res3a_branch2a" not in four_plus and "conv1" not in four_plus
    regex = set(model.set_trainable(r"mrcnn\_mask.*"))
    assert regex and all(n.startswith("mrcnn_mask") for n in regex)
    with pytest.raises(ValueError, match="regex"):
        model.set_trainable("([")


def test_save_load_round_trip_gives_identical_detections(tmp_path, training_model, datasets):
    path = str(tmp_path / "w.h5")
    # Favour the foreground class in the saved file, so the few-step model emits detections to compare.
    bias = {layer.name: layer for layer in iter_layers(training_model.keras_model)}["mrcnn_class_logits"].weights[1]
    trained_bias = bias.numpy().copy()
    bias.assign(trained_bias + np.array([0.0] + [5.0] * (len(trained_bias) - 1), dtype=np.float32))
    training_model.save_weights(path)
    bias.assign(trained_bias)
    config = tiny_config(IMAGES_PER_GPU=1)
    a = MaskRCNN("inference", config, str(tmp_path))
    b = MaskRCNN("inference", config, str(tmp_path))
    report_a = a.load_weights(path)
    b.load_weights(path)
    assert not report_a.missing_in_file
    image = datasets[1].load_image(0)
    ra, rb = a.detect([image])[0], b.detect([image])[0]
    assert len(ra["scores"]) > 0  # min confidence 0: random-ish heads still emit detections
    for key in ("rois", "class_ids", "scores", "masks"):
        np.testing.assert_array_equal(ra[key], rb[key])


@pytest.mark.parametrize("shape", [(97, 211, 3), (300, 120, 3), (128, 128, 3)])
def test_detect_returns_masks_at_the_original_size(tmp_path, shape):
    model = MaskRCNN("inference", tiny_config(IMAGES_PER_GPU=2), str(tmp_path))
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 255, shape, dtype=np.uint8),
        rng.integers(0, 255, (64, 80, 3), dtype=np.uint8),
        rng.integers(0, 255, shape, dtype=np.uint8),
    ]
    results = model.detect(images)
    assert len(results) == 3
    # The short last batch (1 of 2) is padded inside detect(): one batch shape, one trace.
    assert model._predict_fn.experimental_get_tracing_count() == 1
    for image, r in zip(images, results):
        n = len(r["scores"])
        assert r["masks"].shape == image.shape[:2] + (n,) and r["masks"].dtype == bool
        assert r["rois"].shape == (n, 4) and r["class_ids"].shape == (n,)
        if n:
            assert (r["rois"][:, 2] <= image.shape[0]).all() and (r["rois"][:, 3] <= image.shape[1]).all()
            assert (r["class_ids"] >= 1).all()


# ------------------------------------------------------------------- Matterport-layout weights
def _write_matterport_h5(path, model, num_classes_in_file: int, fill: float = 0.5):
    """Write a Keras-2 style by-name file as `mask_rcnn_coco.h5` is laid out: a group per layer,
    RPN weights nested in an `rpn_model` group, heads shaped for `num_classes_in_file`."""
    layers = [layer for layer in iter_layers(model.keras_model) if layer.weights]
    rpn = {"rpn_conv_shared", "rpn_class_raw", "rpn_bbox_pred"}
    with h5py.File(path, "w") as f:
        names = []
        for layer in layers:
            if layer.name in rpn:
                continue
            g = f.create_group(layer.name)
            wnames = []
            for i, w in enumerate(layer.weights):
                shape = list(w.shape)
                if layer.name in ("mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_mask"):
                    per = 4 if layer.name == "mrcnn_bbox_fc" else 1
                    shape[-1] = num_classes_in_file * per
                wname = f"{layer.name}/{'kernel' if i == 0 else 'w' + str(i)}:0"
                g.create_dataset(wname, data=np.full(shape, fill, np.float32))
                wnames.append(wname.encode())
            g.attrs["weight_names"] = wnames
            names.append(layer.name)
        g = f.create_group("rpn_model")
        wnames = []
        for layer in layers:
            if layer.name in rpn:
                for i, w in enumerate(layer.weights):
                    wname = f"{layer.name}/{'kernel' if i == 0 else 'bias'}:0"
                    g.create_dataset(wname, data=np.full(w.shape, fill, np.float32))
                    wnames.append(wname.encode())
        g.attrs["weight_names"] = wnames
        names.append("rpn_model")
        f.attrs["layer_names"] = [n.encode() for n in names]


def test_matterport_layout_loads_with_exclude_and_reports_mismatch(tmp_path):
    model = MaskRCNN("inference", tiny_config(IMAGES_PER_GPU=1), str(tmp_path))
    path = str(tmp_path / "mask_rcnn_coco_like.h5")
    _write_matterport_h5(path, model, num_classes_in_file=81)
    heads = ["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_mask"]
    before = _weights_by_layer(model, heads)

    with pytest.raises(WeightsMismatchError) as err:
        model.load_weights(path)
    message = str(err.value)
    assert "mrcnn_class_logits" in message and "81" in message and "exclude=" in message

    report = model.load_weights(path, exclude=["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask"])
    assert "conv1" in report.loaded and "rpn_conv_shared" in report.loaded
    assert set(heads) <= set(report.excluded)
    loaded = _weights_by_layer(model, ["conv1", "res3a_branch2a", "rpn_conv_shared", "mrcnn_mask_conv1"])
    for name, arrays in loaded.items():
        assert all(np.all(a == 0.5) for a in arrays), name
    after = _weights_by_layer(model, heads)
    for name in heads:
        for b, a in zip(before[name], after[name]):
            np.testing.assert_array_equal(b, a)


def test_resnet101_has_matterport_layer_names(tmp_path):
    config = facemask.make_config("gpu", IMAGE_MIN_DIM=256, IMAGE_MAX_DIM=256, IMAGES_PER_GPU=1)
    model = MaskRCNN("inference", config, str(tmp_path))
    names = {layer.name for layer in iter_layers(model.keras_model) if layer.weights}
    expected = {
        "conv1",
        "bn_conv1",
        "res2a_branch2a",
        "res2a_branch1",
        "bn2a_branch1",
        "res2c_branch2c",
        "res3d_branch2c",
        "res4a_branch1",
        "res4w_branch2c",
        "bn4w_branch2c",
        "res5c_branch2c",
        "bn5c_branch2c",
        "fpn_c5p5",
        "fpn_c4p4",
        "fpn_c3p3",
        "fpn_c2p2",
        "fpn_p2",
        "fpn_p3",
        "fpn_p4",
        "fpn_p5",
        "rpn_conv_shared",
        "rpn_class_raw",
        "rpn_bbox_pred",
        "mrcnn_class_conv1",
        "mrcnn_class_bn1",
        "mrcnn_class_conv2",
        "mrcnn_class_bn2",
        "mrcnn_class_logits",
        "mrcnn_bbox_fc",
        "mrcnn_mask_conv1",
        "mrcnn_mask_bn1",
        "mrcnn_mask_conv4",
        "mrcnn_mask_bn4",
        "mrcnn_mask_deconv",
        "mrcnn_mask",
    }
    assert expected <= names, sorted(expected - names)
    assert "res4x_branch2a" not in names  # ResNet-101 stage 4 has blocks a..w
    resnet_layers = [n for n in names if n.startswith(("res", "bn")) or n == "conv1"]
    assert len(resnet_layers) == 1 + 1 + 2 * (3 * 33 + 4)  # conv1/bn_conv1 + conv/bn per branch


def test_train_excludes_class_heads_only_when_class_counts_differ(tmp_path):
    """train.py reads just the shapes of a weights file to decide on exclude=."""
    from facemask import train
    from mrcnn.model.weights import CLASS_SPECIFIC_HEADS, read_layer_shapes, read_layer_weights

    config = tiny_config(IMAGES_PER_GPU=1)
    model = MaskRCNN("inference", config, str(tmp_path))
    coco_like, same = str(tmp_path / "coco_like.h5"), str(tmp_path / "same.h5")
    _write_matterport_h5(coco_like, model, num_classes_in_file=81)
    model.save_weights(same)
    assert tuple(train._class_heads_if_needed(coco_like, config)) == CLASS_SPECIFIC_HEADS
    assert tuple(train._class_heads_if_needed(same, config)) == ()
    shapes, arrays = read_layer_shapes(coco_like), read_layer_weights(coco_like)
    assert shapes.keys() == arrays.keys()
    assert all([s for _, s in shapes[k]] == [a.shape for _, a in arrays[k]] for k in shapes)


def test_rpn_conv_width_follows_the_config(training_model):
    config = training_model.config
    layers = {layer.name: layer for layer in iter_layers(training_model.keras_model)}
    kernel = layers["rpn_conv_shared"].weights[0]
    assert tuple(kernel.shape) == (3, 3, config.TOP_DOWN_PYRAMID_SIZE, config.RPN_CONV_CHANNELS)
    assert facemask.make_config("gpu").RPN_CONV_CHANNELS == 512  # Matterport's, as mask_rcnn_coco.h5 holds


def test_validation_scores_every_epoch_on_the_same_val_images(tmp_path, datasets):
    """val_loss picks best.h5, so each epoch must be scored on the same val batches (it used to be the
    next slice of the val set). With learning rate 0 and frozen BatchNorm the weights cannot change,
    so the RPN's val losses (no random sampling in them) must repeat exactly."""
    config = tiny_config(TRAIN_BN=False, STEPS_PER_EPOCH=1, VALIDATION_STEPS=1, IMAGES_PER_GPU=1)
    model = MaskRCNN("training", config, str(tmp_path))
    history = model.train(datasets[0], datasets[1], learning_rate=0.0, epochs=3, layers="all", verbose=0)
    for name in ("val_rpn_class_loss", "val_rpn_bbox_loss"):
        values = history.history[name]
        assert len(values) == 3 and values[0] > 0
        np.testing.assert_allclose(values, values[0], rtol=1e-6, err_msg=name)


def test_linear_warmup_ramps_from_a_thousandth_and_holds_the_learning_rate_after():
    from mrcnn.model.trainer import LinearWarmup, learning_rate_schedule

    ramp = LinearWarmup(0.02, warmup_steps=100)
    assert [round(float(ramp(s)), 8) for s in (0, 50, 100, 1000)] == [
        0.00002,
        round(0.02 * (0.001 + 0.999 / 2), 8),
        0.02,
        0.02,
    ]
    assert float(LinearWarmup(0.02, 100, first_step=50)(0)) == pytest.approx(float(ramp(50)))
    assert learning_rate_schedule(0.02, 100, first_step=100) == 0.02  # past the ramp: a plain rate
    assert learning_rate_schedule(0.02, 0, first_step=0) == 0.02  # no warm-up (Matterport's default)
    with pytest.raises(Exception, match="LEARNING_RATE_WARMUP_STEPS"):
        tiny_config(LEARNING_RATE_WARMUP_STEPS=-5)


def test_warmup_runs_on_across_stages_instead_of_restarting(tmp_path, datasets):
    """The ramp counts the run's steps: stage 2 goes on where stage 1 stopped, so after 4 of 3 warm-up
    steps it trains at its own rate (a ramp restarted per stage would still be at 2/3 of it)."""
    config = tiny_config(LEARNING_RATE_WARMUP_STEPS=3, STEPS_PER_EPOCH=2, IMAGES_PER_GPU=1)
    model = MaskRCNN("training", config, str(tmp_path))
    model.train(datasets[0], None, learning_rate=0.01, epochs=1, layers="all", verbose=0)
    optimizer = model.keras_model.optimizer
    assert int(optimizer.iterations) == 2
    assert float(optimizer.learning_rate) == pytest.approx(0.01 * (0.001 + 0.999 * 2 / 3), rel=1e-5)
    model.train(datasets[0], None, learning_rate=0.001, epochs=2, layers="all", verbose=0)
    optimizer = model.keras_model.optimizer
    assert int(optimizer.iterations) == 2 and float(optimizer.learning_rate) == pytest.approx(0.001, rel=1e-6)


@pytest.mark.parametrize("images, steps, expected", [(3, 50, 2), (20, 5, 5), (20, 10, 10), (21, 50, 11), (1, 50, 1)])
def test_validation_steps_stop_once_every_val_image_is_seen(images, steps, expected):
    from mrcnn.model.maskrcnn import validation_steps

    class Val:
        image_ids = np.arange(images)

    assert validation_steps(tiny_config(VALIDATION_STEPS=steps, IMAGES_PER_GPU=2), Val) == expected


def test_layer_lr_decay_scales_each_backbone_stage(tmp_path, datasets):
    """--layer-lr-decay through MaskRCNN.train: with a tiny decay the early stages (conv1, res2, res3:
    scales 1e-16, 1e-12, 1e-8) keep their kernels through a real training step, res5 (scale 1) and
    the heads move; the scale per variable follows the stage in its Matterport name."""
    from mrcnn.model.trainer import backbone_stage, layer_lr_scales

    assert [
        backbone_stage(p)
        for p in (
            "conv1/kernel",
            "bn_conv1/gamma",
            "res2a_branch2a/kernel",
            "bn4b_branch2b/beta",
            "res5c_branch1/kernel",
            "fpn_c5p5/kernel",
            "rpn_conv_shared/kernel",
            "mrcnn_mask_conv1/kernel",
        )
    ] == [1, 1, 2, 4, 5, None, None, None]
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        layer_lr_scales([], 0.0)
    model = MaskRCNN("training", tiny_config(STEPS_PER_EPOCH=1, GRADIENT_CLIP_NORM=1e6), str(tmp_path))
    kernels = {v.path: v for v in model.keras_model.trainable_variables if v.path.endswith("kernel")}
    before = {p: v.numpy().copy() for p, v in kernels.items()}
    model.train(datasets[0], None, learning_rate=0.05, epochs=1, layers="all", verbose=0, layer_lr_decay=1e-4)
    moved = {p: float(np.abs(v.numpy() - before[p]).max()) for p, v in kernels.items()}
    scales = dict(zip([v.path for v in model.keras_model.trainable_variables], model.keras_model.gradient_scales))
    assert scales["conv1/kernel"] == pytest.approx(1e-16) and scales["res5a_branch2a/kernel"] == 1.0
    early = [m for p, m in moved.items() if backbone_stage(p) in (1, 2, 3)]
    late = [m for p, m in moved.items() if backbone_stage(p) == 5 or p.startswith("mrcnn_")]
    assert early and late and max(late) > 1e-4
    assert max(early) < 1e-6 * max(late), f"early stages moved by {max(early)} against {max(late)}"
