"""ONNX and TFLite export of the serving graph: same contract as the SavedModel
(:mod:`mrcnn.serve.saved_model`), converted from the portable ``ServingModule`` (export-mode graph:
gather ROIAlign, padded NMS, loop-free mask pasting, float32 resize arithmetic).

    export_onnx(model.keras_model, config, "exported/model.onnx", class_names)
    export_tflite(model.keras_model, config, "exported/model.tflite", class_names)

Each writes the model file and ``model.json`` beside it (class names, config); run them with
:func:`mrcnn.serve.runtimes.load_exported`. The TFLite file uses builtin ops only
(``TFLITE_BUILTINS``, no Select TF ops: the pip LiteRT runtime cannot run those).
"""

from __future__ import annotations

import os

import tensorflow as tf

from .runtimes import EXTRA, RuntimeMissingError, write_sidecar
from .saved_model import ServingModule, _json_default

ONNX_OPSET = 17


def config_dict(config) -> dict:
    """The config as plain JSON values (what model.json keeps)."""
    import json

    return json.loads(json.dumps(config.to_dict() if hasattr(config, "to_dict") else {}, default=_json_default))


def export_onnx(keras_model, config, path: str, class_names=None, opset: int = ONNX_OPSET) -> str:
    """Write ``path`` (.onnx) and its ``.json`` beside it; returns ``path``."""
    try:
        import tf2onnx
    except ImportError:
        raise RuntimeMissingError(f"ONNX export needs tf2onnx: pip install '{EXTRA}'") from None
    module = ServingModule(keras_model, config, class_names, portable=True)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    spec = [tf.TensorSpec([None, None, 3], tf.uint8, name="image")]
    tf2onnx.convert.from_function(module.serve, input_signature=spec, opset=opset, output_path=path)
    write_sidecar(path, "onnx", module.class_names.numpy().astype(str).tolist(), config_dict(config))
    return path


def export_tflite(keras_model, config, path: str, class_names=None) -> str:
    """Write ``path`` (.tflite, builtin ops only) and its ``.json`` beside it; returns ``path``."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    module = ServingModule(keras_model, config, class_names, portable=True)
    # Freeze first: converted as they are, Keras 3 variables stay resource variables that the
    # interpreter reads uninitialised (READ_VARIABLE fails, or NaN outputs).
    concrete = module.serve.get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete, lower_control_flow=False)
    names = sorted(concrete.structured_outputs)  # the frozen function returns them flat, in this order

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8, name="image")])
    def serve(image):
        return dict(zip(names, frozen(image)))  # keeps the output names in the signature

    holder = tf.Module()
    holder.serve = serve
    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], holder)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    data = converter.convert()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    write_sidecar(path, "tflite", module.class_names.numpy().astype(str).tolist(), config_dict(config))
    return path
