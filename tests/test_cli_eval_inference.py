"""evaluate.py / inference.py end to end (real subprocesses) and mrcnn.evaluation.evaluate_model.

One session-scoped setup: a tiny synthetic dataset and a random-init tiny inference model whose
weights and config.json sit in a fake run folder, so ``--weights last --logs LOGS`` finds them.
Random weights give garbage detections, so the runs that exercise the output code use
``--min-confidence 0.0``. Errors that must be instant (argparse, missing files) run before
TensorFlow is imported, so those subprocesses take well under a second.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RUN = "facemask20260101T000000"
# pycocotools.mask.decode under NumPy 2 (not ours).
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def cli(*args, timeout=300) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def make_it_detect(model) -> None:
    """Random weights can regress every box to nothing (degenerate boxes are dropped), which
    would leave the output code untested. Zero the box regressors (boxes = anchors, always
    valid) and bias the classifier towards class 1 with small noise (scores ~0.95, varied)."""
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


@pytest.fixture(scope="session")
def setup(tmp_path_factory):
    import keras

    import facemask
    from facemask.synthetic import make_dataset
    from mrcnn.model.maskrcnn import MaskRCNN

    tmp = tmp_path_factory.mktemp("cli")
    data = tmp / "data"
    make_dataset(data, n_train=4, n_val=3, seed=0, image_size=(128, 160))
    logs = tmp / "logs"
    run = logs / RUN
    run.mkdir(parents=True)
    keras.utils.set_random_seed(0)
    model = MaskRCNN("inference", facemask.make_config("tiny", inference=True), str(logs))
    make_it_detect(model)
    weights = run / "mask_rcnn_facemask_0001.h5"
    model.save_weights(str(weights))
    facemask.make_config("tiny").save(str(run / "config.json"))
    return {"tmp": tmp, "data": data, "logs": logs, "run": run, "weights": weights, "model": model}


class Background:
    """A CLI run started now and collected later (stdout/stderr to files: no pipe deadlock)."""

    def __init__(self, folder: Path, *args):
        folder.mkdir(parents=True, exist_ok=True)
        self.out, self.err = open(folder / "stdout.txt", "w+"), open(folder / "stderr.txt", "w+")
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, *map(str, args)], cwd=ROOT, env=env, stdout=self.out, stderr=self.err, text=True
        )

    def result(self, timeout=300) -> subprocess.CompletedProcess:
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        texts = []
        for f in (self.out, self.err):
            f.seek(0)
            texts.append(f.read())
            f.close()
        return subprocess.CompletedProcess(self.proc.args, rc, *texts)


@pytest.fixture(scope="session")
def cli_runs(setup):
    """Start the two slow CLI runs together (they overlap each other and the in-process test)."""
    tmp = setup["tmp"]
    eval_out = tmp / "eval_out"
    evaluate_bg = Background(
        tmp / "eval_log",
        "evaluate.py",
        "--weights",
        "last",
        "--logs",
        setup["logs"],
        "--dataset",
        setup["data"],
        "--subset",
        "val",
        "--min-confidence",
        "0.0",
        "--batch-size",
        "2",
        "--iou",
        "0.6",
        "--out",
        eval_out,
    )
    src = setup["data"] / "val"
    images = sorted(src.glob("*.jpg"))
    assert len(images) == 3
    inp = tmp / "infer_in"
    (inp / "sub").mkdir(parents=True)
    shutil.copy(images[0], inp / "a.jpg")
    shutil.copy(images[1], inp / "b.JPEG")  # extension matching is case-insensitive
    shutil.copy(images[2], inp / "sub" / "c.jpg")  # mirrored with --recursive
    (inp / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (inp / "notes.txt").write_text("not an image")
    infer_out = tmp / "infer_out"
    infer_bg = Background(
        tmp / "infer_log",
        "inference.py",
        "--weights",
        "last",
        "--logs",
        setup["logs"],
        "--input",
        inp,
        "--output",
        infer_out,
        "--recursive",
        "--min-confidence",
        "0.0",
        "--batch-size",
        "2",
        "--format",
        "jpg",
    )
    yield {"evaluate": (evaluate_bg, eval_out), "inference": (infer_bg, inp, infer_out)}
    for bg in (evaluate_bg, infer_bg):
        if bg.proc.poll() is None:
            bg.proc.kill()
            bg.proc.wait()


@pytest.fixture(scope="session")
def eval_run(cli_runs):
    bg, out = cli_runs["evaluate"]
    return bg.result(), out


@pytest.fixture(scope="session")
def infer_run(cli_runs):
    bg, inp, out = cli_runs["inference"]
    return bg.result(), inp, out


# ----------------------------------------------------------------------------- in process
def test_evaluate_model_in_process(setup, cli_runs):  # cli_runs: start them first
    import facemask
    from mrcnn.evaluation import evaluate_model
    from mrcnn.metrics import Evaluator

    dataset = facemask.load_dataset(str(setup["data"]), "val", verbose=False)
    evaluator, examples = evaluate_model(setup["model"], dataset, progress=False, keep_examples=2, iou_threshold=0.75)
    assert isinstance(evaluator, Evaluator)
    assert evaluator.num_images == 3
    assert len(evaluator.per_image) == 3
    assert {"mask_AP50", "box_AP50", "mask_AP", "box_AP", "num_gt", "num_pred"} <= set(evaluator.per_image[0])
    assert evaluator.timing["detect_s"] > 0
    assert 1 <= len(examples) <= 2
    for ex in examples:
        h, w = ex["image"].shape[:2]
        assert ex["gt"]["masks"].shape[:2] == (h, w)  # GT at the original size ...
        assert ex["pred"]["masks"].shape[:2] == (h, w)  # ... and so are the predictions
        assert len(ex["gt"]["class_ids"]) > 0  # examples are images with GT
    summary = evaluator.summary()
    assert summary["num_gt"] == sum(r["num_gt"] for r in evaluator.per_image)

    limited, _ = evaluate_model(setup["model"], dataset, limit=1, progress=False, keep_examples=0)
    assert limited.num_images == 1


def test_no_detection_warning():
    from facemask import evaluate

    msg = evaluate.no_detection_warning({"num_images": 5, "num_pred": 0}, 0.9, "val")
    assert msg and "DETECTION_MIN_CONFIDENCE=0.9" in msg and "--min-confidence" in msg
    assert evaluate.no_detection_warning({"num_images": 5, "num_pred": 3}, 0.9, "val") is None


def test_inference_helpers(tmp_path):
    from facemask import inference
    from facemask.coverage import mask_coverage

    root = tmp_path
    files = [root / "a.jpg", root / "a.png", root / "s" / "b.tif"]
    assert inference.output_names(root, files, "png") == ["a.jpg.png", "a.png.png", "s/b.png"]

    h, w = 10, 10
    face = np.zeros((h, w), bool)
    face[0:10, 0:10] = True  # face mask covering the whole face, the masked part included
    mask = np.zeros((h, w), bool)
    mask[5:10, 0:10] = True
    result = {
        "masks": np.stack([face, mask], -1),
        "class_ids": np.array([1, 2]),
        "rois": np.array([[0, 0, 10, 10], [5, 0, 10, 10]]),
        "scores": np.array([0.9, 0.8]),
    }
    face_pct, area_pct = mask_coverage(result, ["BG", "face", "mask"], (h, w))
    assert face_pct == pytest.approx(50.0) and area_pct == pytest.approx(100.0)
    # No face class: only the image-area share.
    result["class_ids"] = np.array([1, 1])
    face_pct, area_pct = mask_coverage(result, ["BG", "mask"], (h, w))
    assert face_pct is None and area_pct == pytest.approx(100.0)


# ----------------------------------------------------------------------------- evaluate.py
def test_evaluate_cli(eval_run, setup):
    proc, out = eval_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    stdout = proc.stdout
    assert "config:" in stdout and str(setup["run"] / "config.json") in stdout  # config.json picked up
    assert "3 images" in stdout  # dataset summary
    assert "images with GT" in stdout and "only detections >=" in stdout and "COCO" in stdout and "Per-class" in stdout
    assert "mAP@0.6" in stdout
    assert "evaluate:" in proc.stderr  # tqdm progress bar

    report = json.loads((out / "report.json").read_text())
    for key in (
        "mask_mAP50",
        "box_mAP50",
        "coco_segm",
        "coco_bbox",
        "per_class_mask_AP50",
        "weights",
        "dataset",
        "subset",
        "timing",
        "per_image",
    ):
        assert key in report, key
    assert report["subset"] == "val" and report["num_images"] == 3
    assert report["weights"] == str((setup["weights"]).resolve())
    assert "mask" in report["per_class_mask_AP50"]
    assert "AP" in report["coco_segm"]
    assert report["config"]["BACKBONE"] == "resnet18" and report["config"]["IMAGE_MAX_DIM"] == 128
    assert report["detection_min_confidence"] == 0.0
    assert report["num_pred"] > 0  # min-confidence 0 lets the random model's boxes through
    assert (out / "pr_curve.png").stat().st_size > 0
    overlays = sorted((out / "overlays").glob("*.png"))
    assert 1 <= len(overlays) <= 4 and len(overlays) == len(report["overlays"])


def test_evaluate_errors(setup, tmp_path):
    missing = tmp_path / "nope.h5"
    err = one_line_error(cli("evaluate.py", "--weights", missing))
    assert str(missing) in err
    err = one_line_error(cli("evaluate.py", "--weights", "last", "--logs", tmp_path / "empty_logs"))
    assert "no checkpoint" in err
    err = one_line_error(
        cli("evaluate.py", "--weights", "last", "--logs", setup["logs"], "--dataset", tmp_path / "no_data")
    )
    assert "via_region_data.json" in err


def test_checkpoint_errors_blame_what_differs(setup, tmp_path):
    """Not-HDF5 weights, another class count, another profile: one line each that names the file and
    what actually differs."""
    import shutil

    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    err = one_line_error(
        cli("inference.py", "--weights", junk, "--input", setup["data"] / "val", "--output", tmp_path / "o")
    )
    assert str(junk) in err and "HDF5" in err

    bare = tmp_path / "bare" / "model.h5"  # no config.json beside it: flags decide the config
    bare.parent.mkdir()
    shutil.copy(setup["weights"], bare)
    err = one_line_error(
        cli("evaluate.py", "--weights", bare, "--profile", "tiny", "--classes", "subtypes", "--dataset", setup["data"])
    )
    assert str(bare) in err and "1 class(es) but the config has 4" in err

    err = one_line_error(cli("-m", "facemask.export", "--weights", bare, "--profile", "cpu", "--out", tmp_path / "x"))
    assert str(bare) in err and "the backbone or sizes differ" in err and "class" not in err.split(":")[-1]

    err = one_line_error(cli("evaluate.py", "--weights", "last", "--logs", setup["logs"], "--profile", "gpu"))
    assert "--profile gpu but the run was trained with --profile tiny" in err


@pytest.mark.parametrize(
    "script,args",
    [
        ("evaluate.py", ["--weights", "last", "--subset"]),
        ("evaluate.py", ["--weights", "last", "--bogus"]),
        ("evaluate.py", ["--weights", "last", "--min-confidence", "abc"]),
        ("inference.py", ["--weights", "last", "--input", "x", "--output", "y", "--bogus"]),
        ("inference.py", ["--weights", "last", "--input", "x", "--output", "y", "--min-confidence", "abc"]),
        ("inference.py", ["--weights", "last", "--input", "x"]),  # --output missing
    ],
)
def test_bad_arguments_exit_2(script, args):
    proc = cli(script, *args)
    assert proc.returncode == 2, proc.stderr
    assert "usage:" in proc.stderr and "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------- inference.py
def test_inference_cli(infer_run):
    from pycocotools import mask as mask_utils

    proc, inp, out = infer_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # Overlays: one per readable image, sub-folders mirrored, in the requested format.
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg")) == ["a.jpg", "b.jpg", "sub/c.jpg"]
    # The corrupt file is reported, listed and skipped; the .txt is not an image at all.
    assert "corrupt.png" in proc.stderr
    skipped = (out / "skipped.txt").read_text().splitlines()
    assert len(skipped) == 1 and "corrupt.png" in skipped[0]
    assert "images/s" in proc.stdout
    assert "3 images processed, 1 skipped" in proc.stdout

    pred = json.loads((out / "predictions.json").read_text())
    sizes = {im["id"]: (im["height"], im["width"]) for im in pred["images"]}
    assert sorted(im["file_name"] for im in pred["images"]) == ["a.jpg", "b.JPEG", "sub/c.jpg"]
    assert pred["annotations"], "min-confidence 0 should give detections"
    for ann in pred["annotations"]:
        assert {
            "image_id",
            "file_name",
            "category_id",
            "category_name",
            "bbox",
            "score",
            "segmentation",
            "area",
        } <= set(ann)
        assert ann["category_name"] == "mask" and len(ann["bbox"]) == 4
        assert isinstance(ann["segmentation"]["counts"], str)
        decoded = mask_utils.decode(
            {"size": ann["segmentation"]["size"], "counts": ann["segmentation"]["counts"].encode("ascii")}
        )
        assert decoded.shape == sizes[ann["image_id"]]
        assert int(decoded.sum()) == ann["area"]

    with open(out / "summary.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == [
        "file",
        "width",
        "height",
        "n_detections",
        "mask",
        "mean_score",
        "masked_face_pct",
        "mask_area_pct",
    ]
    assert sorted(r["file"] for r in rows) == ["a.jpg", "b.JPEG", "sub/c.jpg"]
    n_ann = {}
    for ann in pred["annotations"]:
        n_ann[ann["file_name"]] = n_ann.get(ann["file_name"], 0) + 1
    for r in rows:
        assert int(r["n_detections"]) == int(r["mask"]) == n_ann.get(r["file"], 0)
        assert r["masked_face_pct"] == ""  # no class named "face"
        assert 0.0 <= float(r["mask_area_pct"]) <= 100.0


def test_inference_errors(setup, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = cli(
        "inference.py", "--weights", "last", "--logs", setup["logs"], "--input", empty, "--output", tmp_path / "out"
    )
    assert proc.returncode == 1
    err = one_line_error(proc)
    assert f"no images found in {empty}" in err and ".jpg" in err
    missing = tmp_path / "missing.h5"
    err = one_line_error(
        cli("inference.py", "--weights", missing, "--input", setup["data"] / "val", "--output", tmp_path / "out")
    )
    assert str(missing) in err


# ----------------------------------------------------------------------------- predictions -> VIA
def test_via_out_round_trips_predictions(setup, tmp_path):
    """inference.py --via-out: predictions -> VIA 2 project -> read_via -> masks, IoU >= 0.9 with the
    predicted masks, class and score as region attributes."""
    from pycocotools import mask as mask_utils

    from mrcnn.data.via import read_via
    from mrcnn.data.via_dataset import ViaDataset

    # A trained model's masks are blobs; the random fixture's are noise. A solid mask head gives
    # blob-like (box-filling) masks, so every detection must come back.
    logs = tmp_path / "logs"
    run = logs / RUN
    run.mkdir(parents=True)
    shutil.copy(setup["run"] / "config.json", run / "config.json")
    layer = setup["model"].keras_model.get_layer("mrcnn_mask")
    saved = [w.numpy() for w in layer.weights]
    try:
        layer.weights[0].assign(np.zeros_like(saved[0]))
        layer.weights[1].assign(np.full_like(saved[1], 3.0))
        setup["model"].save_weights(str(run / "mask_rcnn_facemask_0001.h5"))
    finally:
        for w, value in zip(layer.weights, saved):
            w.assign(value)
    out = tmp_path / "out"
    via_path = setup["data"] / "val" / "predicted_via.json"  # beside the images, as VIA expects
    proc = cli(
        "inference.py",
        "--weights",
        "last",
        "--logs",
        logs,
        "--input",
        setup["data"] / "val",
        "--output",
        out,
        "--via-out",
        via_path,
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    project = json.loads(via_path.read_text())
    assert project["_via_data_format_version"].startswith("2.0")
    assert set(project["_via_attributes"]["region"]) == {"class", "score"}
    assert list(project["_via_attributes"]["region"]["class"]["options"]) == ["mask"]

    predictions = json.loads((out / "predictions.json").read_text())
    assert predictions["annotations"], "the fixture model detects: there must be something to round-trip"
    via = read_via(via_path, class_key="class")
    assert {im.filename for im in via.images} == {im["file_name"] for im in predictions["images"]}
    dataset = ViaDataset()
    dataset.load_via(via_path, class_key="class", verbose=False)
    dataset.prepare()
    by_file = {
        info["path"].name if hasattr(info["path"], "name") else Path(info["path"]).name: i
        for i, info in enumerate(dataset.image_info)
    }
    ious, regions = [], 0
    for image in predictions["images"]:
        predicted = [
            mask_utils.decode({**a["segmentation"], "counts": a["segmentation"]["counts"].encode()}).astype(bool)
            for a in predictions["annotations"]
            if a["image_id"] == image["id"]
        ]
        predicted = [m for m in predicted if m.any()]  # an empty mask has no outline to write
        masks, class_ids = dataset.load_mask(by_file[image["file_name"]])
        assert masks.shape[-1] == len(predicted) and set(class_ids) <= {1}
        regions += masks.shape[-1]
        for k in range(masks.shape[-1]):  # each region against the prediction it came from
            ious.append(max((p & masks[..., k]).sum() / (p | masks[..., k]).sum() for p in predicted))
    assert regions >= 3, "the solid-mask model must give something to round-trip"
    region = next(im for im in via.images if im.regions).regions[0]
    assert region.region_attributes["class"] == "mask" and 0 <= float(region.region_attributes["score"]) <= 1
    assert ious and min(ious) >= 0.9, sorted(ious)[:5]


# ----------------------------------------------------------------------------- any classes, any attribute
def _relabel(json_path: Path, key: str, mapping: dict) -> None:
    """Move the synthetic set's mask_type attribute to ``key`` with other class names."""
    data = json.loads(json_path.read_text())
    for entry in data.values():
        regions = entry["regions"]
        for region in regions.values() if isinstance(regions, dict) else regions:
            attrs = region["region_attributes"]
            attrs[key] = mapping[attrs.pop("mask_type")]
    json_path.write_text(json.dumps(data))


