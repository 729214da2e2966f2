"""Latency of every way to run one trained checkpoint, batch 1, one image at a time: Keras ``detect()``,
the SavedModel, ONNX Runtime and TFLite (LiteRT), interleaved in one process (image by image, runtime by
runtime, round after round) on the same images; medians and spread, load average, file sizes. Peer:
torchvision's ``maskrcnn_resnet50_fpn`` exported to ONNX and run by the same ONNX Runtime.

    python bench/export_latency.py --weights logs/facemask.../mask_rcnn_facemask_0029.h5 \\
        --images datasets/facemask/val          # writes bench/RESULTS.md "## Export latency"

Options: ``--rounds N`` (default 5), ``--limit N`` images (default 4), ``--no-write``, ``--no-xla``,
``--peer-python PY`` (a Python with torch + torchvision + onnx, default ``bench/.venv-bench/bin/python``:
it exports the peer in a child process, since torch and TensorFlow cannot share one; no such Python ->
no peer row). The exports go to ``bench/.cache/export_latency`` (made by ``facemask-export``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import io
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from results import machine_facts, write_section  # noqa: E402  (bench/results.py)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
SECTION = "## Export latency"
CACHE = ROOT / "bench" / ".cache" / "export_latency"
THREADS = 2
PEER_SIZE = 512

PEER_EXPORT = """
import sys, torch, torchvision
torch.set_num_threads(2); torch.manual_seed(0)
m = torchvision.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=2,
                                                       min_size={size}, max_size={size}).eval()
torch.onnx.export(m, ([torch.rand(3, {size}, {size})],), sys.argv[1], opset_version=17, dynamo=False,
                  input_names=["image"], output_names=["boxes", "labels", "scores", "masks"],
                  dynamic_axes={{"image": [1, 2]}})
print(torch.__version__, torchvision.__version__)
"""


def size_mb(path: Path) -> float:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6
    return path.stat().st_size / 1e6


def export_all(weights: str) -> dict[str, Path]:
    """Each format once (``facemask-export`` as typed), reused when already there."""
    from facemask import export

    paths = {
        "saved_model": CACHE / "saved_model",
        "onnx": CACHE / "onnx" / "model.onnx",
        "tflite": CACHE / "tflite" / "model.tflite",
    }
    for fmt, path in paths.items():
        if not path.exists():
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                rc = export.main(
                    ["--weights", weights, "--format", fmt, "--out", str(path if fmt == "saved_model" else path.parent)]
                )
            assert rc == 0, f"facemask-export --format {fmt} failed"
            print(f"exported {fmt} in {time.perf_counter() - t0:.0f} s")
    return paths


def export_peer(python: str) -> tuple[Path | None, str]:
    """torchvision's Mask R-CNN as ONNX via ``python`` (a torch venv); (None, why) without one."""
    path = CACHE / "peer" / "maskrcnn_resnet50_fpn.onnx"
    note = path.with_suffix(".txt")
    if path.exists() and note.exists():
        return path, note.read_text().strip()
    if not python or not os.path.exists(python):
        return None, f"no torch Python at {python}"
    path.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [python, "-c", PEER_EXPORT.format(size=PEER_SIZE), str(path)], capture_output=True, text=True, timeout=900
    )
    if proc.returncode != 0:
        return None, "export failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:200]
    note.write_text("torch/torchvision " + proc.stdout.strip().splitlines()[-1])
    return path, note.read_text()


class Peer:
    """The torchvision ONNX file in ONNX Runtime: float [3, H, W] in 0..1 (its transform is in the graph)."""

    def __init__(self, path: Path):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = THREADS
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def detect(self, images):
        import numpy as np

        out = []
        for image in images:
            x = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / 255.0
            boxes, labels, scores, masks = self.session.run(None, {"image": x})
            out.append({"scores": scores, "masks": masks > 0.5})
        return out


