"""train.py --minutes N: the plan from measured step times (pure arithmetic), the step-time probe
that leaves the model as it found it, and the command line: a budget too small says its minimum,
a sensible one plans the steps per epoch and reports planned vs actual."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facemask.budget import (
    MARGIN,
    MIN_STEPS_PER_EPOCH,
    BudgetTooSmall,
    StepTimes,
    evaluation_seconds,
    plan_budget,
    remaining_epochs,
)

ROOT = Path(__file__).resolve().parents[1]
STAGES = [("heads", 0.001, 10), ("all", 0.0001, 20)]


def test_remaining_epochs_per_stage():
    assert remaining_epochs(STAGES, 0) == [("heads", 10), ("all", 10)]
    assert remaining_epochs(STAGES, 13) == [("heads", 0), ("all", 7)]
    assert remaining_epochs(STAGES, 20) == [("heads", 0), ("all", 0)]


def test_plan_scales_the_steps_per_epoch_to_the_budget():
    times = {"heads": StepTimes(0.5, 0.2, 1.0, trace=10.0), "all": StepTimes(1.0, 0.3, 1.0, trace=20.0)}
    plan = plan_budget(30, STAGES, 0, times, val_steps=10, eval_reserve_s=60, spent_s=120)
    fixed = 10 * (10 * 0.2 + 1.0) + 10.0 + 10 * (10 * 0.3 + 1.0) + 20.0  # val passes, checkpoints, traces
    per_step = 10 * 0.5 + 10 * 1.0
    expected = int((MARGIN * (30 * 60 - 120 - 60) - fixed) // per_step)
    assert plan.steps_per_epoch == expected
    assert plan.planned_total_s <= 30 * 60
    assert plan.planned_train_s == pytest.approx(expected * per_step + fixed)
    # A resumed run plans only what is left: the heads stage is done, so more steps fit each epoch.
    later = plan_budget(30, STAGES, 10, times, val_steps=10, eval_reserve_s=60, spent_s=120)
    assert later.steps_per_epoch > plan.steps_per_epoch
    assert "Time budget 30 min" in plan.describe() and "heads 0.50 s" in plan.describe()


def test_a_budget_too_small_names_its_minimum():
    times = {"all": StepTimes(1.0, 0.0, 0.0)}
    with pytest.raises(BudgetTooSmall) as err:
        plan_budget(1, [("all", 0.01, 20)], 0, times, val_steps=0, eval_reserve_s=0, spent_s=30)
    minimum = err.value.minimum_minutes
    assert minimum == pytest.approx((30 + 20 * MIN_STEPS_PER_EPOCH / MARGIN) / 60)
    assert f"the minimum is {np.ceil(minimum * 10) / 10:g} min" in str(err.value)
    plan = plan_budget(minimum + 0.01, [("all", 0.01, 20)], 0, times, val_steps=0, eval_reserve_s=0, spent_s=30)
    assert plan.steps_per_epoch == MIN_STEPS_PER_EPOCH
    with pytest.raises(ValueError, match="no epochs left"):
        plan_budget(10, [("all", 0.01, 20)], 20, times, 0, 0, 0)
    assert evaluation_seconds(0.2, 2, 50, build_s=10, periodic_passes=1) == pytest.approx(10 + 2 * 50 * (0.15 + 0.05))


def test_timing_the_steps_leaves_every_weight_as_it_was(tmp_path, tiny_facemask_dir):
    """The probe trains for real (BatchNorm statistics move too, TRAIN_BN=None): it must put it all back."""
    import facemask
    from mrcnn.model import MaskRCNN

    train, val = (facemask.load_dataset(str(tiny_facemask_dir), split, verbose=False) for split in ("train", "val"))
    model = MaskRCNN("training", facemask.make_config("tiny", TRAIN_BN=None, IMAGES_PER_GPU=1), str(tmp_path))
    before = model.keras_model.get_weights()
    times = model.time_steps(train, val, "all", steps=2)
    assert times["train_step"] > 0 and times["val_step"] > 0 and times["checkpoint"] > 0 and times["trace"] > 0
    after = model.keras_model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before, after))


def _train(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "train.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "CI": "1"},
    )


def test_minutes_on_the_command_line(tiny_facemask_dir, tmp_path):
    common = [
        "--dataset",
        str(tiny_facemask_dir),
        "--profile",
        "tiny",
        "--augment",
        "none",
        "--no-eval",
        "--anchors",
        "default",
    ]
    small = _train(*common, "--logs", str(tmp_path / "small"), "--minutes", "0.2", "--stages", "all:0.01:30")
    assert small.returncode == 1 and "Traceback" not in small.stderr, small.stderr[-2000:]
    assert "--minutes 0.2: 0.2 min is too short for 30 epochs here" in small.stderr and "the minimum is" in small.stderr

    logs = tmp_path / "logs"
    proc = _train(*common, "--logs", str(logs), "--minutes", "1.5", "--stages", "all:0.01:1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = logs.glob("facemask*")
    budget = json.loads((run / "run.json").read_text())["budget"]
    steps = budget["steps_per_epoch"]
    assert budget["minutes"] == 1.5 and steps >= MIN_STEPS_PER_EPOCH
    assert json.loads((run / "config.json").read_text())["STEPS_PER_EPOCH"] == steps
    assert f"{steps} steps per epoch plans" in proc.stdout
    assert f"{steps}/{steps} - " in proc.stdout  # the epoch ran the planned steps
    summary = json.loads((run / "train_summary.json").read_text())["budget"]
    assert summary["planned_s"] <= 90 and summary["actual_s"] > 0
    assert "Time budget 1.5 min: planned" in proc.stdout and "of the budget)" in proc.stdout


def test_a_resumed_budgeted_run_gets_what_remains_of_its_budget(tmp_path):
    """--weights last without --minutes: the run's budget less its last session's start-up and the
    epochs finished since (state.json counts their seconds, across resumes)."""
    from facemask.train import remaining_budget_minutes
    from mrcnn import runs

    runs.write_state(str(tmp_path), {"epoch": 4, "train_seconds": 400.0})
    budget = {"minutes": 20, "spent_s": 60.0, "train_seconds_before": 100.0}  # planned after 100 s of epochs
    assert remaining_budget_minutes(budget, str(tmp_path)) == pytest.approx(20 - (60 + 300) / 60)
