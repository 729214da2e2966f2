"""ONNX and TFLite export end to end: ``python -m facemask.export --format onnx|tflite`` on a tiny run,
the files' detections against ``detect()`` (box IoU, mask IoU, scores, class ids), ``inference.py
--weights DIR/model.onnx|tflite`` against the checkpoint's outputs, the web app on an exported file,
and the one-line errors.

One exported model per format for the whole module (the two exports run as parallel subprocesses),
tiny images: these tests add well under 90 s to CI on 2 cores.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.test_cli_eval_inference import RUN, Background, cli, one_line_error  # noqa: E402

FORMATS = ("onnx", "tflite")
SIZES = [(150, 200), (90, 60), (128, 128)]
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _sure_detections(model) -> None:
    """A fixed-seed random model whose detections are stable enough to compare: no box regression
    (boxes are anchors, never degenerate) and classifier logits biased to class 1 with small
    noise, so scores are ~0.95 and all different (no ties whose order could flip)."""
    for w in model.keras_model.weights:
        layer = w.path.split("/")[0]
        if layer in ("rpn_bbox_pred", "mrcnn_bbox_fc"):
            w.assign(np.zeros(w.shape, dtype="float32"))
        elif layer == "mrcnn_class_logits":
            value = np.asarray(w.numpy())
            if w.path.endswith("bias"):
                value = np.zeros_like(value)
                value[1:] = 3.0
            else:
                value = value * 0.1
            w.assign(value.astype("float32"))


def _image(h, w, seed):
    from facemask.synthetic import draw_sample

    image, _ = draw_sample(np.random.default_rng(seed), h, w, negative=False)
    return image


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny run, its inference model in process, and both formats exported from it by the CLI
    (the two subprocesses overlap), then inference.py on each (also overlapping)."""
    import keras
    from PIL import Image

    import facemask
    from mrcnn.model.maskrcnn import MaskRCNN

    tmp = tmp_path_factory.mktemp("export_formats")
    run = tmp / "logs" / RUN
    run.mkdir(parents=True)
    keras.utils.set_random_seed(0)
    config = facemask.make_config("tiny", inference=True)
    model = MaskRCNN("inference", config, str(tmp / "logs"))
    _sure_detections(model)
    weights = run / "mask_rcnn_facemask_0001.h5"
    model.save_weights(str(weights))
    facemask.make_config("tiny").save(str(run / "config.json"))
    jobs = {fmt: Background(tmp / f"export_{fmt}_log", "-m", "facemask.export", "--weights", weights,
                            "--format", fmt, "--out", tmp / fmt) for fmt in FORMATS}
    images = tmp / "images"
    images.mkdir()
    for i, (h, w) in enumerate(SIZES):
        Image.fromarray(_image(h, w, seed=i)).save(images / f"img{i}.png")
    done = {fmt: job.result(timeout=600) for fmt, job in jobs.items()}
    for fmt, proc in done.items():
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    infer = {fmt: Background(tmp / f"infer_{fmt}_log", "inference.py", "--weights", tmp / fmt / f"model.{fmt}",
                             "--input", images, "--output", tmp / f"out_{fmt}", "--no-progress")
             for fmt in FORMATS}
    return {"tmp": tmp, "model": model, "weights": weights, "images": images, "export": done, "infer": infer}


def _iou(a, b) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def _box_iou(a, b) -> float:
    ih = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iw = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ih * iw
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 1.0


@pytest.mark.parametrize("fmt", FORMATS)
def test_exported_file_detects_as_detect(exported, fmt):
    from mrcnn.serve.runtimes import load_exported

    path = exported["tmp"] / fmt / f"model.{fmt}"
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["format"] == fmt and meta["class_names"] == ["BG", "mask"]
    served = load_exported(str(path))
    total, box_ious, mask_ious, score_diffs = 0, [], [], []
    for i, (h, w) in enumerate(SIZES):
        image = _image(h, w, seed=i)
        ref = exported["model"].detect([image])[0]
        got = served.detect([image])[0]
        n = len(ref["class_ids"])
        total += n
        assert got["masks"].shape == (h, w, n) and got["masks"].dtype == bool
        assert got["rois"].dtype == np.int32 and got["scores"].dtype == np.float32
        np.testing.assert_array_equal(np.sort(got["class_ids"]), np.sort(ref["class_ids"]))
        # Pair each detection with the other side's best-overlapping one of its class: scores ~2e-3 apart
        # (the resize, below) may swap two neighbours in the ranking.
        for j in range(n):
            ious = [_box_iou(got["rois"][k], ref["rois"][j]) if got["class_ids"][k] == ref["class_ids"][j] else -1
                    for k in range(n)]
            k = int(np.argmax(ious))
            box_ious.append(ious[k])
            score_diffs.append(abs(float(got["scores"][k]) - float(ref["scores"][j])))
            mask_ious.append(_iou(got["masks"][..., k], ref["masks"][..., j]))
        print(f"{fmt} {h}x{w}: order equal {np.array_equal(got['rois'], ref['rois'])}")
    assert total >= 10, "the fixture model must detect something to compare"
    print(f"{fmt}: {total} detections on {len(SIZES)} images; max |score diff| {max(score_diffs):.2e}; "
          f"box IoU min {min(box_ious):.3f} mean {np.mean(box_ious):.4f}; "
          f"mask IoU min {min(mask_ious):.3f} mean {np.mean(mask_ious):.4f}")
    # detect() resizes with OpenCV, the exported graph with tf.image.resize (<= 1 grey level apart,
    # as the SavedModel; tests/test_export.py): on the upscaled 90x60 image that moves scores by ~2e-3.
    assert max(score_diffs) <= 5e-3
    assert min(box_ious) >= 0.9 and np.mean(box_ious) >= 0.99
    assert min(mask_ious) >= 0.9 and np.mean(mask_ious) >= 0.98


