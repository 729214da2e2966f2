"""train.py as a user runs it: a subprocess on tiny synthetic data, then a resume with
--weights last that continues the epoch count in the same run folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _train(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "train.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_train_evaluate_then_resume(tiny_facemask_dir, tmp_path):
    logs = tmp_path / "logs"
    common = ["--dataset", str(tiny_facemask_dir), "--profile", "tiny", "--logs", str(logs), "--augment", "none"]
    first = _train(
        *common,
        "--stages",
        "all:0.01:1,all:0.001:2",
        "--steps-per-epoch",
        "2",
        "--eval-limit",
        "2",
        "--eval-every",
        "1",
        "--layer-lr-decay",
        "0.5",
    )
    assert first.returncode == 0, first.stderr[-3000:]
    assert "val mask mAP@0.5 =" in first.stdout
    runs = list(logs.glob("facemask*"))
    assert len(runs) == 1
    run = runs[0]
    assert sorted(p.name for p in run.glob("mask_rcnn_facemask_*.h5")) == [
        "mask_rcnn_facemask_0001.h5",
        "mask_rcnn_facemask_0002.h5",
    ]
    assert (run / "best.h5").is_file() and (run / "config.json").is_file() and (run / "losses.png").is_file()
    val_map = json.loads((run / "val_map.json").read_text())["epochs"]  # --eval-every 1: each epoch
    assert [r["epoch"] for r in val_map] == [1, 2] and (run / "val_map.png").stat().st_size > 0
    assert all(r["mask_mAP50"] is None or 0.0 <= r["mask_mAP50"] <= 1.0 for r in val_map)
    assert "val mask mAP@0.5" in first.stdout and "(ranked)" in first.stdout
    assert "Loss curves:" in first.stdout and "too few to judge convergence" in first.stdout
    assert not list(run.glob("*.tmp*")), "a temporary checkpoint file was left behind"
    # --anchors auto (the default from scratch): the fit's table, snippet and plot
    assert "recall@0.5" in first.stdout and "fitted" in first.stdout
    assert "each at 1/2x to 2x its size" in first.stdout  # --scale-margin's default on a user's data
    assert set(json.loads((run / "anchors_auto.json").read_text())) == {"RPN_ANCHOR_SCALES", "RPN_ANCHOR_RATIOS"}
    assert (run / "anchors_auto.png").stat().st_size > 0
    state = json.loads((run / "state.json").read_text())
    assert state["epoch"] == 2
    summary = json.loads((run / "train_summary.json").read_text())
    assert 0.0 <= summary["mask_mAP50"] <= 1.0
    assert summary["checkpoint"] == str(run / "mask_rcnn_facemask_0002.h5")  # the last epoch, not best.h5
    report = json.loads((run / "eval_val" / "report.json").read_text())
    assert "mask_mAP50" in report and "coco_segm" in report

    run_record = json.loads((run / "run.json").read_text())
    assert run_record["stages"] == [["all", 0.01, 1], ["all", 0.001, 2]] and run_record["weights"] == "none"
    assert run_record["scale_margin"] == 2.0
    assert run_record["layer_lr_decay"] == 0.5 and "layer-wise LR decay 0.5 down the backbone" in first.stdout
    assert (saved := json.loads((run / "config.json").read_text()))["PROFILE"] == "tiny"
    assert saved["CLASS_NAMES"] == ["mask"]

    # Contradicting the run is refused with one line, before anything is trained.
    for flags, needle in ((["--classes", "subtypes"], "drop --classes"), (["--profile", "gpu"], "drop --profile")):
        refused = _train("--logs", str(logs), "--weights", "last", *flags, timeout=300)
        assert refused.returncode == 1 and needle in refused.stderr and "Traceback" not in refused.stderr

    # Killed during epoch 2 (its checkpoint never written): --weights last alone resumes the same
    # run with the run's own from-scratch stages (not the pretrained default heads:...:10,all:...:20).
    (run / "mask_rcnn_facemask_0002.h5").unlink()
    again = _train("--logs", str(logs), "--weights", "last", "--steps-per-epoch", "2", "--no-eval")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "=== Stage 2/2: layers=all lr=0.001 until epoch 2 ===" in again.stdout
    assert "Starting at epoch 1" in again.stdout and "layer-wise LR decay 0.5" in again.stdout  # the run's own
    assert sorted(p.name for p in run.glob("mask_rcnn_facemask_*.h5"))[-1] == "mask_rcnn_facemask_0002.h5"
    assert json.loads((run / "run.json").read_text())["stages"] == run_record["stages"]

    resumed = _train(*common, "--weights", "last", "--stages", "all:0.001:3", "--steps-per-epoch", "2", "--no-eval")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Starting at epoch 2" in resumed.stdout
    assert "Resuming with the run's config" in resumed.stdout  # e.g. the fitted anchors of run one
    saved = json.loads((run / "config.json").read_text())
    assert saved["RPN_ANCHOR_SCALES"] != [8, 16, 32, 64, 128], "run one trained from scratch: anchors were fitted"
    assert (run / "mask_rcnn_facemask_0003.h5").is_file(), "resume did not continue in the same run folder"
    assert len(list(logs.glob("facemask*"))) == 1


def test_train_rejects_bad_arguments(tmp_path):
    bad_stage = _train("--stages", "heads:fast:3", timeout=60)
    assert bad_stage.returncode == 2
    assert "LR must be a number" in bad_stage.stderr
    for args, needle in (
        (["--stages", "all:0.01:0"], "EPOCH is the epoch the stage ends at, so >= 1"),
        (["--stages", "all:-1:3"], "the learning rate must be > 0"),
        (["--stages", "all:0.01:3,all:0.001:2"], "stage epochs must increase"),
        (["--steps-per-epoch", "-3"], "-3 must be >= 1"),
        (["--classes", "a,A"], "names a class twice"),
        (["--layer-lr-decay", "1.5"], "is not in (0, 1]"),
        (["--scale-margin", "0.5"], "0.5 must be a number >= 1"),
    ):
        bad = _train(*args, timeout=60)
        assert bad.returncode == 2 and needle in bad.stderr, (args, bad.stderr[-500:])
    missing = _train("--dataset", str(tmp_path / "nowhere"), "--logs", str(tmp_path / "logs"), timeout=120)
    assert missing.returncode != 0 and "via_region_data.json" in missing.stderr


def test_training_failure_is_reported_and_the_process_exits(tiny_facemask_dir, tmp_path):
    """An image that disappears mid-training fails the run with an error naming it; the process must
    exit (live tf.data loader threads used to deadlock interpreter shutdown)."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_facemask_dir, data)
    script = (
        "import os, sys, facemask\n"
        "from mrcnn.model import MaskRCNN\n"
        "train = facemask.load_dataset(sys.argv[1], 'train', verbose=False)\n"
        "for info in train.image_info: os.remove(info['path'])\n"
        "config = facemask.make_config('tiny', STEPS_PER_EPOCH=2)\n"
        "MaskRCNN('training', config, sys.argv[2]).train(train, None, 0.01, 1, 'all', verbose=0)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(data), str(tmp_path / "logs")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "synth_train_" in proc.stderr and ("not found" in proc.stderr or "No such file" in proc.stderr)


def test_convergence_verdict_on_the_losses_plot():
    """losses.png's title says whether the run converged (issue 18: the plot shows it or says it has not)."""
    from facemask.train import convergence

    assert convergence([3, 2, 1.5, 1.2, 1.0, 0.9]).startswith("NOT converged")
    assert convergence([3, 2, 1.5, 1.2, 1.19, 1.195, 1.19]).startswith("converged (")
    # ppe's val loss: lowest at epoch 4, then above it while the train loss fell (overfitting).
    rising = convergence([4.4, 2.2, 1.9, 1.65, 1.9, 2.1, 1.95, 1.98])
    assert rising.startswith("converged, then rising") and "lowest at epoch 4" in rising and "18.2%" in rising
    assert "too few" in convergence([1.0, 0.9])
    assert "too few" in convergence([float("nan")] * 5)


def test_each_stage_starts_from_the_weights_the_previous_stage_ended_with(tiny_facemask_dir, tmp_path, monkeypatch):
    """A schedule runs on, as torchvision's and Detectron2's step schedules do: stage 2 starts from the
    weights stage 1 ended with, even when best.h5 (lowest val loss) holds an earlier epoch's."""
    import shutil

    import numpy as np

    from facemask.train import run
    from mrcnn.model import MaskRCNN

    real_train = MaskRCNN.train
    starts, ends = [], []

    def train_and_record(self, *args, **kwargs):
        starts.append(self.keras_model.get_weights())
        result = real_train(self, *args, **kwargs)
        ends.append(self.keras_model.get_weights())
        # As on real data, where the val loss was lowest early: best.h5 is not the last epoch.
        shutil.copyfile(Path(self.log_dir) / "mask_rcnn_facemask_0001.h5", Path(self.log_dir) / "best.h5")
        return result

    monkeypatch.setattr(MaskRCNN, "train", train_and_record)
    record = run(
        [
            "--dataset",
            str(tiny_facemask_dir),
            "--profile",
            "tiny",
            "--logs",
            str(tmp_path / "logs"),
            "--augment",
            "none",
            "--stages",
            "all:0.01:2,all:0.001:3",
            "--steps-per-epoch",
            "2",
            "--no-eval",
        ]
    )
    assert len(starts) == 2 and record["stages"] == [("all", 0.01, 2), ("all", 0.001, 3)]
    assert any(not np.array_equal(a, b) for a, b in zip(starts[0], ends[0])), "stage 1 did not train"
    for ended, started in zip(ends[0], starts[1]):
        np.testing.assert_array_equal(started, ended)


def test_seed_fixes_the_initial_weights(tmp_path):
    """train.py seeds the random init from --seed: a run is repeatable, and another seed is another init
    (before, every run drew a fresh init, so ``--seed`` only changed the data order)."""
    import facemask
    from facemask.train import seed_weight_init
    from mrcnn.model import MaskRCNN

    config = facemask.make_config("tiny")

    def initial_weights(seed):
        seed_weight_init(seed)
        return MaskRCNN("training", config, str(tmp_path)).keras_model.get_weights()

    first, again, other = initial_weights(7), initial_weights(7), initial_weights(8)
    assert len(first) == len(again) > 50
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    kernels = [i for i, w in enumerate(first) if w.ndim == 4]  # conv kernels: randomly initialised
    assert kernels and not any(np.array_equal(first[i], other[i]) for i in kernels)
