"""--weights synthetic: the profile's model pretrained on generated face masks, built once into the
cache, re-used by later runs, rebuilt when what it depends on changes; train.py as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _train(*args, cache, timeout=900):
    env = dict(os.environ, MRCNN_FACEMASK_CACHE=str(cache), CI="1")
    return subprocess.run(
        [sys.executable, "train.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env
    )


def test_train_weights_synthetic_builds_once_then_reuses(tiny_facemask_dir, tmp_path):
    cache, logs = tmp_path / "cache", tmp_path / "logs"
    common = [
        "--dataset",
        str(tiny_facemask_dir),
        "--profile",
        "tiny",
        "--logs",
        str(logs),
        "--augment",
        "none",
        "--weights",
        "synthetic",
        "--steps-per-epoch",
        "1",
    ]
    # Four classes: the pretrained single-class heads are left out and the first (heads) stage trains them.
    first = _train(*common, "--classes", "subtypes", "--eval-limit", "1", cache=cache)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "phase 1 of 2: pretraining profile 'tiny'" in first.stdout and "phase 2 of 2" in first.stdout
    [folder] = list((cache / "synthetic").glob("tiny-*"))
    weights = folder / "weights.h5"
    build = json.loads((folder / "build.json").read_text())
    assert weights.is_file() and build["profile"] == "tiny" and build["synthetic_set"]["n_train"] == 8
    assert 0.0 <= build["synthetic_val_mask_mAP50"] <= 1.0 and build["code"]
    assert not list(folder.glob("build-*")) and not list(folder.glob("*.tmp")), "the build left files behind"
    [run] = list(logs.glob("facemask*"))
    record = json.loads((run / "run.json").read_text())
    assert record["weights"] == "synthetic" and record["weights_file"] == str(weights)
    assert [s[0] for s in record["stages"]] == ["heads", "all"]
    assert "val mask mAP@0.5 =" in first.stdout

    mtime = weights.stat().st_mtime_ns
    second = _train(*common, "--classes", "single", "--stages", "heads:0.01:1", "--no-eval", cache=cache)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "the cached pretrained model" in second.stdout and "phase 1 of 2" not in second.stdout
    assert weights.stat().st_mtime_ns == mtime and len(list((cache / "synthetic").glob("tiny-*"))) == 1


def test_cache_key_follows_the_model_shape_and_the_code(tmp_path, monkeypatch):
    from facemask import pretrain
    from facemask.profiles import make_config

    monkeypatch.setenv(pretrain.CACHE_ENV, str(tmp_path / "cache"))
    config = make_config("cpu", "single")
    base = pretrain.cache_dir(config)
    assert base.parent == tmp_path / "cache" / "synthetic" and base.name.startswith("cpu-")
    config.LEARNING_RATE = config.LEARNING_RATE / 10  # a training setting: the same pretrained file
    assert pretrain.cache_dir(config) == base
    config.IMAGE_MAX_DIM = config.IMAGE_MIN_DIM = 320  # the model's input size: another file
    assert pretrain.cache_dir(config) != base
    assert pretrain.cache_dir(make_config("r50", "single")).name.startswith("r50-")

    # The code hash covers the generator: a changed source file gives another key.
    fake = tmp_path / "pkg"
    for item in pretrain.CODE:
        src = pretrain.PACKAGE_ROOT / item
        dst = fake / item
        if src.is_dir():
            dst.mkdir(parents=True)
            (dst / "a.py").write_text("x = 1\n")
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_text("y = 1\n")
    monkeypatch.setattr(pretrain, "PACKAGE_ROOT", fake)
    before = pretrain.code_hash()
    (fake / pretrain.CODE[0] / "a.py").write_text("x = 2\n")
    assert pretrain.code_hash() != before


def test_weights_synthetic_outside_training_is_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "evaluate.py", "--weights", "synthetic", "--dataset", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "--weights synthetic: give a trained checkpoint" in proc.stderr
