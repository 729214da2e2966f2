"""Export to every format end to end, as users type it: ``facemask-export --format onnx|tflite|saved_model``
through ``main(argv)`` on a tiny run; each exported model's detections against ``detect()`` on the same
checkpoint (box IoU, mask IoU, scores, class ids); ``inference.py --weights DIR/model.onnx|tflite`` against
the checkpoint's predictions.json and summary.csv; ONNX inference without TensorFlow; the web app on an
exported file; the one-line errors.

One short training and one export per format for the whole module, tiny images (about 90 s on 2 cores).
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.test_cli_eval_inference import RUN, cli  # noqa: E402

FORMATS = ("onnx", "tflite", "saved_model")
FILE_FORMATS = ("onnx", "tflite")
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _images(data: Path) -> dict[str, np.ndarray]:
    """The fixed images: the 4 training images (128x160) as they are, one upscaled, one downscaled."""
    from PIL import Image

    files = sorted((data / "train").glob("*.jpg"))[:4]
    assert len(files) == 4, files
    images = {f"img{i}.png": np.asarray(Image.open(f).convert("RGB")) for i, f in enumerate(files)}
    images["up.png"] = np.asarray(Image.fromarray(images["img0.png"]).resize((240, 192), Image.BILINEAR))
    images["down.png"] = np.asarray(Image.fromarray(images["img1.png"]).resize((100, 80), Image.BILINEAR))
    return images


def _main(main, argv) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of a command's ``main(argv)``, in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def _model_path(tmp: Path, fmt: str) -> Path:
    return tmp / fmt if fmt == "saved_model" else tmp / fmt / f"model.{fmt}"


# The run's DETECTION_MIN_CONFIDENCE (a short training's scores are lower than a real run's) and
# DETECTION_MAX_INSTANCES = POST_NMS_ROIS_INFERENCE: no cap, whose last place two outputs could fill differently.
MIN_CONFIDENCE, MAX_INSTANCES = 0.3, 50


def _train(tmp: Path) -> Path:
    """A short real training (60 steps, all layers, ~20 s) on 4 synthetic images: detections with
    real masks (hundreds of pixels) and spread-out scores, so the parity below compares something."""
    import keras

    import facemask
    from facemask.synthetic import make_dataset
    from mrcnn.model.maskrcnn import MaskRCNN

    make_dataset(tmp / "data", n_train=4, n_val=1, seed=0, image_size=(128, 160))
    data = facemask.load_dataset(str(tmp / "data"), "train", verbose=False)
    keras.utils.set_random_seed(0)
    config = facemask.make_config("tiny", STEPS_PER_EPOCH=60, VALIDATION_STEPS=1, IMAGES_PER_GPU=2)
    model = MaskRCNN("training", config, str(tmp / "train_logs"))
    model.train(data, None, learning_rate=0.02, epochs=1, layers="all", verbose=0)
    return Path(model.find_last())


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A briefly trained tiny run (checkpoint + config.json), its inference model in this process,
    fixed images, and each format exported once by ``facemask-export``."""
    from PIL import Image

    import facemask
    from facemask import export
    from mrcnn.model.maskrcnn import MaskRCNN

    tmp = tmp_path_factory.mktemp("export_formats")
    run = tmp / "logs" / RUN
    run.mkdir(parents=True)
    weights = run / "mask_rcnn_facemask_0001.h5"
    t0 = time.perf_counter()
    shutil.copy(_train(tmp), weights)
    print(f"training: {time.perf_counter() - t0:.1f} s")
    values = {"DETECTION_MIN_CONFIDENCE": MIN_CONFIDENCE, "DETECTION_MAX_INSTANCES": MAX_INSTANCES}
    facemask.make_config("tiny", **values).save(str(run / "config.json"))
    model = MaskRCNN("inference", facemask.make_config("tiny", inference=True, **values), str(tmp / "logs"))
    model.load_weights(str(weights))
    images = tmp / "images"
    images.mkdir()
    arrays = _images(tmp / "data")
    for name, image in arrays.items():
        Image.fromarray(image).save(images / name)
    logs = {}
    for fmt in FORMATS:
        t0 = time.perf_counter()
        rc, out, err = _main(export.main, ["--weights", weights, "--format", fmt, "--out", tmp / fmt])
        assert rc == 0, out[-2000:] + err[-3000:]
        logs[fmt] = out
        print(f"export {fmt}: {time.perf_counter() - t0:.1f} s")
    return {"tmp": tmp, "model": model, "weights": weights, "images": images, "arrays": arrays, "logs": logs}