def xla_check(keras_model, config, image) -> str:
    """Whether XLA (``jit_compile=True``) compiles the export-mode model (molded input, fixed size) and
    the whole serving function (any image size), against the ``detect()`` graph; compile time and speed."""
    import numpy as np
    import tensorflow as tf

    from mrcnn.serve.graph_io import mold_image_tf
    from mrcnn.serve.saved_model import ServingModule, build_export_model

    def attempt(fn, *args) -> tuple[float | None, str]:
        try:
            t0 = time.perf_counter()
            fn(*args)
            return time.perf_counter() - t0, ""
        except Exception as e:  # noqa: BLE001  (the answer is the error)
            ops = sorted(set(re.findall(r"No registered '(\w+)' OpKernel for XLA", str(e))))
            if ops:
                return None, f"no XLA kernel for {', '.join(ops)}"
            first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
            return None, f"{type(e).__name__}: {first[:160]}"

    cfg = dict(
        min_dim=int(config.IMAGE_MIN_DIM or 0),
        max_dim=int(config.IMAGE_MAX_DIM),
        min_scale=float(config.IMAGE_MIN_SCALE or 0),
        mean_pixel=[float(v) for v in np.asarray(config.MEAN_PIXEL).reshape(-1)],
        num_classes=int(config.NUM_CLASSES),
    )
    molded, meta, _ = mold_image_tf(tf.constant(image), **cfg, dtype=tf.float32)
    parts = []
    for name, model in (
        ("export-mode model", build_export_model(keras_model, config)),
        ("detect() model", keras_model),
    ):
        call = lambda a, b, m=model: m({"input_image": a, "input_image_meta": b}, training=False)  # noqa: E731
        xla, plain = tf.function(call, jit_compile=True), tf.function(call, jit_compile=False)
        compile_s, error = attempt(xla, molded, meta)
        if compile_s is None:
            parts.append(f"{name}: no ({error})")
            continue
        plain(molded, meta)
        t_xla = statistics.median(attempt(xla, molded, meta)[0] for _ in range(5))
        t_plain = statistics.median(attempt(plain, molded, meta)[0] for _ in range(5))
        parts.append(
            f"{name}: yes, compiled in {compile_s:.1f} s; {1000 * t_xla:.0f} ms a call vs "
            f"{1000 * t_plain:.0f} ms without XLA (median of 5)"
        )
    module = ServingModule(keras_model, config, portable=True)
    serve = tf.function(lambda x: module.serve.python_function(x), jit_compile=True)
    compile_s, error = attempt(serve, tf.constant(image))
    parts.append(
        "whole export-mode serving function (image of any size in): "
        + (f"yes, compiled in {compile_s:.1f} s" if compile_s is not None else f"no ({error})")
    )
    return "; ".join(parts)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", required=True, help="a trained checkpoint (.h5 with its run's config.json)")
    p.add_argument("--images", required=True, help="a folder of images")
    p.add_argument("--limit", type=int, default=4)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--peer-python", default=str(ROOT / "bench" / ".venv-bench" / "bin" / "python"))
    p.add_argument("--no-xla", action="store_true")
    p.add_argument("--no-write", action="store_true")
    a = p.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    from facemask.cli import build_model, checkpoint_config
    from mrcnn.data.image_io import read_image_rgb
    from mrcnn.serve.runtimes import load_exported

    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    load_start = os.getloadavg()
    files = sorted(f for f in Path(a.images).iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png"))[: a.limit]
    images = [read_image_rgb(f) for f in files]
    paths = export_all(a.weights)
    peer_path, peer_note = export_peer(a.peer_python)
    print(f"peer: {peer_path or 'none'} ({peer_note})")

    with contextlib.redirect_stdout(io.StringIO()):
        ckpt = checkpoint_config(a.weights)
        keras_model = build_model(ckpt)
    runners = {"Keras detect()": keras_model}
    labels = {
        "Keras detect()": "Keras `detect()` (TF, numpy pasting)",
        "SavedModel": "SavedModel (TF)",
        "ONNX Runtime": "ONNX (onnxruntime)",
        "TFLite": "TFLite (ai_edge_litert)",
    }
    for name, fmt in (("SavedModel", "saved_model"), ("ONNX Runtime", "onnx"), ("TFLite", "tflite")):
        runners[name] = load_exported(str(paths[fmt]), num_threads=THREADS)
    if peer_path is not None:
        runners["torchvision ONNX"] = Peer(peer_path)
        labels["torchvision ONNX"] = f"torchvision maskrcnn_resnet50_fpn, random init, {PEER_SIZE} px (onnxruntime)"

    counts = {}
    for name, runner in runners.items():  # warm-up: tracing, session set-up, TFLite's first plan per size
        counts[name] = [len(runner.detect([im])[0]["scores"]) for im in images]
    times = {name: [] for name in runners}
    for _ in range(a.rounds):
        for im in images:
            for name, runner in runners.items():
                t0 = time.perf_counter()
                runner.detect([im])
                times[name].append(1000 * (time.perf_counter() - t0))
    load_end = os.getloadavg()
    xla = "not tried (--no-xla)" if a.no_xla else xla_check(keras_model.keras_model, ckpt.config, images[0])
    print("XLA:", xla)

    sizes = {
        "Keras detect()": size_mb(Path(a.weights)),
        "SavedModel": size_mb(paths["saved_model"]),
        "ONNX Runtime": size_mb(paths["onnx"]),
        "TFLite": size_mb(paths["tflite"]),
    }
    if peer_path is not None:
        sizes["torchvision ONNX"] = size_mb(peer_path)
    base = statistics.median(times["Keras detect()"])
    rows = []
    for name, t in times.items():
        q = np.percentile(t, [10, 90])
        med = statistics.median(t)
        rows.append(
            f"| {labels[name]} | {med:.0f} | {q[0]:.0f}-{q[1]:.0f} | {med / base:.2f} | "
            f"{sizes[name]:.1f} | {'/'.join(map(str, counts[name]))} |"
        )
        print(rows[-1])

    facts = machine_facts()
    c = ckpt.config
    lines = [
        SECTION,
        "",
        f"`python bench/export_latency.py --weights {a.weights} --images {a.images}` ({_dt.date.today()}): one trained "
        f"checkpoint (profile {getattr(c, 'PROFILE', '?')}, {c.BACKBONE}, {c.IMAGE_MAX_DIM} px, "
        f"DETECTION_MIN_CONFIDENCE={c.DETECTION_MIN_CONFIDENCE}) run four ways on {len(images)} images of "
        f"{'/'.join(sorted({f'{im.shape[1]}x{im.shape[0]}' for im in images}))}, batch 1, {THREADS} threads each; "
        f"{a.rounds} rounds, interleaved image by image and runtime by runtime after one warm-up call per image. "
        "Each time is the whole call: image in, boxes, classes, scores and full-size masks out (resize and mask "
        "pasting included).",
        "",
        f"Machine: {facts['nproc']} CPU cores ({facts['cpu']}; {facts['isa']}), Python {facts['python']}, TensorFlow "
        f"{facts.get('tensorflow', '?')}, onnxruntime {_version('onnxruntime')}, ai-edge-litert {_version('ai-edge-litert')}; "
        f"load average {' / '.join(f'{v:.2f}' for v in load_start)} at start, "
        f"{' / '.join(f'{v:.2f}' for v in load_end)} at the end (shared machine: other work slows every row alike).",
        "",
        "| runtime | median ms/image | p10-p90 | vs Keras | model file MB | detections per image |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "TFLite re-plans its tensors whenever the input size changes (these images alternate two sizes), "
        "part of its time here; ONNX Runtime and TensorFlow take any size as it comes.",
        "",
        f"XLA (`jit_compile=True`, tried once each): {xla}.",
        "",
        "Peer: "
        + (
            f"torchvision's Mask R-CNN exported with `torch.onnx.export` (opset 17), {peer_note}; random "
            "weights (no face-mask torchvision model exists), so its detection count and the work in its heads "
            "differ from a trained model's, and it is ResNet-50 FPN at 512 px against our profile's smaller "
            "backbone and input: an order of magnitude, not a like-for-like ratio."
            if peer_path is not None
            else f"skipped ({peer_note})."
        ),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if not a.no_write:
        write_section(SECTION, text)
    return 0


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


if __name__ == "__main__":
    sys.exit(main())
