"""Run folders: where checkpoints live, finding the last one, and the config a run used.

A run folder is ``<model_dir>/<name><YYYYmmddTHHMMSS>/`` holding ``mask_rcnn_<name>_<epoch>.h5``
checkpoints, ``best.h5``, ``config.json``, ``state.json``, ``history.jsonl`` and TensorBoard logs.
"""
from __future__ import annotations

import glob
import json
import os


def find_last_checkpoint(model_dir: str, name: str | None = None) -> str:
    """Newest checkpoint of the newest run folder (of config ``name`` when given)."""
    pattern = f"{name.lower()}*" if name else "*"
    runs = sorted((d for d in glob.glob(os.path.join(model_dir, pattern)) if os.path.isdir(d)),
                  key=lambda d: os.path.basename(d)[-15:])
    for run in reversed(runs):
        checkpoints = sorted(glob.glob(os.path.join(run, "mask_rcnn_*_[0-9][0-9][0-9][0-9].h5")))
        if checkpoints:
            return checkpoints[-1]
    what = f"of '{name}' " if name else ""
    raise FileNotFoundError(f"no checkpoint {what}found under {model_dir} (looked for "
                            f"{model_dir}/{pattern}/mask_rcnn_*_NNNN.h5); train first or pass --weights PATH")


def run_config_path(weights_path: str) -> str | None:
    """The ``config.json`` saved beside a checkpoint, if any."""
    path = os.path.join(os.path.dirname(os.path.abspath(weights_path)), "config.json")
    return path if os.path.isfile(path) else None


def read_state(run_dir: str) -> dict:
    path = os.path.join(run_dir, "state.json")
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_history(run_dir: str) -> list[dict]:
    """Per-epoch logs (loss and val_loss per head) of a run."""
    path = os.path.join(run_dir, "history.jsonl")
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
