#!/usr/bin/env python
"""Write a stand-in for Matterport's ``mask_rcnn_coco.h5``: the same layout, random weights.

    python tools/coco_standin.py /tmp/mask_rcnn_coco.h5
    MRCNN_COCO_WEIGHTS=/tmp/mask_rcnn_coco.h5 python train.py --profile gpu --weights coco ...

For tests, benchmarks and air-gapped trials of the COCO recipe where the real 246 MB file cannot be
downloaded. The layout is written from Keras 2's HDF5 format as Matterport's file has it, not with
this project's writer, so that the loader is checked against the format, not against itself:

* the root's ``layer_names`` attribute lists every layer of the model, weightless ones included (an
  empty ``weight_names``), with ``backend`` and ``keras_version`` attributes;
* a group per layer whose ``weight_names`` are ``<layer>/kernel:0``, ``<layer>/bias:0`` (convolutions,
  dense and transposed convolutions) or ``gamma:0, beta:0, moving_mean:0, moving_variance:0``
  (BatchNorm), in that order; the head layers are named as their TimeDistributed wrappers;
* the RPN's three layers nested in one ``rpn_model`` group (Matterport builds the RPN as a sub-model);
* ResNet-101, FPN width 256, a 512-wide RPN conv, heads for COCO's 81 classes (BG included).

The weights are random (He-normal kernels, BatchNorm that normalises the first conv and is the
identity after it, the last conv of each residual branch damped, so activations stay near unit scale
and the losses near those of the real file), seeded: the same seed gives the same file.
"""

from __future__ import annotations

import argparse
import sys

import h5py
import numpy as np

RPN_LAYERS = ("rpn_conv_shared", "rpn_class_raw", "rpn_bbox_pred")
BN_WEIGHTS = ("gamma", "beta", "moving_mean", "moving_variance")
COCO_CLASSES = 81
# Weightless layers of Matterport's graph, listed in its layer_names like any other layer.
WEIGHTLESS = (
    "input_image",
    "zero_padding2d_1",
    "activation_1",
    "max_pooling2d_1",
    "res2a_out",
    "fpn_p5upsampled",
    "fpn_p6",
    "input_anchors",
    "ROI",
    "roi_align_classifier",
    "mrcnn_bbox",
    "mrcnn_detection",
    "roi_align_mask",
)


def coco_layer_shapes(backbone: str = "resnet101") -> list[tuple[str, list[tuple]]]:
    """[(layer, [weight shapes in Keras-2 order])] of Matterport's COCO model, read off this project's
    ResNet model built with Matterport's sizes (the layer names and shapes are Matterport's; a test
    checks the count against Matterport's 64,158,584 parameters)."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from mrcnn.config import Config
    from mrcnn.model.maskrcnn import MaskRCNN
    from mrcnn.model.weights import iter_layers

    class CocoConfig(Config):
        NAME = "coco"
        BACKBONE = backbone
        NUM_CLASSES = COCO_CLASSES
        IMAGE_MIN_DIM = IMAGE_MAX_DIM = 128  # the weights' shapes do not depend on the image size
        IMAGES_PER_GPU = 1
        MIXED_PRECISION = False

    model = MaskRCNN("inference", CocoConfig(), model_dir="/tmp")
    return [
        (layer.name, [tuple(w.shape) for w in layer.weights])
        for layer in iter_layers(model.keras_model)
        if layer.weights
    ]


def imagenet_layer_shapes() -> list[tuple[str, list[tuple]]]:
    """The layers of keras-applications' ResNet-50 ImageNet file (no top): the backbone only."""
    return [
        (name, shapes)
        for name, shapes in coco_layer_shapes("resnet50")
        if name in ("conv1", "bn_conv1") or name.startswith(("res", "bn"))
    ]


def _weight_names(layer: str, shapes: list[tuple]) -> list[str]:
    if len(shapes) == 4 and all(len(s) == 1 for s in shapes):
        return [f"{layer}/{n}:0" for n in BN_WEIGHTS]
    return [f"{layer}/{n}:0" for n in ("kernel", "bias")[: len(shapes)]]


