"""Anchor generation (numpy vs TF), get_anchors, and Config validation / save-load."""

import json

import numpy as np
import pytest
import tensorflow as tf

from mrcnn.config import Config, ConfigError
from mrcnn.ops.anchors import (
    AnchorSpec,
    compute_backbone_shapes,
    generate_anchors,
    generate_pyramid_anchors,
    generate_pyramid_anchors_tf,
    get_anchors,
)
from mrcnn.ops.boxes import norm_boxes


class SmallConfig(Config):
    NAME = "anchors"
    NUM_CLASSES = 3
    BACKBONE = "resnet18"
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)


def stride_shapes(image_shape):
    """Feature shapes by the default rule, ceil(image / stride) for strides 4..64."""
    return compute_backbone_shapes(SmallConfig(), image_shape)


@pytest.mark.parametrize(
    "scale,ratios,shape,stride",
    [
        (32, [0.5, 1, 2], (8, 8), 4),
        (64, [1], (4, 6), 16),
        (24, [0.25, 0.5, 1, 2, 4], (5, 3), 8),
    ],
)
def test_generate_anchors_geometry(scale, ratios, shape, stride):
    anchors = generate_anchors(scale, ratios, shape, stride)
    rows, cols = shape
    assert anchors.shape == (rows * cols * len(ratios), 4) and anchors.dtype == np.float32
    a = anchors.reshape(rows, cols, len(ratios), 4).astype(np.float64)
    h = a[..., 2] - a[..., 0]
    w = a[..., 3] - a[..., 1]
    cy = (a[..., 0] + a[..., 2]) / 2
    cx = (a[..., 1] + a[..., 3]) / 2
    # Centres on the stride grid: cell (r, c) is centred at (r * stride, c * stride), ratio-major inside.
    np.testing.assert_allclose(cy, np.broadcast_to(np.arange(rows)[:, None, None] * stride, cy.shape), atol=1e-4)
    np.testing.assert_allclose(cx, np.broadcast_to(np.arange(cols)[None, :, None] * stride, cx.shape), atol=1e-4)
    # Ratio is width / height, area is scale ** 2.
    np.testing.assert_allclose(w / h, np.broadcast_to(np.asarray(ratios, float), w.shape), rtol=1e-5)
    np.testing.assert_allclose(w * h, scale**2, rtol=1e-5)


def test_generate_anchors_anchor_stride():
    anchors = generate_anchors(16, [0.5, 1, 2], (8, 8), 4, anchor_stride=2)
    assert len(anchors) == 4 * 4 * 3
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    np.testing.assert_allclose(np.unique(centres[:, 0]), [0, 8, 16, 24], atol=1e-4)


@pytest.mark.parametrize("image_shape", [(128, 128), (256, 192), (192, 256), (100, 150)])
def test_pyramid_anchors_tf_equals_numpy(image_shape):
    scales = (8, 16, 32, 64, 128)
    ratios = [0.5, 1, 2]
    strides = [4, 8, 16, 32, 64]
    shapes = stride_shapes(image_shape)
    ref = generate_pyramid_anchors(scales, ratios, shapes, strides)
    got = generate_pyramid_anchors_tf(scales, ratios, tf.constant(shapes, tf.int32), strides).numpy()
    expected_count = sum(int(np.ceil(image_shape[0] / s)) * int(np.ceil(image_shape[1] / s)) * 3 for s in strides)
    assert ref.shape == got.shape == (expected_count, 4)
    # Same anchors in the same order (numpy works in float64, TF in float32: values may differ by an ulp).
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)


def test_pyramid_anchors_tf_dynamic_shape():
    strides = [4, 8, 16, 32, 64]
    fn = tf.function(
        lambda shapes: generate_pyramid_anchors_tf((8, 16, 32, 64, 128), [0.5, 1, 2], shapes, strides),
        input_signature=[tf.TensorSpec([5, 2], tf.int32)],
    )
    for shape in [(128, 128), (256, 192)]:
        shapes = stride_shapes(shape)
        ref = generate_pyramid_anchors((8, 16, 32, 64, 128), [0.5, 1, 2], shapes, strides)
        np.testing.assert_allclose(fn(tf.constant(shapes, tf.int32)).numpy(), ref, atol=1e-4)


