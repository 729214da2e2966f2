"""The project's core recipe as users type it: ``train.py --profile gpu --weights coco`` (heads, then
all layers, from Matterport's COCO file), then evaluate.py and inference.py on that run with no
flags; ``--weights imagenet`` with the r50 profile; and the errors on the way. Nothing can be
downloaded here, so the COCO file is a stand-in in Matterport's exact layout (tools/coco_standin.py)
found where users put it: Keras' cache, or ``MRCNN_COCO_WEIGHTS``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BACKBONE_PREFIXES = ("conv1", "bn_conv1", "res", "bn")


def _run(script, *args, env=None, timeout=600):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MRCNN_")}
    full_env.update({"CI": "1", "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})})
    return subprocess.run(
        [sys.executable, script, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=full_env
    )


def _layers(path) -> dict[str, list[np.ndarray]]:
    from mrcnn.model.weights import read_layer_weights

    return {name: [a for _, a in ws] for name, ws in read_layer_weights(str(path)).items()}


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def coco_run(coco_standin, gpu_profile_small, tiny_facemask_dir, tmp_path_factory):
    """train.py --weights coco with the stand-in in Keras' cache, as a user who downloaded it by hand:
    heads for two epochs, then all layers from the heads stage's lowest-val-loss checkpoint (the
    original face-mask project's rule, --next-stage-from best), then the val evaluation."""
    home = tmp_path_factory.mktemp("keras_home")
    (home / "models").mkdir()
    os.symlink(coco_standin, home / "models" / "mask_rcnn_coco.h5")
    logs = tmp_path_factory.mktemp("coco_logs")
    proc = _run(
        "train.py",
        "--profile",
        "gpu",
        "--weights",
        "coco",
        "--config",
        str(gpu_profile_small),
        "--dataset",
        str(tiny_facemask_dir),
        "--logs",
        str(logs),
        "--augment",
        "none",
        "--stages",
        "heads:0.001:2,all:0.0001:3",
        "--next-stage-from",
        "best",
        "--eval-limit",
        "2",
        env={"KERAS_HOME": str(home)},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (run,) = logs.glob("facemask*")
    return proc, run, logs, home


def test_coco_recipe_trains_heads_then_all_from_the_cached_file(coco_run, coco_standin):
    proc, run, _, home = coco_run
    out = proc.stdout
    # The class-specific heads (81 classes in the file, 2 here) are excluded, and the run says so.
    assert (
        "The weights have 81 classes, the config 2: excluding mrcnn_class_logits, mrcnn_bbox_fc, mrcnn_bbox, "
        "mrcnn_mask (trained anew)." in out
    )
    assert (
        f"Weights from {home}/models/mask_rcnn_coco.h5: loaded 232 layers, excluded 3, 0 model layers not "
        "in the file" in out
    )
    assert "not the official mask_rcnn_coco.h5" in proc.stderr  # a hand-placed file is used, with a note
    assert "=== Stage 1/2: layers=heads" in out and "=== Stage 2/2: layers=all" in out
    record = json.loads((run / "run.json").read_text())
    assert record["weights"] == "coco" and record["weights_file"] == f"{home}/models/mask_rcnn_coco.h5"
    assert record["next_stage_from"] == "best"
    assert json.loads((run / "config.json").read_text())["PROFILE"] == "gpu"
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert len(history) == 3 and all(np.isfinite(h["loss"]) for h in history)

    coco = _layers(coco_standin)
    epochs = {e: _layers(run / f"mask_rcnn_facemask_{e:04d}.h5") for e in (1, 2, 3)}
    backbone = [n for n in epochs[1] if n.startswith(BACKBONE_PREFIXES)]
    assert len(backbone) == 2 + 2 * (3 * 33 + 4)  # ResNet-101: conv1/bn_conv1 + conv and BN per branch
    # Heads stage: not one backbone weight moved; the FPN, RPN and heads trained.
    for e in (1, 2):
        assert [n for n in backbone if not _same(epochs[e][n], coco[n])] == [], f"epoch {e}"
    for name in ("fpn_c5p5", "rpn_conv_shared", "mrcnn_class_conv1", "mrcnn_mask_conv1"):
        assert not _same(epochs[1][name], coco[name]), name
    assert epochs[1]["mrcnn_class_logits"][0].shape == (1024, 2)
    # The all stage started from best.h5 (the heads stage's lowest val loss), not from epoch 2.
    best = 1 + int(np.argmin([h["val_loss"] for h in history[:2]]))
    assert f"Starting this stage from {run}/best.h5 (lowest val loss so far, epoch {best})" in out
    # All stage: every backbone layer trained; BatchNorm's statistics stay frozen (TRAIN_BN=False, as in
    # Matterport, where gamma and beta still train).
    assert [n for n in backbone if _same(epochs[3][n][:2], epochs[best][n][:2])] == []
    batch_norms = [n for n in backbone if n.startswith("bn")]
    assert [n for n in batch_norms if not _same(epochs[3][n][2:], coco[n][2:])] == []
    assert "val mask mAP@0.5 =" in out


def test_evaluate_and_inference_on_the_coco_run_need_no_flags(coco_run, tiny_facemask_dir, tmp_path):
    _, run, logs, _ = coco_run
    evaluated = _run(
        "evaluate.py",
        "--weights",
        "last",
        "--logs",
        str(logs),
        "--dataset",
        str(tiny_facemask_dir),
        "--limit",
        "2",
        "--no-progress",
        "--out",
        str(tmp_path / "eval"),
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "PROFILE=gpu BACKBONE=resnet101" in evaluated.stdout and "classes: mask" in evaluated.stdout
    assert (tmp_path / "eval" / "report.json").is_file()
    inferred = _run(
        "inference.py",
        "--weights",
        str(run),
        "--input",
        str(tiny_facemask_dir / "val"),
        "--output",
        str(tmp_path / "out"),
        "--no-progress",
    )
    assert inferred.returncode == 0, inferred.stderr[-3000:]
    assert (tmp_path / "out" / "predictions.json").is_file() and (tmp_path / "out" / "summary.csv").is_file()


def test_a_failed_coco_download_is_one_line_naming_url_cache_path_and_the_fix(
    tiny_facemask_dir, tmp_path, monkeypatch, capsys
):
    """Offline: the official URL (pointed at a closed local port: the real one is 246 MB) fails in one
    line that names the URL, the exact cache path for a hand-downloaded file and --weights PATH."""
    import dataclasses

    from facemask import train
    from mrcnn.model import pretrained

    url = f"http://127.0.0.1:{_closed_port()}/mask_rcnn_coco.h5"
    monkeypatch.setitem(pretrained.PRETRAINED, "coco", dataclasses.replace(pretrained.PRETRAINED["coco"], url=url))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("MRCNN_COCO_WEIGHTS", raising=False)
    code = train.main(
        ["--profile", "gpu", "--weights", "coco", "--dataset", str(tiny_facemask_dir), "--logs", str(tmp_path / "logs")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "Traceback" not in err[0], err
    assert url in err[0] and "offline or unreachable" in err[0]
    assert f"put it at {tmp_path}/keras/models/mask_rcnn_coco.h5" in err[0] and "--weights PATH" in err[0]
    assert not list((tmp_path / "keras" / "models").iterdir()), "a partial file was left in the cache"
    assert not (tmp_path / "logs").exists(), "nothing is written before the weights are there"


@pytest.mark.parametrize(
    "args, needle",
    [
        (
            ["--profile", "tiny", "--weights", "none", "--stages", "bogus:0.01:1"],
            "stage 1 (bogus:0.01:1): layers='bogus' matches no layer of the model; use heads, 3+, 4+, 5+, all or a regex",
        ),
        (
            ["--profile", "tiny", "--weights", "none", "--stages", "all:0.01:1,head:0.001:2"],
            "stage 2 (head:0.001:2): layers='head' matches no layer",
        ),
        (
            ["--profile", "cpu", "--weights", "imagenet"],
            "--weights imagenet is the ImageNet-trained ResNet-50 of keras-applications v0.2 (backbone only, 94 MB): it "
            "does not fit profile 'cpu' (BACKBONE=resnet18); use --profile r50",
        ),
        (
            ["--profile", "tiny", "--weights", "coco"],
            "does not fit profile 'tiny' (BACKBONE=resnet18); use --profile gpu (ResNet-101) or r50 (ResNet-50)",
        ),
        (
            ["--profile", "tiny", "--weights", "coco.h5"],
            "--weights coco.h5: no such file or folder (or give one of the keys coco, imagenet, synthetic, none, last)",
        ),
    ],
)
def test_weights_and_stage_errors_are_one_line_before_training(tiny_facemask_dir, tmp_path, args, needle):
    proc = _run(
        "train.py",
        "--dataset",
        str(tiny_facemask_dir),
        "--logs",
        str(tmp_path / "logs"),
        *args,
        env={"MRCNN_COCO_WEIGHTS": "/nonexistent/mask_rcnn_coco.h5"},
        timeout=300,
    )
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and err and needle in err[-1], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not list((tmp_path / "logs").glob("*/mask_rcnn_*.h5")), "a stage trained before the error"


def test_a_first_stage_that_leaves_the_new_class_heads_untrained_is_refused(tiny_facemask_dir, tmp_path):
    """Weights with 3 classes into a 1-class model: the class heads start from random weights, so a
    first stage of res5 only would fit the backbone to random heads."""
    import facemask
    from mrcnn.model import MaskRCNN

    other = tmp_path / "three_classes.h5"
    MaskRCNN("inference", facemask.make_config("tiny", NUM_CLASSES=4, IMAGES_PER_GPU=1), str(tmp_path)).save_weights(
        str(other)
    )
    proc = _run(
        "train.py",
        "--dataset",
        str(tiny_facemask_dir),
        "--logs",
        str(tmp_path / "logs"),
        "--profile",
        "tiny",
        "--weights",
        str(other),
        "--stages",
        "res5.*:0.01:1,all:0.001:2",
        timeout=300,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "stage 1 (res5.*) leaves 3 layer(s) untrained that start from random weights" in proc.stderr
    assert "mrcnn_class_logits" in proc.stderr and "--stages heads:0.001:10,all:0.00001:20" in proc.stderr


def test_imagenet_weights_start_the_r50_profile(tiny_facemask_dir, tmp_path):
    """--weights imagenet with --profile r50 (ResNet-50): the backbone loads from the ImageNet file's
    layout, the FPN/RPN/heads start fresh, so the default pretrained schedule trains the heads first."""
    from tools.coco_standin import imagenet_layer_shapes, write_coco_standin

    imagenet = tmp_path / "resnet50_imagenet.h5"
    write_coco_standin(str(imagenet), layer_shapes=imagenet_layer_shapes())
    small = tmp_path / "r50_small.json"
    small.write_text(
        json.dumps(
            {
                "IMAGE_MIN_DIM": 128,
                "IMAGE_MAX_DIM": 128,
                "RPN_ANCHOR_SCALES": [8, 16, 32, 64, 128],
                "POST_NMS_ROIS_TRAINING": 100,
                "TRAIN_ROIS_PER_IMAGE": 32,
                "PRE_NMS_LIMIT": 500,
                "STEPS_PER_EPOCH": 1,
                "VALIDATION_STEPS": 1,
            }
        )
    )
    logs = tmp_path / "logs"
    proc = _run(
        "train.py",
        "--profile",
        "r50",
        "--weights",
        "imagenet",
        "--config",
        str(small),
        "--dataset",
        str(tiny_facemask_dir),
        "--logs",
        str(logs),
        "--augment",
        "none",
        "--no-eval",
        "--stages",
        "heads:0.001:1",
        env={"MRCNN_IMAGENET_WEIGHTS": str(imagenet)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"Weights from {imagenet}: loaded 106 layers, excluded 0" in proc.stdout
    (run,) = logs.glob("facemask*")
    trained, start = _layers(run / "mask_rcnn_facemask_0001.h5"), _layers(imagenet)
    assert all(_same(trained[n], start[n]) for n in start), "the heads stage moved the ImageNet backbone"
    assert json.loads((run / "config.json").read_text())["BACKBONE"] == "resnet50"