@pytest.fixture(scope="module")
def checkpoint_outputs(exported):
    """inference's outputs for the checkpoint itself (in process: the model is already built)."""
    from facemask.inference import build_parser, infer_folder

    out = exported["tmp"] / "out_checkpoint"
    args = build_parser().parse_args(["--weights", str(exported["weights"]), "--input", str(exported["images"]),
                                      "--output", str(out), "--no-progress"])
    infer_folder(args, model=exported["model"])
    return out


@pytest.mark.parametrize("fmt", FORMATS)
def test_inference_cli_on_exported_file_writes_what_the_checkpoint_writes(exported, checkpoint_outputs, fmt):
    proc = exported["infer"][fmt].result(timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    out = exported["tmp"] / f"out_{fmt}"
    ref = json.loads((checkpoint_outputs / "predictions.json").read_text())
    got = json.loads((out / "predictions.json").read_text())
    assert got["categories"] == ref["categories"]
    assert [i["file_name"] for i in got["images"]] == [i["file_name"] for i in ref["images"]]
    assert [i["n_detections"] for i in got["images"]] == [i["n_detections"] for i in ref["images"]]
    assert got["info"]["detection_min_confidence"] == ref["info"]["detection_min_confidence"]
    assert len(got["annotations"]) == len(ref["annotations"]) > 0
    for a, b in zip(got["annotations"], ref["annotations"]):
        assert (a["file_name"], a["category_id"]) == (b["file_name"], b["category_id"])
        assert abs(a["score"] - b["score"]) <= 5e-3
        assert np.abs(np.subtract(a["bbox"], b["bbox"])).max() <= 2
        assert abs(a["area"] - b["area"]) <= 0.1 * max(b["area"], 10)
    with open(checkpoint_outputs / "summary.csv") as f1, open(out / "summary.csv") as f2:
        rows_ref, rows_got = list(csv.DictReader(f1)), list(csv.DictReader(f2))
    assert [(r["file"], r["n_detections"], r["mask"]) for r in rows_got] == \
        [(r["file"], r["n_detections"], r["mask"]) for r in rows_ref]
    for r, g in zip(rows_ref, rows_got):
        assert abs(float(r["mean_score"] or 0) - float(g["mean_score"] or 0)) <= 5e-3
        assert abs(float(r["mask_area_pct"]) - float(g["mask_area_pct"])) <= 1.0
    assert sorted(p.name for p in out.glob("*.png")) == sorted(p.name for p in checkpoint_outputs.glob("*.png"))
    assert f"exported {fmt} model" in proc.stdout


def test_app_serves_an_exported_file(exported):
    from fastapi.testclient import TestClient
    from PIL import Image
    import io

    from facemask.app import build_parser, create_app, load_predictor

    path = exported["tmp"] / "onnx" / "model.onnx"
    predictor = load_predictor(build_parser().parse_args(["--weights", str(path)]))
    buf = io.BytesIO()
    Image.fromarray(_image(150, 200, seed=0)).save(buf, format="PNG")
    ref = exported["model"].detect([_image(150, 200, seed=0)])[0]
    with TestClient(create_app(predictor)) as client:
        r = client.post("/api/predict", files={"file": ("a.png", buf.getvalue(), "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [d["class_name"] for d in body["detections"]] == ["mask"] * len(ref["class_ids"])
    assert body["overlay_png_base64"]


# ----------------------------------------------------------------------------- errors
def test_unknown_format_is_a_usage_error(tmp_path):
    proc = cli("-m", "facemask.export", "--weights", "x.h5", "--format", "coreml", "--out", tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "invalid choice: 'coreml'" in proc.stderr


def test_missing_runtime_names_the_extra(exported, monkeypatch, capsys):
    from facemask import export, inference

    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # import fails as if not installed
    assert export.main(["--weights", str(exported["weights"]), "--format", "onnx", "--out", "unused"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "tf2onnx" in err and "mrcnn-facemask[export]" in err

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    path = exported["tmp"] / "onnx" / "model.onnx"
    assert inference.main(["--weights", str(path), "--input", str(exported["images"]), "--output", "unused"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "onnxruntime" in err and "mrcnn-facemask[export]" in err


def test_bad_exported_files_are_one_line_errors(exported, tmp_path):
    from facemask import inference

    bogus = tmp_path / "model.onnx"
    bogus.write_bytes(b"not a model")
    shutil.copy(exported["tmp"] / "onnx" / "model.json", tmp_path / "model.json")
    no_json = tmp_path / "lonely" / "model.tflite"
    no_json.parent.mkdir()
    shutil.copy(exported["tmp"] / "tflite" / "model.tflite", no_json)
    for path, expected in [(bogus, "not a readable ONNX model"), (no_json, "model.json is missing"),
                           (tmp_path / "absent.onnx", "no such file")]:
        proc_err = _main_err(inference.main, ["--weights", str(path), "--input", str(exported["images"]),
                                              "--output", str(tmp_path / "out")])
        assert expected in proc_err, proc_err
    proc = cli("-m", "facemask.export", "--weights", exported["tmp"] / "onnx" / "model.onnx", "--format", "tflite",
               "--out", tmp_path / "again")
    assert "already an exported model" in one_line_error(proc)


def _main_err(main, argv) -> str:
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(argv) == 1
    text = err.getvalue().strip()
    assert text.count("\n") == 0 and text.startswith("error:"), text
    return text
