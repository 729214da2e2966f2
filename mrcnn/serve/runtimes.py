"""Run an exported ``model.onnx`` (onnxruntime) or ``model.tflite`` (LiteRT, else ``tf.lite``) with
``MaskRCNN.detect``'s interface, so the same code (inference, the web app) serves a checkpoint or an
exported file.

    model = load_exported("exported/model.onnx")     # reads exported/model.json beside it
    r = model.detect([image])[0]   # rois [N, 4] int32, class_ids [N], scores [N], masks bool [H, W, N]
    model.class_names              # by class id, 0 = BG

Both files take one uint8 RGB image [H, W, 3] of any size and return ``boxes`` int32 [N, 4],
``class_ids`` int32 [N], ``scores`` float32 [N], ``masks`` uint8 [N, H, W]
(:mod:`mrcnn.serve.saved_model`'s contract). The ONNX path needs no TensorFlow.
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


def sidecar_path(model_path: str) -> str:
    """``DIR/model.onnx`` -> ``DIR/model.json`` (class names and the config it was exported with)."""
    return os.path.splitext(model_path)[0] + ".json"


def write_sidecar(model_path: str, fmt: str, class_names, config_dict: dict) -> str:
    path = sidecar_path(model_path)
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"format": fmt, "class_names": list(class_names), "config": config_dict,
                   "input": "image uint8 [H, W, 3] RGB",
                   "outputs": {"boxes": "int32 [N, 4] y1, x1, y2, x2 (y2/x2 exclusive)", "class_ids": "int32 [N]",
                               "scores": "float32 [N]", "masks": "uint8 [N, H, W] 0/1"}}, f, indent=1)
    return path


class ExportedModel:
    """An exported file with ``detect(images)`` like :class:`mrcnn.model.maskrcnn.MaskRCNN`.
    ``config``: the values the file was exported with (a dict; ``DETECTION_MIN_CONFIDENCE`` and
    ``DETECTION_MAX_INSTANCES`` are baked into the graph)."""

    def __init__(self, path: str, num_threads: int | None = None):
        self.path = path
        ext = os.path.splitext(path)[1].lower()
        if ext not in FORMATS:
            raise ExportedModelError(f"{path}: not an exported model (expected .onnx or .tflite)")
        self.format = FORMATS[ext]
        meta_path = sidecar_path(path)
        try:
            with open(meta_path, encoding="utf-8") as f:
                meta = json.load(f)
        except FileNotFoundError:
            raise ExportedModelError(f"{path}: {meta_path} is missing beside it (class names and config); "
                                     "export again with facemask-export") from None
        except json.JSONDecodeError as e:
            raise ExportedModelError(f"{meta_path}: not valid JSON ({e.msg}, line {e.lineno})") from None
        self.class_names = list(meta["class_names"])
        self.config = dict(meta.get("config", {}))
        self.num_threads = int(num_threads or os.cpu_count() or 1)
        self.min_confidence: float | None = None  # filters above the threshold baked into the file
        self.max_detections: int | None = None
        self._run = self._load_onnx() if self.format == "onnx" else self._load_tflite()

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
                raise RuntimeMissingError(f"{self.path}: running TFLite needs ai-edge-litert (or tensorflow): "
                                          f"pip install '{EXTRA}'") from None
        try:
            interpreter = Interpreter(model_path=self.path, num_threads=self.num_threads)
            runner = interpreter.get_signature_runner("serving_default")
        except (ValueError, RuntimeError) as e:
            raise ExportedModelError(f"{self.path}: not a readable TFLite model ({_first_line(e)})") from None
        self._interpreter = interpreter  # the runner needs it alive

        def run(image):
            return runner(image=image)

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
            results.append({"rois": np.asarray(out["boxes"], np.int32).reshape(-1, 4)[keep],
                            "class_ids": np.asarray(out["class_ids"], np.int32).reshape(-1)[keep],
                            "scores": scores[keep], "masks": np.moveaxis(masks, 0, -1)})
        return results


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


def load_exported(path: str, num_threads: int | None = None) -> ExportedModel:
    """An :class:`ExportedModel` for ``DIR/model.onnx`` or ``DIR/model.tflite``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    return ExportedModel(path, num_threads)
