"""bench/real_levers.py without training: the table from saved runs (one row per lever, seeds in order,
mean and spread), and a lever it does not know is one line and exit 2."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
real_levers = pytest.importorskip("real_levers")


def test_table_rows_from_saved_runs(tmp_path):
    runs = {
        ("defaults", 1): 0.75,
        ("defaults", 0): 0.5,
        ("defaults", 2): 1.0,
        ("torchvision", 0): 0.8,
        ("anchors-default", 0): 0.9,
    }
    for (lever, seed), value in runs.items():
        row = {"lever": lever, "seed": seed, "args": real_levers.LEVERS.get(lever, []), "train_s": 600}
        row |= {"mask_mAP50": value, "coco_segm_AP": value / 2}
        (tmp_path / f"{lever}_s{seed}.json").write_text(json.dumps(row))
    lines = real_levers.section_text("set", real_levers.collect(tmp_path)).splitlines()
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| lever")]
    assert [r.split(" | ")[0] for r in rows] == ["| defaults", "| anchors-default", "| torchvision"]
    assert rows[0].split(" | ")[2:6] == ["0.500 (s0), 0.750 (s1), 1.000 (s2)", "0.750", "0.500", "0.375"]
    assert "`--anchors default`" in rows[1] and "`peer`" in rows[2]


def test_unknown_lever_is_one_line(tmp_path, capsys):
    assert real_levers.main(["--dataset", str(tmp_path), "--levers", "bogus", "--no-write"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bogus" in err[0] and "defaults" in err[0]


def test_peer_without_defaults_runs_or_minutes_is_one_line(tmp_path, capsys):
    """torchvision is timed by the defaults rows; with none and no --peer-minutes it says so and trains nothing."""
    out = tmp_path / "out"
    argv = ["--dataset", str(tmp_path / "set"), "--levers", "torchvision", "--out", str(out), "--no-write"]
    assert real_levers.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--peer-minutes" in err[0]
    assert not any((out / "set").iterdir())