def test_export_writes_each_format_and_its_json(exported):
    import onnx

    tmp = exported["tmp"]
    for fmt in FORMATS:
        path = _model_path(tmp, fmt)
        meta = json.loads((tmp / fmt / "model.json").read_text())
        assert meta["format"] == fmt and meta["class_names"] == ["BG", "mask"], meta
        assert meta["config"]["NAME"] == "facemask" and meta["config"]["DETECTION_MIN_CONFIDENCE"] > 0
        assert str(path) in exported["logs"][fmt]
    assert (tmp / "saved_model" / "saved_model.pb").is_file()
    # Builtin ops only: no Select TF ("Flex") op in the TFLite file, only standard ONNX domains.
    assert b"Flex" not in _model_path(tmp, "tflite").read_bytes()
    graph = onnx.load(str(_model_path(tmp, "onnx"))).graph
    assert {n.domain for n in graph.node} <= {"", "ai.onnx"}
    assert [i.name for i in graph.input] == ["image"]
    assert sorted(o.name for o in graph.output) == ["boxes", "class_ids", "masks", "scores"]


def _iou(a, b) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def _box_iou(a, b) -> float:
    ih = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iw = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ih * iw
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 1.0


BORDER = 0.01  # a detection this close to MIN_CONFIDENCE may be in one output only (scores ~2e-3 apart)


def _match(ref: list[dict], got: list[dict]) -> list[tuple[dict, dict]]:
    """Pairs (ref, got) of detections ``{box [y1, x1, y2, x2], class_id, score, mask}``: each reference
    one with the other side's best-overlapping one of its class (scores ~2e-3 apart, from the resize, may
    swap neighbours in the ranking). Unpaired ones must lie within BORDER of the threshold."""
    pairs, free = [], list(range(len(got)))
    for a in sorted(ref, key=lambda d: -d["score"]):
        ious = [(_box_iou(a["box"], got[k]["box"]), k) for k in free if got[k]["class_id"] == a["class_id"]]
        iou, k = max(ious, default=(0.0, None))
        if iou >= 0.5:
            pairs.append((a, got[k]))
            free.remove(k)
        else:
            assert a["score"] < MIN_CONFIDENCE + BORDER, f"no counterpart for {a['class_id']} {a['score']:.4f}"
    for k in free:
        assert got[k]["score"] < MIN_CONFIDENCE + BORDER, f"extra detection {got[k]['score']:.4f}"
    return pairs


def _check_pairs(pairs, what: str) -> None:
    assert len(pairs) >= 5, f"{what}: the trained fixture model must detect something to compare"
    box = [_box_iou(a["box"], b["box"]) for a, b in pairs]
    mask = [_iou(a["mask"], b["mask"]) for a, b in pairs]
    score = [abs(a["score"] - b["score"]) for a, b in pairs]
    assert min(int(a["mask"].sum()) for a, _ in pairs) > 20, "masks of a few pixels compare nothing"
    print(f"{what}: {len(pairs)} detections paired; max |score diff| {max(score):.2e}; "
          f"box IoU min {min(box):.3f} mean {np.mean(box):.4f}; mask IoU min {min(mask):.3f} mean {np.mean(mask):.4f}")
    # detect() resizes with OpenCV, the exports with tf.image.resize (<= 1 grey level apart, as the
    # SavedModel: tests/test_export.py): on the upscaled 90x60 image that moves scores by ~2e-3.
    assert max(score) <= 5e-3
    assert min(box) >= 0.9 and np.mean(box) >= 0.97
    assert min(mask) >= 0.85 and np.mean(mask) >= 0.95


def _detections(r) -> list[dict]:
    return [{"box": r["rois"][i], "class_id": int(r["class_ids"][i]), "score": float(r["scores"][i]),
             "mask": r["masks"][..., i]} for i in range(len(r["class_ids"]))]


