"""Run an exported ``model.onnx`` (onnxruntime), ``model.tflite`` (LiteRT, else ``tf.lite``) or SavedModel
folder with ``MaskRCNN.detect``'s interface, so the same code (inference, the web app) serves a checkpoint or
an exported model.

    model = load_exported("exported/model.onnx")     # reads exported/model.json beside it
    r = model.detect([image])[0]   # rois [N, 4] int32, class_ids [N], scores [N], masks bool [H, W, N]
    model.class_names              # by class id, 0 = BG

Each takes one uint8 RGB image [H, W, 3] of any size and returns ``boxes`` int32 [N, 4],
``class_ids`` int32 [N], ``scores`` float32 [N], ``masks`` uint8 [N, H, W]
(:mod:`mrcnn.serve.saved_model`'s contract). This module imports no TensorFlow: the ONNX path needs
none (TFLite uses ``ai_edge_litert`` when installed, the SavedModel needs TensorFlow).
"""

from __future__ import annotations

import json
import os

import numpy as np

FORMATS = {".onnx": "onnx", ".tflite": "tflite"}
#: pip extra that installs the runtimes (pyproject.toml).
EXTRA = "mrcnn-facemask[export]"


class RuntimeMissingError(ImportError):
    """The runtime for an exported format is not installed."""


class ExportedModelError(ValueError):
    """A file that is not a usable exported model."""


SAVED_MODEL_FILE = "saved_model.pb"


def is_saved_model(path: str) -> bool:
    """``path`` is a SavedModel folder."""
    return os.path.isfile(os.path.join(str(path), SAVED_MODEL_FILE))


def format_of(path: str) -> str | None:
    """onnx, tflite or saved_model for an exported model's path (by its name, or a SavedModel folder); else None."""
    if is_saved_model(path):
        return "saved_model"
    return FORMATS.get(os.path.splitext(str(path))[1].lower())


def sidecar_path(model_path: str) -> str:
    """``DIR/model.onnx`` -> ``DIR/model.json`` (class names and the config it was exported with);
    a SavedModel folder's is inside it."""
    if is_saved_model(model_path):
        return os.path.join(model_path, "model.json")
    return os.path.splitext(model_path)[0] + ".json"


def write_sidecar(model_path: str, fmt: str, class_names, config_dict: dict) -> str:
    path = sidecar_path(model_path)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(
            {
                "format": fmt,
                "class_names": list(class_names),
                "config": config_dict,
                "input": "image uint8 [H, W, 3] RGB",
                "outputs": {
                    "boxes": "int32 [N, 4] y1, x1, y2, x2 (y2/x2 exclusive)",
                    "class_ids": "int32 [N]",
                    "scores": "float32 [N]",
                    "masks": "uint8 [N, H, W] 0/1",
                },
            },
            f,
            indent=1,
        )
    return path


