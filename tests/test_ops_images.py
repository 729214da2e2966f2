"""Image meta packing/parsing and square resize/pad: numpy originals and TF twins together."""

import numpy as np
import tensorflow as tf

from mrcnn.ops.images import (
    compose_image_meta,
    compose_image_meta_tf,
    compute_scale,
    compute_scale_tf,
    parse_image_meta,
    parse_image_meta_tf,
    resize_image,
    resize_image_tf,
)


def test_image_meta_packs_and_parses_the_same_in_numpy_and_tf():
    args = (7, (150, 200, 3), (128, 128, 3), (16, 0, 112, 128), 0.64, np.array([1, 1, 0]))
    meta = compose_image_meta(*args)
    meta_tf = compose_image_meta_tf(*[tf.constant(a) for a in args]).numpy()
    np.testing.assert_array_equal(meta_tf, meta)
    assert meta.shape == (12 + 3,)
    parsed, parsed_tf = parse_image_meta(meta[None]), parse_image_meta_tf(tf.constant(meta[None]))
    assert parsed["image_id"].tolist() == [7] and parsed["window"].tolist() == [[16, 0, 112, 128]]
    assert parsed["image_shape"].tolist() == [[128, 128, 3]] and parsed["active_class_ids"].tolist() == [[1, 1, 0]]
    for key, value in parsed.items():
        np.testing.assert_allclose(parsed_tf[key].numpy(), value, rtol=1e-6, err_msg=key)


def test_square_resize_geometry_numpy_and_tf_agree():
    for h, w in [(150, 200), (90, 60), (128, 128), (300, 64)]:
        image = np.full((h, w, 3), 200, np.uint8)
        resized, info = resize_image(image, min_dim=100, max_dim=128, mode="square")
        padded, window, scale = resize_image_tf(tf.constant(image), 100, 128)
        assert float(scale) == compute_scale(h, w, 100, 128) == float(compute_scale_tf(h, w, 100, 128))
        assert tuple(window.numpy()) == info.window
        np.testing.assert_array_equal(padded.numpy(), resized.astype(np.float32))  # flat image: no rounding


def test_resize_spec_reads_the_config_once_and_resizes_as_resize_image():
    import facemask
    from mrcnn.ops.images import ResizeSpec, resize_geometry, resize_image

    config = facemask.make_config("tiny")
    spec = ResizeSpec.from_config(config)
    assert (spec.min_dim, spec.max_dim, spec.mode) == (config.IMAGE_MIN_DIM, config.IMAGE_MAX_DIM, "square")
    image = np.random.default_rng(0).integers(0, 255, (90, 150, 3), dtype=np.uint8)
    resized, info = spec.resize(image)
    want, want_info = resize_image(
        image,
        min_dim=config.IMAGE_MIN_DIM,
        max_dim=config.IMAGE_MAX_DIM,
        min_scale=config.IMAGE_MIN_SCALE,
        mode="square",
    )
    np.testing.assert_array_equal(resized, want)
    assert info == want_info and spec.geometry(90, 150) == resize_geometry(90, 150, 128, 128, 0, "square")
    config.IMAGE_MAX_DIM = 256  # read once: the spec keeps its values
    assert spec.max_dim == 128
    assert [
        (ResizeSpec(64, 128, 0, m).fixed_size, ResizeSpec(64, 128, 0, m).deterministic)
        for m in ("square", "crop", "pad64", "none")
    ] == [(True, True), (True, False), (False, True), (False, True)]
