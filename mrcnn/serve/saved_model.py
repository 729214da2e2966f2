"""SavedModel export: raw image in, detections at the original size out, all in one graph.

    module = ServingModule(model.keras_model, config)
    export_saved_model(model.keras_model, config, "exported/facemask")
    served = tf.saved_model.load("exported/facemask")
    out = served.serve(tf.constant(image_uint8))   # image [H, W, 3], any size
    # out["boxes"] int32 [N, 4] (y1, x1, y2, x2; original pixels, y2/x2 exclusive),
    # out["class_ids"] int32 [N], out["scores"] float32 [N], out["masks"] uint8 [N, H, W] (0/1)

The SavedModel also has ``serving_default`` (same function, for TF Serving) and the string
variables ``class_names`` ([C], indexed by class id) and ``config_json``. No Python from this repository is needed
to serve it.
"""

from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf

from .graph_io import mold_image_tf, unmold_detections_tf


def build_export_model(keras_model, config):
    """The export-mode inference graph (:func:`mrcnn.model.graph.build_inference_graph` with
    ``export=True``: ops ONNX and TFLite builtins have) with ``keras_model``'s weights, layer by
    layer name."""
    from mrcnn.model.graph import build_inference_graph

    export = build_inference_graph(config, export=True)
    for layer in export.layers:
        if layer.weights:
            layer.set_weights(keras_model.get_layer(layer.name).get_weights())
    return export


class ServingModule(tf.Module):
    """A ``tf.Module`` around the inference Keras model with a ``serve(image)`` signature.

    ``portable=True``: serve the export-mode graph (:func:`build_export_model`) and paste masks
    without a loop: what the ONNX and TFLite exports convert (same I/O, same detections)."""

    def __init__(self, keras_model, config, class_names=None, portable: bool = False):
        super().__init__(name="facemask_serving")
        if config.IMAGE_RESIZE_MODE != "square":
            raise ValueError(f"export supports IMAGE_RESIZE_MODE='square' only, got {config.IMAGE_RESIZE_MODE!r}")
        self.portable = bool(portable)
        self.model = build_export_model(keras_model, config) if portable else keras_model
        self._cfg = dict(
            min_dim=int(config.IMAGE_MIN_DIM or 0),
            max_dim=int(config.IMAGE_MAX_DIM),
            min_scale=float(config.IMAGE_MIN_SCALE or 0),
            mean_pixel=[float(v) for v in np.asarray(config.MEAN_PIXEL).reshape(-1)],
            num_classes=int(config.NUM_CLASSES),
        )
        names = list(class_names) if class_names else ["BG"] + [f"class_{i}" for i in range(1, config.NUM_CLASSES)]
        self.class_names = tf.Variable(names, trainable=False, name="class_names")  # saved with the model
        self.config_json = tf.Variable(
            json.dumps(config.to_dict() if hasattr(config, "to_dict") else {}, default=_json_default),
            trainable=False,
            name="config_json",
        )

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8, name="image")], jit_compile=False)
    def serve(self, image):
        molded, meta, window = mold_image_tf(image, **self._cfg, dtype=tf.float32 if self.portable else tf.float64)
        out = self.model({"input_image": molded, "input_image_meta": meta}, training=False)
        max_dim = self._cfg["max_dim"]
        return unmold_detections_tf(
            out["detections"][0],
            out["mrcnn_mask"][0],
            tf.shape(image)[:2],
            tf.constant([max_dim, max_dim]),
            window,
            batched_paste=self.portable,
        )


def _json_default(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    return str(obj)


def export_saved_model(keras_model, config, out_dir: str, class_names=None) -> str:
    """Write the SavedModel to ``out_dir`` (created); returns ``out_dir``."""
    module = ServingModule(keras_model, config, class_names)
    os.makedirs(out_dir, exist_ok=True)
    tf.saved_model.save(module, out_dir, signatures={"serving_default": module.serve})
    return out_dir