@pytest.mark.parametrize("fmt", FORMATS)
def test_exported_model_detects_as_detect(exported, fmt):
    from mrcnn.serve.runtimes import load_exported

    served = load_exported(str(_model_path(exported["tmp"], fmt)))
    assert served.format == fmt and served.class_names == ["BG", "mask"]
    if fmt == "tflite":  # the pip LiteRT runtime runs builtin ops only: this proves there are no others
        pytest.importorskip("ai_edge_litert")
        assert type(served._interpreter).__module__.startswith("ai_edge_litert")
    pairs = []
    for image in exported["arrays"].values():
        h, w = image.shape[:2]
        ref = exported["model"].detect([image])[0]
        got = served.detect([image])[0]
        assert got["masks"].shape == (h, w, len(got["scores"])) and got["masks"].dtype == bool
        assert got["rois"].dtype == np.int32 and got["scores"].dtype == np.float32
        assert got["class_ids"].dtype == np.int32
        pairs += _match(_detections(ref), _detections(got))
    _check_pairs(pairs, fmt)


@pytest.fixture(scope="module")
def inference_outputs(exported):
    """``inference.py`` on the image folder: the checkpoint, then each exported file, as typed."""
    from facemask import inference

    outs = {}
    for name in ("checkpoint", *FILE_FORMATS):
        weights = exported["weights"] if name == "checkpoint" else _model_path(exported["tmp"], name)
        out = exported["tmp"] / f"out_{name}"
        rc, stdout, err = _main(inference.main, ["--weights", weights, "--input", exported["images"],
                                                 "--output", out, "--no-progress"])
        assert rc == 0, stdout[-2000:] + err[-3000:]
        outs[name] = (out, stdout)
    return outs


@pytest.mark.parametrize("fmt", FILE_FORMATS)
def test_inference_cli_on_exported_file_writes_what_the_checkpoint_writes(inference_outputs, fmt):
    from pycocotools import mask as mask_utils

    ref_dir, out_dir = inference_outputs["checkpoint"][0], inference_outputs[fmt][0]
    assert f"exported {fmt} model" in inference_outputs[fmt][1]
    ref = json.loads((ref_dir / "predictions.json").read_text())
    got = json.loads((out_dir / "predictions.json").read_text())
    assert got["categories"] == ref["categories"]
    assert [i["file_name"] for i in got["images"]] == [i["file_name"] for i in ref["images"]]
    assert [(i["width"], i["height"]) for i in got["images"]] == [(i["width"], i["height"]) for i in ref["images"]]
    assert got["info"]["detection_min_confidence"] == ref["info"]["detection_min_confidence"] == MIN_CONFIDENCE

    def detections(annotations, file_name):
        x = [a for a in annotations if a["file_name"] == file_name]
        return [{"box": [a["bbox"][1], a["bbox"][0], a["bbox"][1] + a["bbox"][3], a["bbox"][0] + a["bbox"][2]],
                 "class_id": a["category_id"], "score": a["score"],
                 "mask": mask_utils.decode(a["segmentation"]).astype(bool)} for a in x]

    pairs = []
    for image in ref["images"]:
        pairs += _match(detections(ref["annotations"], image["file_name"]),
                        detections(got["annotations"], image["file_name"]))
    _check_pairs(pairs, f"inference.py {fmt}")
    with open(ref_dir / "summary.csv") as f1, open(out_dir / "summary.csv") as f2:
        rows_ref, rows_got = list(csv.DictReader(f1)), list(csv.DictReader(f2))
    assert [r["file"] for r in rows_got] == [r["file"] for r in rows_ref]
    assert list(rows_got[0]) == list(rows_ref[0])  # same columns
    for r, g in zip(rows_ref, rows_got):
        assert abs(int(r["n_detections"]) - int(g["n_detections"])) <= 1
        assert abs(float(r["mask_area_pct"]) - float(g["mask_area_pct"])) <= 1.0
    assert sorted(p.name for p in out_dir.glob("*.png")) == sorted(p.name for p in ref_dir.glob("*.png"))


def test_onnx_inference_needs_no_tensorflow(exported, inference_outputs, tmp_path):
    """``inference.py --weights model.onnx`` in a fresh Python: TensorFlow is never imported, and the
    predictions are the in-process ONNX run's."""
    code = ("import sys; from facemask import inference; rc = inference.main(sys.argv[1:]); "
            "print('tensorflow imported:', 'tensorflow' in sys.modules); sys.exit(rc)")
    proc = cli("-c", code, "--weights", _model_path(exported["tmp"], "onnx"), "--input", exported["images"],
               "--output", tmp_path / "out", "--no-progress")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "tensorflow imported: False" in proc.stdout
    got = json.loads((tmp_path / "out" / "predictions.json").read_text())
    ref = json.loads((inference_outputs["onnx"][0] / "predictions.json").read_text())
    assert got["annotations"] == ref["annotations"]


