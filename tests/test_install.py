"""The project installed as a user installs it (a built wheel, not the clone): it holds only the
`mrcnn` and `facemask` packages, its console commands exist, and they export a SavedModel and
predict from a folder outside the repository, importing nothing from the clone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "facemask-train",
    "facemask-evaluate",
    "facemask-infer",
    "facemask-app",
    "facemask-export",
    "facemask-fit-anchors",
    "facemask-synthetic",
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Build from a clean copy: setuptools writes build/ and *.egg-info into the source folder, and a
    # stale build/lib would put deleted modules into the wheel.
    source = tmp_path_factory.mktemp("source") / "project"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "*.egg-info", "__pycache__", "logs", "datasets", "outputs", "tests", "bench"
        ),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    wheels = list(out.glob("mrcnn_facemask-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


def test_wheel_holds_the_two_packages_and_the_commands(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
        entry_points = next(z.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    assert top == {"mrcnn", "facemask"}, f"unexpected top-level entries in the wheel: {sorted(top)}"
    assert "facemask/cli.py" in names and "mrcnn/anchor_fit.py" in names and "mrcnn/evaluation.py" in names
    assert "facemask/synthetic/scene.py" in names and "facemask/synthetic/__main__.py" in names
    for command in COMMANDS:
        assert f"{command} = facemask." in entry_points, command


def test_installed_commands_export_and_predict_outside_the_repo(wheel, tmp_path):
    import keras
    from PIL import Image

    import facemask
    from facemask.synthetic import draw_sample
    from mrcnn.model.maskrcnn import MaskRCNN

    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (site / "tools").exists() and not (site / "train.py").exists()

    # A trained run folder as train.py leaves it: a checkpoint and its config.json.
    run = tmp_path / "logs" / "facemask20260101T000000"
    run.mkdir(parents=True)
    keras.utils.set_random_seed(0)
    config = facemask.make_config("tiny", "helmet,vest", inference=True, DETECTION_MIN_CONFIDENCE=0.0)
    MaskRCNN("inference", config, str(tmp_path / "logs")).save_weights(str(run / "mask_rcnn_facemask_0001.h5"))
    config.save(str(run / "config.json"))
    photos = tmp_path / "photos"
    photos.mkdir()
    import numpy as np

    Image.fromarray(draw_sample(np.random.default_rng(7), 128, 160, negative=False)[0]).save(photos / "one.jpg")

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "TF_CPP_MIN_LOG_LEVEL": "2"}

    def command(name, *args):
        return subprocess.run(
            [sys.executable, str(site / "bin" / name), *map(str, args)],
            cwd=outside,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    where = subprocess.run(
        [sys.executable, "-c", "import facemask, mrcnn; print(facemask.__file__, mrcnn.__file__)"],
        cwd=outside,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert where.stdout.split() == [str(site / "facemask" / "__init__.py"), str(site / "mrcnn" / "__init__.py")]

    exported = command("facemask-export", "--weights", run, "--out", tmp_path / "saved")
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert (tmp_path / "saved" / "saved_model.pb").is_file()
    assert "classes: helmet, vest" in exported.stdout

    predicted = command(
        "facemask-infer",
        "--weights",
        run / "mask_rcnn_facemask_0001.h5",
        "--input",
        photos,
        "--output",
        tmp_path / "out",
        "--no-progress",
    )
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    predictions = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert [c["name"] for c in predictions["categories"]] == ["helmet", "vest"]
    assert [im["file_name"] for im in predictions["images"]] == ["one.jpg"]