def test_pyramid_level_order():
    strides = [4, 8, 16, 32, 64]
    scales = (8, 16, 32, 64, 128)
    anchors = generate_pyramid_anchors(scales, [1], stride_shapes((128, 128)), strides)
    sides = anchors[:, 2] - anchors[:, 0]
    counts = [(128 // s) ** 2 for s in strides]
    start = 0
    for scale, count in zip(scales, counts):
        np.testing.assert_allclose(sides[start : start + count], scale)
        start += count
    assert start == len(anchors)


def test_get_anchors_normalized_vs_pixel():
    config = SmallConfig()
    pixel = get_anchors(config)
    normalized = get_anchors(config, normalized=True)
    assert pixel.shape == normalized.shape
    assert len(pixel) == sum((128 // s) ** 2 for s in config.BACKBONE_STRIDES) * len(config.RPN_ANCHOR_RATIOS)
    np.testing.assert_allclose(normalized, norm_boxes(pixel, (128, 128)), atol=1e-7)
    # A returned array is a copy: editing it does not poison the cache.
    pixel[:] = -1
    assert (get_anchors(config) != -1).any()
    other = get_anchors(config, image_shape=(256, 192))
    ref = generate_pyramid_anchors(
        config.RPN_ANCHOR_SCALES,
        config.RPN_ANCHOR_RATIOS,
        compute_backbone_shapes(config, (256, 192)),
        config.BACKBONE_STRIDES,
    )
    np.testing.assert_array_equal(other, ref)


def test_get_anchors_callable_backbone():
    class CallableConfig(SmallConfig):
        BACKBONE = staticmethod(lambda image, config: None)
        COMPUTE_BACKBONE_SHAPE = staticmethod(stride_shapes)

    config = CallableConfig()
    np.testing.assert_array_equal(get_anchors(config), get_anchors(SmallConfig()))


def test_anchor_spec_reads_the_config_once_and_matches_get_anchors():
    """AnchorSpec.from_config holds plain values (a changed config does not change it) and its
    anchors / level sizes are get_anchors' (with an anchor stride of 2, where cells are skipped)."""

    class Strided(SmallConfig):
        RPN_ANCHOR_STRIDE = 2

    config = Strided()
    spec = AnchorSpec.from_config(config)
    assert spec.scales == tuple(config.RPN_ANCHOR_SCALES) and spec.anchor_stride == 2
    assert all(isinstance(r, float) for r in spec.ratios) and spec.feature_shape_fn is None
    np.testing.assert_array_equal(spec.anchors((128, 96)), get_anchors(config, (128, 96)))
    per_level = spec.anchors_per_level((128, 96))
    assert sum(per_level) == len(spec.anchors((128, 96)))
    assert per_level[0] == len(range(0, 32, 2)) * len(range(0, 24, 2)) * len(config.RPN_ANCHOR_RATIOS)
    config.RPN_ANCHOR_SCALES = tuple(2 * s for s in config.RPN_ANCHOR_SCALES)
    assert spec != AnchorSpec.from_config(config) and spec.scales[0] * 2 == config.RPN_ANCHOR_SCALES[0]


# ------------------------------------------------------------------------------------ Config
def test_config_valid_and_derived():
    config = SmallConfig().validate()
    assert config.BATCH_SIZE == 2
    assert config.IMAGE_SHAPE.tolist() == [128, 128, 3]
    assert config.IMAGE_META_SIZE == 12 + 3


def test_config_rejects_scale_stride_mismatch():
    class Bad(SmallConfig):
        RPN_ANCHOR_SCALES = (8, 16, 32, 64)

    with pytest.raises(ConfigError, match="RPN_ANCHOR_SCALES has 4 values but BACKBONE_STRIDES has 5"):
        Bad().validate()


@pytest.mark.parametrize("mode,attr", [("square", "IMAGE_MAX_DIM"), ("crop", "IMAGE_MIN_DIM")])
def test_config_rejects_side_not_divisible_by_64(mode, attr):
    overrides = {"IMAGE_RESIZE_MODE": mode, "IMAGE_MIN_DIM": 128, "IMAGE_MAX_DIM": 128}
    overrides[attr] = 100 if mode == "crop" else 200
    with pytest.raises(ConfigError, match="divisible by 64") as info:
        SmallConfig(**overrides).validate()
    assert str(overrides[attr]) in str(info.value)


def test_config_collects_several_problems():
    with pytest.raises(ConfigError) as info:
        Config(NUM_CLASSES=1, IMAGE_MAX_DIM=1000).validate()
    text = str(info.value)
    assert "NAME is not set" in text and "NUM_CLASSES=1" in text and "divisible by 64" in text


def test_config_rejects_derived_override():
    with pytest.raises(ConfigError, match="computed"):
        SmallConfig(BATCH_SIZE=7)


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_config_save_load_round_trip(tmp_path, suffix):
    config = SmallConfig(
        IMAGES_PER_GPU=3, LEARNING_RATE=0.02, RPN_ANCHOR_RATIOS=[0.5, 1, 2, 3], MEAN_PIXEL=[1.0, 2.0, 3.0]
    )
    path = str(tmp_path / f"config{suffix}")
    config.save(path)
    loaded = SmallConfig.load(path)
    assert loaded.IMAGES_PER_GPU == 3 and loaded.LEARNING_RATE == pytest.approx(0.02)
    assert list(loaded.RPN_ANCHOR_RATIOS) == [0.5, 1, 2, 3]
    assert isinstance(loaded.MEAN_PIXEL, np.ndarray) and loaded.MEAN_PIXEL.tolist() == [1.0, 2.0, 3.0]
    assert list(loaded.RPN_ANCHOR_SCALES) == [8, 16, 32, 64, 128]
    assert loaded.BATCH_SIZE == 3
    assert loaded.to_dict() == config.to_dict()
    # Base Config loaded from the file takes every saved value.
    base = Config.load(path)
    assert base.NAME == "anchors" and base.IMAGE_MAX_DIM == 128 and base.BATCH_SIZE == 3


def test_config_load_recomputes_derived_values(tmp_path):
    path = tmp_path / "c.json"
    data = SmallConfig().to_dict()
    data.update(
        IMAGES_PER_GPU=4,
        GPU_COUNT=2,
        IMAGE_MAX_DIM=256,
        NUM_CLASSES=5,
        BATCH_SIZE=999,
        IMAGE_SHAPE=[1, 1, 1],
        IMAGE_META_SIZE=-1,
    )  # stale derived values
    path.write_text(json.dumps(data))
    loaded = SmallConfig.load(str(path))
    assert loaded.BATCH_SIZE == 8
    assert loaded.IMAGE_SHAPE.tolist() == [256, 256, 3]
    assert loaded.IMAGE_META_SIZE == 12 + 5


def test_config_file_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        SmallConfig.load(str(bad))
    lower = tmp_path / "lower.json"
    lower.write_text(json.dumps({"learning_rate": 1}))
    with pytest.raises(ConfigError, match="UPPER_CASE"):
        SmallConfig.load(str(lower))
    with pytest.raises(ConfigError, match="cannot read"):
        SmallConfig.load(str(tmp_path / "absent.json"))


def test_config_rejects_an_empty_rpn_conv():
    with pytest.raises(ConfigError, match="RPN_CONV_CHANNELS=0 must be >= 1"):
        SmallConfig(RPN_CONV_CHANNELS=0).validate()