class ExportedModel:
    """An exported file with ``detect(images)`` like :class:`mrcnn.model.maskrcnn.MaskRCNN`.
    ``config``: the values the file was exported with (a dict; ``DETECTION_MIN_CONFIDENCE`` and
    ``DETECTION_MAX_INSTANCES`` are baked into the graph)."""

    def __init__(self, path: str, num_threads: int | None = None):
        self.path = path
        fmt = format_of(path)
        if fmt is None:
            raise ExportedModelError(f"{path}: not an exported model (expected .onnx, .tflite or a SavedModel folder)")
        self.format = fmt
        self.num_threads = int(num_threads or os.cpu_count() or 1)
        self.min_confidence: float | None = None  # filters above the threshold baked into the file
        self.max_detections: int | None = None
        meta = self._read_sidecar()
        self._run = {"onnx": self._load_onnx, "tflite": self._load_tflite, "saved_model": self._load_saved_model}[
            self.format
        ]()
        meta = meta or self._saved_model_meta  # a SavedModel exported before model.json: its own variables
        self.class_names = list(meta["class_names"])
        self.config = dict(meta.get("config") or {})

    def _read_sidecar(self) -> dict | None:
        meta_path = sidecar_path(self.path)
        try:
            with open(meta_path, encoding="utf-8") as f:
                meta = json.load(f)
        except FileNotFoundError:
            if self.format == "saved_model":
                return None
            raise ExportedModelError(
                f"{self.path}: {meta_path} is missing beside it (class names and config); "
                "export again with facemask-export"
            ) from None
        except json.JSONDecodeError as e:
            raise ExportedModelError(f"{meta_path}: not valid JSON ({e.msg}, line {e.lineno})") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("class_names"), list):
            raise ExportedModelError(
                f"{meta_path}: no class_names list (not written by facemask-export); export again with facemask-export"
            )
        return meta

    # ------------------------------------------------------------------ loading
    def _load_onnx(self):
        try:
            import onnxruntime as ort
        except ImportError:
            raise RuntimeMissingError(f"{self.path}: running ONNX needs onnxruntime: pip install '{EXTRA}'") from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.num_threads
        opts.log_severity_level = 3
        try:
            session = ort.InferenceSession(self.path, opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for bad files
            raise ExportedModelError(f"{self.path}: not a readable ONNX model ({_first_line(e)})") from None
        name = session.get_inputs()[0].name
        outputs = [o.name for o in session.get_outputs()]

        def run(image):
            return dict(zip(outputs, session.run(outputs, {name: image})))

        return run

    def _load_tflite(self):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            try:
                from tensorflow.lite.python.interpreter import Interpreter
            except ImportError:
                raise RuntimeMissingError(
                    f"{self.path}: running TFLite needs ai-edge-litert (or tensorflow): pip install '{EXTRA}'"
                ) from None
        try:
            interpreter = Interpreter(model_path=self.path, num_threads=self.num_threads)
            runner = interpreter.get_signature_runner("serving_default")
        except (ValueError, RuntimeError) as e:
            raise ExportedModelError(f"{self.path}: not a readable TFLite model ({_first_line(e)})") from None
        self._interpreter = interpreter  # the runner needs it alive

        def run(image):
            return runner(image=image)

        return run

    def _load_saved_model(self):
        try:
            import tensorflow as tf
        except ImportError:
            raise RuntimeMissingError(f"{self.path}: running a SavedModel needs tensorflow") from None
        loaded = tf.saved_model.load(self.path)
        serve = loaded.signatures["serving_default"]
        self._saved_model_meta = {
            "class_names": [n.decode() for n in loaded.class_names.numpy()],
            "config": json.loads(loaded.config_json.numpy().decode()),
        }

        def run(image):
            return {k: v.numpy() for k, v in serve(image=tf.constant(image)).items()}

        return run

    # ------------------------------------------------------------------ running
    def run(self, image: np.ndarray) -> dict:
        """One uint8 image [H, W, 3] -> the file's raw outputs (boxes, class_ids, scores, masks [N, H, W])."""
        image = np.ascontiguousarray(image, dtype=np.uint8)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an RGB image [H, W, 3], got shape {image.shape}")
        return self._run(image)

    def detect(self, images, verbose: int = 0) -> list[dict]:
        """Images -> one dict each as ``MaskRCNN.detect``: rois int32 [N, 4], class_ids int32 [N],
        scores float32 [N], masks bool [H, W, N]."""
        results = []
        for image in images:
            out = self.run(image)
            scores = np.asarray(out["scores"], np.float32).reshape(-1)
            keep = np.arange(len(scores))
            if self.min_confidence is not None:
                keep = keep[scores[keep] >= self.min_confidence]
            if self.max_detections is not None:
                keep = keep[: self.max_detections]  # already best first
            masks = np.asarray(out["masks"])[keep].astype(bool)
            results.append(
                {
                    "rois": np.asarray(out["boxes"], np.int32).reshape(-1, 4)[keep],
                    "class_ids": np.asarray(out["class_ids"], np.int32).reshape(-1)[keep],
                    "scores": scores[keep],
                    "masks": np.moveaxis(masks, 0, -1),
                }
            )
        return results


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


def load_exported(path: str, num_threads: int | None = None) -> ExportedModel:
    """An :class:`ExportedModel` for ``DIR/model.onnx``, ``DIR/model.tflite`` or a SavedModel folder."""
    if not (os.path.isfile(path) or is_saved_model(path)):
        raise FileNotFoundError(f"no such file: {path}")
    return ExportedModel(path, num_threads)