def test_app_serves_an_exported_file(exported):
    from fastapi.testclient import TestClient
    from PIL import Image

    from facemask.app import build_parser, create_app, load_predictor

    predictor = load_predictor(build_parser().parse_args(["--weights", str(_model_path(exported["tmp"], "onnx"))]))
    refs = {name: exported["model"].detect([image])[0] for name, image in exported["arrays"].items()}
    name = max(refs, key=lambda n: len(refs[n]["class_ids"]))  # the image with most detections
    image, ref = exported["arrays"][name], refs[name]
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    with TestClient(create_app(predictor)) as client:
        r = client.post("/api/predict", files={"file": ("a.png", buf.getvalue(), "image/png")})
        health = client.get("/healthz").json()
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(ref["class_ids"]) > 0
    assert abs(len(body["detections"]) - len(ref["class_ids"])) <= 1
    assert {d["class_name"] for d in body["detections"]} == {"mask"}
    assert body["overlay_png_base64"] and health["classes"] == ["mask"]


# ----------------------------------------------------------------------------- errors
def _one_line(main, argv) -> str:
    rc, _, err = _main(main, argv)
    text = err.strip()
    assert rc == 1 and text.count("\n") == 0 and text.startswith("error:"), (rc, text)
    return text


def test_unknown_format_is_a_usage_error(capsys):
    from facemask import export

    with pytest.raises(SystemExit) as e:
        export.main(["--weights", "x.h5", "--format", "coreml", "--out", "unused"])
    assert e.value.code == 2 and "invalid choice: 'coreml'" in capsys.readouterr().err


def test_missing_runtime_names_the_extra(exported, monkeypatch):
    from facemask import export, inference

    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # import fails as if not installed
    err = _one_line(export.main, ["--weights", exported["weights"], "--format", "onnx", "--out", "unused"])
    assert "tf2onnx" in err and "pip install 'mrcnn-facemask[export]'" in err
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    err = _one_line(inference.main, ["--weights", _model_path(exported["tmp"], "onnx"), "--input",
                                     exported["images"], "--output", "unused"])
    assert "onnxruntime" in err and "pip install 'mrcnn-facemask[export]'" in err


def test_bad_exported_files_and_flags_are_one_line_errors(exported, tmp_path):
    from facemask import export, inference

    tmp = exported["tmp"]
    bogus = tmp_path / "model.onnx"
    bogus.write_bytes(b"not a model")
    shutil.copy(tmp / "onnx" / "model.json", tmp_path / "model.json")
    no_json = tmp_path / "lonely" / "model.tflite"
    no_json.parent.mkdir()
    shutil.copy(_model_path(tmp, "tflite"), no_json)
    for path, expected in [(bogus, "not a readable ONNX model"), (no_json, "model.json is missing"),
                           (tmp_path / "absent.onnx", "no such file")]:
        err = _one_line(inference.main, ["--weights", path, "--input", exported["images"], "--output", tmp_path / "o"])
        assert expected in err, err
    err = _one_line(inference.main, ["--weights", _model_path(tmp, "onnx"), "--input", exported["images"],
                                     "--output", tmp_path / "o", "--min-confidence", "0.1"])
    assert "export again with facemask-export --min-confidence 0.1" in err
    err = _one_line(inference.main, ["--weights", _model_path(tmp, "tflite"), "--classes", "subtypes",
                                     "--input", exported["images"], "--output", tmp_path / "o"])
    assert "--classes does not apply to an exported model" in err
    for exported_model in (_model_path(tmp, "onnx"), _model_path(tmp, "saved_model")):
        err = _one_line(export.main, ["--weights", exported_model, "--format", "tflite", "--out", tmp_path / "x"])
        assert "is already an exported model" in err
    (tmp_path / "a_file").write_text("")
    err = _one_line(export.main, ["--weights", exported["weights"], "--format", "onnx", "--out", tmp_path / "a_file"])
    assert "is a file; give a folder" in err
