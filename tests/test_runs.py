"""mrcnn.runs: run-folder naming and parsing, atomic writes (fsync, temp files), state before/after history,
stale temp files; and the checkpoint callback writing through it in a real train/resume."""

from __future__ import annotations

import datetime
import json
import os
import stat
import subprocess
import sys

import pytest

from mrcnn import runs


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_naming_and_parsing_round_trip(tmp_path):
    when = datetime.datetime(2024, 3, 5, 7, 8, 9)
    run = runs.new_run_dir(str(tmp_path), "FaceMask", when)
    assert os.path.basename(run) == "facemask20240305T070809"
    path = runs.checkpoint_path(run, "FaceMask", 12)
    assert os.path.basename(path) == "mask_rcnn_facemask_0012.h5"
    assert runs.parse_checkpoint_path(path, "FaceMask") == (run, 12)
    assert runs.parse_checkpoint_path(path, "other") is None  # another config's run
    assert runs.parse_checkpoint_path(str(tmp_path / "mask_rcnn_coco.h5"), "coco") is None
    assert runs.parse_checkpoint_path(os.path.join(run, "best.h5"), "FaceMask") is None


def test_atomic_write_fsyncs_file_and_folder_then_renames(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        synced.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    target = tmp_path / "state.json"
    target.write_text("old")
    runs.write_json(target, {"epoch": 3})
    assert json.loads(target.read_text()) == {"epoch": 3}
    assert synced == (["file", "folder"] if os.name != "nt" else ["file"])
    assert os.listdir(tmp_path) == ["state.json"]


def test_atomic_write_failure_keeps_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "config.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with runs.atomic_write(target) as tmp, open(tmp, "w") as f:
            f.write("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["config.json"]


def test_config_save_is_atomic(tmp_path):
    import facemask

    path = tmp_path / "config.json"
    facemask.make_config("tiny").save(str(path))
    assert json.loads(path.read_text())["NAME"] == "facemask"
    assert os.listdir(tmp_path) == ["config.json"]


def test_stale_temp_files_of_dead_processes_are_removed(tmp_path):
    dead = tmp_path / f"mask_rcnn_facemask_0002.h5.tmp-{_dead_pid()}"
    live = tmp_path / f"state.json.tmp-{os.getppid()}"  # a live writer (e.g. a training beside an evaluation)
    own = tmp_path / f"best.h5.tmp-{os.getpid()}"
    other = tmp_path / "notes.tmp-draft"
    for p in (dead, live, own, other):
        p.write_text("x")
    assert runs.remove_stale_temp_files(tmp_path) == [str(dead)]
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in (live, own, other))


def test_kill_between_history_and_state_keeps_the_epoch_once(tmp_path, monkeypatch):
    run = str(tmp_path)
    runs.record_epoch(run, 1, {"loss": 2.0}, best=2.0)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed while writing state.json")

    with monkeypatch.context() as m:
        m.setattr(runs, "write_state", killed)
        with pytest.raises(KeyboardInterrupt):
            runs.record_epoch(run, 2, {"loss": 1.5}, best=1.5)
    assert runs.read_state(run)["epoch"] == 1, "the state still says epoch 1: a resume re-trains epoch 2"
    assert [h["epoch"] for h in runs.read_history(run)] == [1, 2], "epoch 2 reached the history first"

    runs.record_epoch(run, 2, {"loss": 1.4}, best=1.4)  # the resumed run re-trains epoch 2
    history = runs.read_history(run)
    assert [(h["epoch"], h["loss"]) for h in history] == [(1, 2.0), (2, 1.4)], "no duplicate epoch"
    assert runs.read_state(run) == {"epoch": 2, "best": 1.4, "logs": {"loss": 1.4}}


def test_the_epochs_checkpoint_appears_after_its_history_and_state(tmp_path, monkeypatch):
    """--weights last resumes from the newest checkpoint file, so that file must be the last thing an
    epoch writes: a kill before it (here: while writing state.json) leaves the previous checkpoint as
    the newest, and the resume re-trains the epoch instead of skipping its history line (found by
    bench/reliability.py: epoch 3 had a checkpoint but no history line)."""
    import keras

    from mrcnn.model.trainer import CheckpointCallback

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")])
    run = str(tmp_path)
    callback = CheckpointCallback(lambda epoch: runs.checkpoint_path(run, "facemask", epoch), run, monitor="loss")
    callback.set_model(model)
    callback.on_epoch_end(0, {"loss": 2.0})
    assert runs.last_checkpoint_in(run).endswith("_0001.h5")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed while writing state.json")

    with monkeypatch.context() as m:
        m.setattr(runs, "write_state", killed)
        with pytest.raises(KeyboardInterrupt):
            callback.on_epoch_end(1, {"loss": 1.5})
    assert runs.last_checkpoint_in(run).endswith("_0001.h5"), "epoch 2's checkpoint appeared before its state"
    assert not [f for f in os.listdir(run) if ".tmp" in f], "the unfinished checkpoint was left as a temp file"
    callback.on_epoch_end(1, {"loss": 1.4})  # the resume re-trains epoch 2
    assert runs.last_checkpoint_in(run).endswith("_0002.h5")
    assert [(h["epoch"], h["loss"]) for h in runs.read_history(run)] == [(1, 2.0), (2, 1.4)]


def test_history_line_cut_by_a_kill_is_ignored_and_the_next_starts_fresh(tmp_path):
    run = str(tmp_path)
    runs.append_history(run, {"epoch": 1, "loss": 2.0})
    with open(tmp_path / runs.HISTORY_FILE, "a") as f:
        f.write('{"epoch": 2, "lo')  # killed mid-line
    runs.append_history(run, {"epoch": 2, "loss": 1.0})
    assert runs.read_history(run) == [{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.0}]


def test_checkpoints_history_and_stale_files_through_a_real_train_and_resume(tiny_facemask_dir, tmp_path):
    import facemask
    from mrcnn.model import MaskRCNN

    train = facemask.load_dataset(str(tiny_facemask_dir), "train", verbose=False)
    config = facemask.make_config("tiny", STEPS_PER_EPOCH=1, IMAGES_PER_GPU=1)
    model = MaskRCNN("training", config, str(tmp_path))
    model.train(train, None, 0.01, 1, "heads", verbose=0)
    run = model.log_dir
    assert runs.read_state(run)["epoch"] == 1 and runs.best_checkpoint(run)
    stale = os.path.join(run, f"mask_rcnn_facemask_0002.h5.tmp-{_dead_pid()}")
    with open(stale, "w") as f:
        f.write("left by kill -9")

    resumed = MaskRCNN("training", config, str(tmp_path))
    resumed.load_weights(runs.find_last_checkpoint(str(tmp_path), "facemask"), verbose=0)
    assert (resumed.log_dir, resumed.epoch) == (run, 1)
    resumed.train(train, None, 0.01, 2, "heads", verbose=0)
    assert not os.path.exists(stale), "the stale temp file survived the resume"
    assert not [n for n in os.listdir(run) if ".tmp" in n]
    assert [h["epoch"] for h in runs.read_history(run)] == [1, 2]
    state = runs.read_state(run)
    assert state["epoch"] == 2 and state["last_checkpoint"] == runs.checkpoint_path(run, "facemask", 2)
