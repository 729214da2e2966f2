"""Weights by layer name in the Keras-2 HDF5 layout of ``mask_rcnn_coco.h5``.

That layout (root attribute ``layer_names``; a group per layer whose ``weight_names`` attribute
lists datasets such as ``conv1/kernel:0``) is keyed by layer *name*, so it survives a change of
class count or of unrelated layers. We read Matterport's files with it, and write our own
checkpoints in it too, so one loader serves both, with ``exclude=`` and shape checks.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from mrcnn.runs import atomic_write

#: Class-specific heads to exclude when the number of classes differs from COCO's 81.
CLASS_SPECIFIC_HEADS = ("mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask")


class WeightsMismatchError(ValueError):
    """Saved and model weights have different shapes; the message names every layer."""


@dataclass
class LoadReport:
    loaded: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    missing_in_file: list[str] = field(default_factory=list)
    unused_in_file: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"loaded {len(self.loaded)} layers, excluded {len(self.excluded)}, "
            f"{len(self.missing_in_file)} model layers not in the file, "
            f"{len(self.unused_in_file)} file layers unused"
        )


def _decode(v):
    return v.decode("utf8") if isinstance(v, bytes) else str(v)


def _read_layers(path: str, arrays: bool) -> dict[str, list[tuple[str, Any]]]:
    """Walk a Keras-2 style h5: {layer: [(weight name, array or shape), ...]}; see read_layer_weights."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ValueError(f"{path} is not a readable HDF5 weights file: {e}") from None
    with f:
        root = f["model_weights"] if "model_weights" in f else f
        if "layer_names" not in root.attrs:
            raise ValueError(
                f"{path} is not in the Keras-2 by-name layout (no 'layer_names' attribute); "
                "Keras 3 '.weights.h5' files load with model.keras_model.load_weights(path)"
            )
        out: dict[str, list[tuple[str, Any]]] = {}
        for group_name in (_decode(n) for n in root.attrs["layer_names"]):
            group = root[group_name]
            wnames = [_decode(n) for n in group.attrs.get("weight_names", [])]
            prefixes = {w.split("/")[0] for w in wnames}
            nested = len(prefixes) > 1  # a sub-model's group holds several layers' weights
            for wname in wnames:
                layer = wname.split("/")[0] if nested else group_name
                value = np.asarray(group[wname]) if arrays else tuple(group[wname].shape)
                out.setdefault(layer, []).append((wname, value))
        return out


def read_layer_weights(path: str) -> dict[str, list[tuple[str, np.ndarray]]]:
    """{layer name: [(weight name, array), ...]} from a Keras-2 style h5 (``save_weights`` or whole model).

    Weights of nested models (Matterport's ``rpn_model``) are attributed to the layer named by
    their weight-name prefix (``rpn_conv_shared/kernel:0`` -> ``rpn_conv_shared``).
    """
    return _read_layers(path, arrays=True)


def read_layer_shapes(path: str) -> dict[str, list[tuple[str, tuple]]]:
    """Like :func:`read_layer_weights` but only the shapes: no weight data is read."""
    return _read_layers(path, arrays=False)


def load_weights_by_name(model, path: str, exclude=None, verbose: int = 1) -> LoadReport:
    """Assign weights from ``path`` to the layers of ``model`` with the same name.

    ``exclude`` is a list of layer names or regexes to skip. Every shape mismatch is collected and
    reported at once, naming layer, model shape and file shape, with the likely fix.
    """
    exclude = list(exclude or [])
    patterns = [re.compile(f"^(?:{p})$") for p in exclude]
    saved = read_layer_weights(path)
    report = LoadReport()
    mismatches, assignments = [], []
    model_layers = {layer.name: layer for layer in iter_layers(model)}
    for name, layer in model_layers.items():
        variables = list(layer.weights)  # Keras-2 order: kernel, bias / gamma, beta, mean, var
        if not variables:
            continue
        if any(p.match(name) for p in patterns):
            report.excluded.append(name)
            continue
        if name not in saved:
            report.missing_in_file.append(name)
            continue
        arrays = [a for _, a in saved[name]]
        if len(arrays) != len(variables):
            mismatches.append(f"  {name}: model has {len(variables)} weights, file has {len(arrays)}")
            continue
        bad = [(v, a) for v, a in zip(variables, arrays) if tuple(v.shape) != a.shape]
        if bad:
            mismatches.extend(f"  {name}: model {tuple(v.shape)} vs file {a.shape}" for v, a in bad)
            continue
        assignments.append((variables, arrays))
        report.loaded.append(name)
    if mismatches:
        heads = [m for m in mismatches if m.split(":")[0].strip() in CLASS_SPECIFIC_HEADS]
        hint = (
            "\nThese are the class-specific heads: your NUM_CLASSES differs from the file's. Load with "
            f"exclude={list(CLASS_SPECIFIC_HEADS)} to train them anew, or check NUM_CLASSES."
            if heads
            else "\nCheck BACKBONE and the config against the run that wrote this file."
        )
        raise WeightsMismatchError(
            f"{len(mismatches)} weight shape mismatch(es) loading {path}:\n" + "\n".join(mismatches) + hint
        )
    for variables, arrays in assignments:
        for v, a in zip(variables, arrays):
            v.assign(a.astype(v.dtype))
    report.unused_in_file = sorted(set(saved) - set(model_layers))
    if verbose:
        print(f"Weights from {path}: {report.summary()}")
    return report


def iter_layers(model):
    """All named layers, descending into nested models but not into TimeDistributed wrappers."""
    for layer in model.layers:
        if hasattr(layer, "layers") and not hasattr(layer, "layer") and layer.layers:
            yield from iter_layers(layer)
        else:
            yield layer


def copy_weights_by_name(source, target) -> int:
    """Copy every weight of ``source``'s layers into ``target``'s layers of the same name (the
    training and inference graphs share Matterport's names); returns how many layers were copied."""
    by_name = {layer.name: layer for layer in iter_layers(source) if layer.weights}
    copied = 0
    for layer in iter_layers(target):
        other = by_name.get(layer.name)
        if other is not None and layer.weights:
            layer.set_weights(other.get_weights())
            copied += 1
    return copied


def save_weights_by_name(model, path: str) -> None:
    """Write the model's weights in the by-name layout, atomically (temp file, then rename)."""
    with atomic_write(path) as tmp:
        with h5py.File(tmp, "w") as f:
            names = []
            for layer in iter_layers(model):
                variables = list(layer.weights)  # Keras-2 order: kernel, bias / gamma, beta, mean, var
                if not variables:
                    continue
                names.append(layer.name)
                group = f.create_group(layer.name)
                wnames = []
                for i, v in enumerate(variables):
                    wname = f"{layer.name}/{v.name}_{i}:0"
                    group.create_dataset(wname, data=np.asarray(v.numpy()))
                    wnames.append(wname.encode("utf8"))
                group.attrs["weight_names"] = wnames
            f.attrs["layer_names"] = [n.encode("utf8") for n in names]
            f.attrs["backend"] = b"tensorflow"
            f.attrs["keras_version"] = b"3"


def get_coco_weights(cache_dir: str | None = None) -> str:
    """Matterport's COCO-trained ``mask_rcnn_coco.h5`` (246 MB): downloaded once into Keras' cache,
    MD5-checked (``MRCNN_COCO_WEIGHTS`` replaces the source; see :mod:`mrcnn.model.pretrained`)."""
    from .pretrained import fetch_pretrained

    return fetch_pretrained("coco", cache_dir=cache_dir)