#: bn_conv1's moving variance: conv1's He-normal output on molded pixels (std ~60) has variance
#: ~2 * 60**2, which the trained file's statistics normalise to ~1 for the rest of the network.
CONV1_OUTPUT_VARIANCE = 2 * 60.0**2


def _values(layer: str, names: list[str], shapes: list[tuple], rng: np.random.Generator) -> list[np.ndarray]:
    out = []
    for name, shape in zip(names, shapes):
        kind = name.rsplit("/", 1)[1][:-2]
        if kind == "kernel":
            fan_in = int(np.prod(shape[:-1])) if len(shape) > 2 else shape[0]
            if layer == "mrcnn_mask_deconv":  # a transposed conv's kernel is (h, w, out, in)
                fan_in = int(np.prod(shape[:2])) * shape[3]
            scale = np.sqrt(2.0 / fan_in) * (0.2 if layer.endswith("branch2c") else 1.0)
            out.append((rng.standard_normal(shape) * scale).astype(np.float32))
        elif kind == "moving_variance":
            out.append(np.full(shape, CONV1_OUTPUT_VARIANCE if layer == "bn_conv1" else 1.0, np.float32))
        elif kind == "gamma":
            out.append(np.ones(shape, np.float32))
        else:  # bias, beta, moving_mean
            out.append(np.zeros(shape, np.float32))
    return out


def write_coco_standin(path: str, seed: int = 0, layer_shapes=None) -> dict:
    """Write the stand-in to ``path``; returns {"layers", "parameters"}."""
    rng = np.random.default_rng(seed)
    layer_shapes = layer_shapes or coco_layer_shapes()
    parameters = 0
    with h5py.File(path, "w") as f:
        layer_names = list(WEIGHTLESS[:5])  # the stem's weightless layers, as the first entries
        rpn = [(name, shapes) for name, shapes in layer_shapes if name in RPN_LAYERS]
        for name, shapes in layer_shapes:
            if name in RPN_LAYERS:
                continue
            if name == "mrcnn_class_conv1" and rpn:  # Matterport's order: the RPN sub-model before the heads
                layer_names += ["rpn_model", *WEIGHTLESS[5:]]
                _write_group(f, "rpn_model", rpn, rng)
                parameters += sum(int(np.prod(s)) for _, shapes_ in rpn for s in shapes_)
            _write_group(f, name, [(name, shapes)], rng)
            parameters += sum(int(np.prod(s)) for s in shapes)
            layer_names.append(name)
        for name in layer_names:
            if name not in f:
                g = f.create_group(name)
                g.attrs["weight_names"] = np.array([], dtype="S1")
        f.attrs["layer_names"] = np.array([n.encode() for n in layer_names])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.1.3"
    return {"layers": len(layer_names), "parameters": parameters}


def _write_group(f: h5py.File, group_name: str, layers: list[tuple[str, list[tuple]]], rng) -> None:
    group = f.create_group(group_name)
    all_names = []
    for layer, shapes in layers:
        names = _weight_names(layer, shapes)
        for name, value in zip(names, _values(layer, names, shapes, rng)):
            group.create_dataset(name, data=value)  # "conv1/kernel:0": h5py nests it as Keras 2 did
        all_names += names
    group.attrs["weight_names"] = np.array([n.encode() for n in all_names])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="the .h5 file to write")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--imagenet",
        action="store_true",
        help="the ResNet-50 ImageNet file's layout (backbone only) instead of the COCO model's",
    )
    a = p.parse_args(argv)
    shapes = imagenet_layer_shapes() if a.imagenet else None
    info = write_coco_standin(a.out, seed=a.seed, layer_shapes=shapes)
    what = "keras-applications' ResNet-50 ImageNet" if a.imagenet else "Matterport's COCO"
    print(f"{a.out}: {info['layers']} layers, {info['parameters']:,} parameters in {what} layout")
    return 0


if __name__ == "__main__":
    sys.exit(main())