def test_multiclass_attribute_through_every_command(tmp_path):
    """A VIA set whose classes (helmet/vest/goggles) live under 'label': train --classes auto
    --class-key label, then evaluate, inference and export with no class flag; the class names
    appear in the run's config, the report, summary.csv, predictions.json and the VIA output."""
    from facemask.synthetic import make_dataset

    data = tmp_path / "ppe"
    make_dataset(data, n_train=6, n_val=3, seed=3, image_size=(128, 160))
    mapping = {"surgical": "Helmet", "n95": "vest", "cloth": "goggles", "fashion": "goggles"}
    for subset in ("train", "val"):
        _relabel(data / subset / "via_region_data.json", "label", mapping)
    logs = tmp_path / "logs"
    trained = cli(
        "train.py",
        "--dataset",
        data,
        "--profile",
        "tiny",
        "--logs",
        logs,
        "--classes",
        "auto",
        "--class-key",
        "label",
        "--stages",
        "all:0.01:1",
        "--steps-per-epoch",
        "2",
        "--eval-limit",
        "2",
        "--anchors",
        "default",
        "--augment",
        "none",
        timeout=900,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert all(f"{name}:" in trained.stdout for name in ("goggles", "helmet", "vest"))  # found, with counts
    run = next(logs.glob("facemask*"))
    config = json.loads((run / "config.json").read_text())
    names = ["goggles", "helmet", "vest"]  # found in the data, normalised and sorted
    assert (config["CLASSES"], config["CLASS_NAMES"], config["CLASS_KEY"], config["NUM_CLASSES"]) == (
        "auto",
        names,
        "label",
        4,
    )
    report = json.loads((run / "eval_val" / "report.json").read_text())
    assert report["class_names"] == ["BG", *names] and set(report["per_class_mask_AP50"]) <= set(names)

    evaluated = cli("evaluate.py", "--weights", run, "--dataset", data, "--limit", "1", "--no-progress")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "classes: goggles, helmet, vest" in evaluated.stdout

    out = tmp_path / "pred"
    inferred = cli(
        "inference.py",
        "--weights",
        "last",
        "--logs",
        logs,
        "--input",
        data / "val",
        "--output",
        out,
        "--via-out",
        out / "via.json",
        "--min-confidence",
        "0",
        "--no-progress",
    )
    assert inferred.returncode == 0, inferred.stderr[-3000:]
    with open(out / "summary.csv", newline="") as f:
        header = next(csv.reader(f))
    assert header[4:7] == names
    assert [c["name"] for c in json.loads((out / "predictions.json").read_text())["categories"]] == names
    via = json.loads((out / "via.json").read_text())
    assert list(via["_via_attributes"]["region"]["label"]["options"]) == names

    refused = cli("evaluate.py", "--weights", run, "--dataset", data, "--classes", "subtypes")
    assert "drop --classes" in one_line_error(refused)


def test_mask_outlines_round_trip_through_via(tmp_path):
    """The synthetic set's real mask shapes -> polygons -> VIA 2 project -> ViaDataset masks: IoU >= 0.9
    each (a contour through the boundary pixels' centres, simplified to 1 px)."""
    from facemask.synthetic import make_dataset
    from mrcnn.data.via_dataset import ViaDataset
    from mrcnn.data.via_export import image_entry, mask_to_polygon, polygon_region, via_project, write_via_project

    data = tmp_path / "data"
    make_dataset(data, n_train=1, n_val=4, seed=5, image_size=(192, 240))
    gt = ViaDataset()
    gt.load_via(data / "val" / "via_region_data.json", class_key="mask_type", verbose=False)
    gt.prepare()
    entries, expected = [], {}
    for i, info in enumerate(gt.image_info):
        masks, class_ids = gt.load_mask(i)
        path = Path(info["path"])
        regions = [
            polygon_region(mask_to_polygon(masks[..., k]), {"kind": gt.class_names[class_ids[k]]})
            for k in range(masks.shape[-1])
        ]
        entries.append(image_entry(path.name, path.stat().st_size, regions))
        expected[path.name] = masks
    assert sum(m.shape[-1] for m in expected.values()) >= 4
    via_path = data / "val" / "round_trip.json"
    write_via_project(str(via_path), via_project(entries, class_key="kind", class_names=gt.class_names[1:]))
    back = ViaDataset()
    back.load_via(via_path, class_key="kind", verbose=False)
    back.prepare()
    for i, info in enumerate(back.image_info):
        masks, _ = back.load_mask(i)
        want = expected[Path(info["path"]).name]
        assert masks.shape == want.shape
        for k in range(want.shape[-1]):
            iou = (masks[..., k] & want[..., k]).sum() / (masks[..., k] | want[..., k]).sum()
            assert iou >= 0.9, (info["path"], k, iou)

    dot = np.zeros((20, 20), bool)
    dot[5, 7] = True
    assert len(mask_to_polygon(dot)) >= 3  # a one-pixel mask still becomes a polygon
    assert mask_to_polygon(np.zeros((20, 20), bool)) is None
