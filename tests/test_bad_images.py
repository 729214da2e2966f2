"""A truncated JPEG in a training set: found by the check before training and left out with a warning,
or skipped when met during training; never a traceback or a hang (in-process and through train.py)."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BAD = "synth_train_00003.jpg"


def _truncate(path: Path, keep: float = 0.4) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.fixture
def data_dir(tiny_facemask_dir, tmp_path) -> Path:
    """A private copy of the tiny synthetic set (8 train / 3 val) that tests may break."""
    out = tmp_path / "data"
    shutil.copytree(tiny_facemask_dir, out)
    return out


def test_verify_image_catches_what_the_header_read_misses(data_dir):
    from mrcnn.data.image_io import ImageReadError, read_image_size, verify_image

    path = data_dir / "train" / BAD
    verify_image(path)
    size = read_image_size(path)
    _truncate(path)
    assert read_image_size(path) == size, "the header survives truncation"
    with pytest.raises(ImageReadError, match=f"{BAD}.*truncated"):
        verify_image(path)


def test_build_dataset_leaves_out_a_truncated_image_with_a_warning(data_dir, caplog):
    import facemask
    from mrcnn.data.pipeline import build_dataset

    _truncate(data_dir / "train" / BAD)
    train = facemask.load_dataset(str(data_dir), "train", verbose=False)  # header-only: still listed
    assert len(train.image_ids) == 8
    bad_id = next(i for i, info in enumerate(train.image_info) if info["path"].endswith(BAD))
    assert list(train.unreadable_images()) == [bad_id]
    config = facemask.make_config("tiny", IMAGES_PER_GPU=1)
    with caplog.at_level(logging.WARNING):
        ds = build_dataset(train, config, shuffle=False, repeat=False)
    warnings = [r.getMessage() for r in caplog.records if BAD in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0] and "truncated" in warnings[0]
    seen = [int(batch["input_image_meta"][0, 0]) for batch in ds]
    assert sorted(seen) == [i for i in range(8) if i != bad_id]


def test_no_readable_image_is_a_value_error_naming_a_file(data_dir):
    import facemask
    from mrcnn.data.pipeline import build_dataset

    train = facemask.load_dataset(str(data_dir), "train", verbose=False)
    for info in train.image_info:
        _truncate(Path(info["path"]))
    with pytest.raises(ValueError, match=r"none of the 8 images can be read, e\.g\. .*synth_train_.*truncated"):
        build_dataset(train, facemask.make_config("tiny"))


def test_image_broken_after_the_check_is_skipped_during_a_real_train(data_dir, tmp_path, caplog):
    import facemask
    from mrcnn.model import MaskRCNN
    from mrcnn.runs import read_state

    train = facemask.load_dataset(str(data_dir), "train", verbose=False)
    keep = [i for i, info in enumerate(train.image_info) if info["path"].endswith(("synth_train_00000.jpg", BAD))]
    train.image_info = [train.image_info[i] for i in keep]
    train.prepare()
    assert train.unreadable_images() == {}  # both fine when checked...
    _truncate(data_dir / "train" / BAD)  # ...then one breaks before training reaches it
    config = facemask.make_config("tiny", IMAGES_PER_GPU=1, STEPS_PER_EPOCH=3)
    model = MaskRCNN("training", config, str(tmp_path / "logs"))
    with caplog.at_level(logging.WARNING):
        model.train(train, None, 0.01, 1, "heads", verbose=0)  # 3 steps: the bad image is drawn
    warnings = [r.getMessage() for r in caplog.records if BAD in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("Skipping an unreadable training image")
    state = read_state(model.log_dir)
    assert state["epoch"] == 1 and np.isfinite(state["logs"]["loss"])


def test_train_py_with_a_truncated_jpeg_warns_once_and_exits(data_dir, tmp_path):
    _truncate(data_dir / "train" / BAD)
    args = [
        sys.executable,
        "train.py",
        "--dataset",
        str(data_dir),
        "--profile",
        "tiny",
        "--logs",
        str(tmp_path / "logs"),
        "--augment",
        "none",
        "--anchors",
        "default",
        "--stages",
        "all:0.01:1",
        "--steps-per-epoch",
        "2",
        "--no-eval",
    ]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=400)  # a hang fails here
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout and "AutoGraph" not in proc.stderr
    lines = [line for line in (proc.stderr + proc.stdout).splitlines() if BAD in line]
    assert len(lines) == 1 and "truncated" in lines[0], lines
    assert list((tmp_path / "logs").glob("facemask*/mask_rcnn_facemask_0001.h5"))


def _delete_images(folder: Path) -> None:
    for path in folder.glob("*.jpg"):
        path.unlink()


def test_a_shard_whose_images_vanish_stops_after_max_skips_naming_the_files(data_dir):
    """One worker's shard never sees every image, so 'all failed' cannot end it: the bound does."""
    import facemask
    from mrcnn.data.pipeline import build_dataset, input_stream_error

    train = facemask.load_dataset(str(data_dir), "train", verbose=False)
    config = facemask.make_config("tiny", IMAGES_PER_GPU=1, INPUT_CACHE_MB=0)
    ds = build_dataset(train, config, shard=(2, 0), max_skips=5)
    _delete_images(data_dir / "train")
    with pytest.raises(Exception) as caught:
        for _ in ds.take(100):
            pass
    error = input_stream_error(caught.value)
    assert (
        error is not None and error.total is None and error.count >= 5 and len(error.last) == 3
    )  # parallel loads may add a few
    assert all("synth_train_" in line for line in error.last) and "\n" not in str(error)


def test_images_deleted_mid_training_end_it_with_one_line(data_dir, tmp_path, capsys, monkeypatch):
    """A real tiny training whose images are deleted after its first step: it stops (no endless wait for a
    readable sample) and the command line prints one line naming the files."""
    import keras

    import facemask
    from facemask.cli import cli_main
    from mrcnn.model import MaskRCNN

    class DeleteImages(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 0:
                _delete_images(data_dir / "train")

    def run(argv):
        train = facemask.load_dataset(str(data_dir), "train", verbose=False)
        config = facemask.make_config("tiny", IMAGES_PER_GPU=1, STEPS_PER_EPOCH=200, INPUT_CACHE_MB=0)
        model = MaskRCNN("training", config, str(tmp_path / "logs"))
        model.train(train, None, 0.01, 1, "heads", verbose=0, custom_callbacks=[DeleteImages()])

    monkeypatch.delenv("FACEMASK_DEBUG", raising=False)
    assert cli_main(run, []) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "can be read any more" in err, err
    assert "synth_train_" in err and "Traceback" not in err
    assert not list((tmp_path / "logs").glob("*/mask_rcnn_*.h5")), "no checkpoint of a broken epoch"
