"""MIXED_PRECISION through the real code paths (CPU runs float16 and bfloat16 kernels too): the policy
is scoped to the model it builds, box geometry stays float32, a train step learns, and the weights
keep the float32 layout either way. detect() agreeing with float32 is pinned in test_overfit.py."""
from __future__ import annotations

import keras
import numpy as np
import pytest

import facemask
from mrcnn.config import ConfigError
from mrcnn.data.pipeline import build_dataset
from mrcnn.model import MaskRCNN
from mrcnn.model.weights import iter_layers, load_weights_by_name, save_weights_by_name

GEOMETRY_LAYERS = ("anchors", "ROI", "gt_boxes_normalized", "proposal_targets")


@pytest.fixture(scope="module")
def train_set(tiny_facemask_dir):
    return facemask.load_dataset(str(tiny_facemask_dir), "train", verbose=False)


@pytest.mark.parametrize("policy, compute, scaled", [(True, "float16", True), ("mixed_bfloat16", "bfloat16", False)])
def test_mixed_precision_trains_in_16_bits_without_leaking_its_policy(tmp_path, train_set, policy, compute, scaled):
    before = keras.config.dtype_policy().name
    model = MaskRCNN("training", facemask.make_config("tiny", MIXED_PRECISION=policy), str(tmp_path))
    assert keras.config.dtype_policy().name == before == "float32"  # building did not change the global policy

    by_name = {layer.name: layer for layer in iter_layers(model.keras_model)}
    assert by_name["conv1"].compute_dtype == compute and by_name["conv1"].variable_dtype == "float32"
    assert by_name["mrcnn_mask_conv1"].compute_dtype == compute
    for name in GEOMETRY_LAYERS:  # anchors, proposals and targets in float32, as torchvision's autocast
        assert by_name[name].compute_dtype == "float32", name

    model.set_trainable("all")
    model.compile(0.01, 0.9)
    assert isinstance(model.keras_model.optimizer, keras.mixed_precision.LossScaleOptimizer) == scaled
    batch = next(iter(build_dataset(train_set, model.config, shuffle=False, seed=0)))
    out = model.keras_model(batch, training=False)
    assert out["rpn_rois"].dtype == "float32" and out["rois"].dtype == "float32"
    assert out["rpn_bbox"].dtype == compute  # a conv output, cast up only where the losses use it
    conv1 = by_name["conv1"].kernel.numpy().copy()
    # float16's loss scale starts at 2**15: the optimizer skips steps whose gradients overflow and
    # halves the scale, so the weights may take a few steps to move.
    for _ in range(12):
        logs = model.keras_model.train_on_batch(batch, return_dict=True)
        for name in ("loss", "rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss", "mrcnn_bbox_loss",
                     "mrcnn_mask_loss"):
            assert np.isfinite(logs[name]), name
        if not np.allclose(conv1, by_name["conv1"].kernel.numpy()):
            break
    else:
        pytest.fail("12 steps left conv1 unchanged")
    assert all(np.isfinite(w.numpy()).all() for w in model.keras_model.trainable_weights)

    inference = MaskRCNN("inference", facemask.make_config("tiny", inference=True, MIXED_PRECISION=policy),
                         str(tmp_path))
    layers = {layer.name: layer for layer in iter_layers(inference.keras_model)}
    assert layers["conv1"].compute_dtype == compute
    for name in ("anchors", "ROI", "mrcnn_detection", "detection_boxes"):
        assert layers[name].compute_dtype == "float32", name
    assert not layers["roi_align_mask"].autocast  # its boxes are not cast down to 16 bits

    # The weights are float32 variables: a float32 model loads them bit for bit.
    path = str(tmp_path / "mixed.h5")
    save_weights_by_name(model.keras_model, path)
    plain = MaskRCNN("training", facemask.make_config("tiny"), str(tmp_path))
    assert {layer.name: layer for layer in iter_layers(plain.keras_model)}["conv1"].compute_dtype == "float32"
    load_weights_by_name(plain.keras_model, path, verbose=0)
    for a, b in zip(model.keras_model.weights, plain.keras_model.weights):
        assert a.dtype == b.dtype == "float32" and np.array_equal(a.numpy(), b.numpy()), a.path


@pytest.mark.parametrize("value", ["float16", "mixed_float32", 1.0, None])
def test_unknown_mixed_precision_value_is_a_config_error(value):
    with pytest.raises(ConfigError, match="MIXED_PRECISION"):
        facemask.make_config("tiny", MIXED_PRECISION=value).validate()
