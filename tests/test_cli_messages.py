"""Every user error a command line can hit reads as one line that names the flag fixing it (never a
Python keyword such as ``class_key=``, never ``:;``). Run through each command's ``main(argv)``; the
errors come before any model is built, so each case takes well under a second."""

from __future__ import annotations

import json
import re
import shutil

import h5py
import numpy as np
import pytest

KEYWORD_ADVICE = re.compile(r"\b(class_key|class_names|single_class|aliases|unknown|exclude|image_dir)=")


@pytest.fixture
def data(tiny_facemask_dir, tmp_path):
    """A private copy of the tiny set; helpers edit its json."""
    out = tmp_path / "data"
    shutil.copytree(tiny_facemask_dir, out)
    return out


def _edit_first_region(json_path, attributes):
    via = json.loads(json_path.read_text())
    entry = next(e for e in via.values() if e["regions"])
    entry["regions"][0]["region_attributes"] = attributes
    json_path.write_text(json.dumps(via))


def _fake_checkpoint(folder, classes, names):
    """A by-name h5 holding only the class logits (all the CLI reads before building a model) and the
    run's config.json beside it."""
    import facemask

    folder.mkdir()
    path = folder / "mask_rcnn_facemask_0001.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"mrcnn_class_logits"]
        group = f.create_group("mrcnn_class_logits")
        group.attrs["weight_names"] = [b"mrcnn_class_logits/kernel:0"]
        group.create_dataset("mrcnn_class_logits/kernel:0", data=np.zeros((8, 1 + len(names)), np.float32))
    config = facemask.make_config("tiny", classes)
    (folder / "config.json").write_text(json.dumps(config.to_dict()))
    return path


def _error_line(main, argv, capsys) -> str:
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    line = lines[0]
    assert "Traceback" not in err and ":;" not in line and not KEYWORD_ADVICE.search(line), line
    return line


def _train(data, tmp_path, *flags):
    return [
        "--dataset",
        str(data),
        "--profile",
        "tiny",
        "--logs",
        str(tmp_path / "logs"),
        "--anchors",
        "default",
        "--stages",
        "all:0.01:1",
        *flags,
    ]


def test_train_unknown_class_names_unknown_skip_and_classes(data, tmp_path, capsys):
    from facemask.train import main

    _edit_first_region(data / "train" / "via_region_data.json", {"mask_type": "bandana"})
    line = _error_line(main, _train(data, tmp_path, "--classes", "subtypes"), capsys)
    assert "1 region(s) in" in line and "bandana" in line
    assert "--unknown skip" in line and "--classes" in line
    assert not (tmp_path / "logs").exists(), "nothing is written for a refused dataset"


def test_train_class_key_the_file_lacks_names_class_key(data, tmp_path, capsys):
    from facemask.train import main

    line = _error_line(main, _train(data, tmp_path, "--classes", "helmet,vest", "--class-key", "label"), capsys)
    assert line.startswith("error: --class-key label:") and "pass --class-key with one of: mask_type" in line


def test_train_regions_with_two_attributes_name_class_key(data, tmp_path, capsys):
    from facemask.train import main

    _edit_first_region(data / "train" / "via_region_data.json", {"mask_type": "n95", "colour": "blue"})
    line = _error_line(main, _train(data, tmp_path, "--classes", "auto"), capsys)
    assert "--class-key NAME" in line and "colour, mask_type" in line and "--unknown skip" in line


def test_train_missing_images_name_dataset(data, tmp_path, capsys):
    from facemask.train import main

    (data / "train" / "synth_train_00002.jpg").unlink()
    line = _error_line(main, _train(data, tmp_path), capsys)
    assert "1 of 8 images" in line and "synth_train_00002.jpg" in line and "--dataset" in line


def test_evaluate_unknown_class_says_unknown_skip_not_classes(data, tmp_path, capsys):
    """The issue's case: the model's classes come from its run, so --unknown skip is the fix."""
    from facemask.evaluate import main

    weights = _fake_checkpoint(tmp_path / "run", "subtypes", ["surgical", "n95", "cloth", "fashion"])
    _edit_first_region(data / "val" / "via_region_data.json", {"mask_type": "bandana"})
    line = _error_line(main, ["--weights", str(weights), "--dataset", str(data)], capsys)
    assert "1 region(s) in" in line and "bandana" in line and "--unknown skip" in line
    assert "--classes" not in line and "aliases" not in line


def test_weights_that_are_not_hdf5_name_weights_path(data, tmp_path, capsys):
    from facemask.evaluate import main
    from facemask.inference import main as infer

    bad = tmp_path / "notes.h5"
    bad.write_text("not a weights file")
    for command, argv in (
        (main, ["--weights", str(bad), "--dataset", str(data)]),
        (infer, ["--weights", str(bad), "--input", str(data / "val"), "--output", str(tmp_path / "out")]),
    ):
        line = _error_line(command, argv, capsys)
        assert "not a readable HDF5 weights file" in line and "--weights PATH" in line
        assert "keras_model" not in line
    assert not (tmp_path / "out").exists()


def test_fit_anchors_unknown_class_names_unknown_skip(data, capsys):
    from facemask.fit_anchors import main

    _edit_first_region(data / "train" / "via_region_data.json", {"mask_type": "bandana"})
    line = _error_line(main, ["--dataset", str(data), "--classes", "subtypes", "--profile", "tiny"], capsys)
    assert "--unknown skip" in line
    assert (
        main(["--dataset", str(data), "--classes", "subtypes", "--profile", "tiny", "--unknown", "skip", "--quiet"])
        == 0
    )


def test_fit_anchors_holdout_subset_missing_fails_before_the_fit(data, capsys):
    from facemask.fit_anchors import main

    capsys.readouterr()
    assert main(["--dataset", str(data), "--profile", "tiny", "--holdout", "test"]) == 1
    out, err = capsys.readouterr()
    assert [line for line in err.splitlines() if line.startswith("error: ")] == [err.strip()], err
    assert str(data / "test" / "via_region_data.json") in err
    assert "boxes at input size" not in out  # the subset is checked before anything is fitted
