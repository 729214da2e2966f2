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
from mrcnn.model import MaskRCNN, precision
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
        for name in (
            "loss",
            "rpn_class_loss",
            "rpn_bbox_loss",
            "mrcnn_class_loss",
            "mrcnn_bbox_loss",
            "mrcnn_mask_loss",
        ):
            assert np.isfinite(logs[name]), name
        if not np.allclose(conv1, by_name["conv1"].kernel.numpy()):
            break
    else:
        pytest.fail("12 steps left conv1 unchanged")
    assert all(np.isfinite(w.numpy()).all() for w in model.keras_model.trainable_weights)

    inference = MaskRCNN(
        "inference", facemask.make_config("tiny", inference=True, MIXED_PRECISION=policy), str(tmp_path)
    )
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


CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni
bogomips\t: 5192.00
"""


@pytest.mark.parametrize(
    "flags, gpus, machine, expected",
    [
        ({"avx2", "avx512f", "avx512_bf16"}, 0, "x86_64", "mixed_bfloat16"),  # AMD Zen 4, Intel Cooper Lake
        ({"avx2", "amx_bf16", "amx_tile"}, 0, "x86_64", "mixed_bfloat16"),  # Intel Sapphire Rapids
        ({"avx2", "avx512f", "avx512_vnni"}, 0, "x86_64", "float32"),  # Cascade Lake: bfloat16 only emulated
        ({"avx2", "avx512f", "avx512_bf16"}, 1, "x86_64", "float32"),  # a GPU: the user picks its policy
        ({"bf16"}, 0, "aarch64", "float32"),  # ARM's bf16 flag: oneDNN's x86 kernels do not apply
        (set(), 0, "x86_64", "float32"),  # no /proc/cpuinfo (macOS, Windows)
    ],
)
def test_auto_precision_is_bfloat16_only_on_an_x86_cpu_with_bfloat16_and_no_gpu(flags, gpus, machine, expected):
    assert precision.auto_policy(frozenset(flags), gpus=gpus, machine=machine) == expected


@pytest.mark.parametrize(
    "cap, expected",
    [
        ("AVX2", "float32"),
        ("avx512_core", "float32"),  # kernels capped below bfloat16: emulating an older CPU
        ("AVX512_CORE_BF16", "mixed_bfloat16"),
        ("", "mixed_bfloat16"),
        (None, "mixed_bfloat16"),
    ],
)
def test_auto_precision_follows_a_onednn_isa_cap(cap, expected):
    flags = frozenset({"avx2", "avx512f", "avx512_bf16"})
    assert precision.auto_policy(flags, gpus=0, machine="x86_64", onednn_max_isa=cap) == expected


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    assert precision.cpu_flags(str(path)) == {"fpu", "sse2", "avx2", "avx512f", "avx512_bf16", "avx512_vnni"}
    assert precision.cpu_flags(str(tmp_path / "absent")) == frozenset()


@pytest.mark.parametrize(
    "here, compute, scaled", [("mixed_bfloat16", "bfloat16", False), ("float32", "float32", False)]
)
def test_auto_precision_builds_with_the_policy_the_machine_supports(
    tmp_path, monkeypatch, train_set, here, compute, scaled, capsys
):
    monkeypatch.setattr(precision, "_auto_policy_here", lambda: here)
    config = facemask.make_config("tiny", MIXED_PRECISION="auto", STEPS_PER_EPOCH=1, VALIDATION_STEPS=1)
    model = MaskRCNN("training", config, str(tmp_path))
    by_name = {layer.name: layer for layer in iter_layers(model.keras_model)}
    assert by_name["conv1"].compute_dtype == compute and by_name["conv1"].variable_dtype == "float32"
    model.train(train_set, None, 0.01, epochs=1, layers="all")
    assert isinstance(model.keras_model.optimizer, keras.mixed_precision.LossScaleOptimizer) == scaled
    said = capsys.readouterr().out
    assert ("compute mixed_bfloat16 (MIXED_PRECISION='auto')" in said) == (here == "mixed_bfloat16")
    assert all(np.isfinite(w.numpy()).all() for w in model.keras_model.trainable_weights)
