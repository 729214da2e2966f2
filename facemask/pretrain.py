"""``--weights synthetic``: the profile's model pretrained on the generated face-mask set, built once
and cached, then fine-tuned on the user's data like any pretrained start (heads, then all layers;
the class heads are left out when the classes differ).

    path = synthetic_weights(config)   # ~/.cache/mrcnn-facemask/synthetic/cpu-1a2b3c4d5e6f/weights.h5

The cache key covers what the weights depend on: the profile, the model-shape settings of the config
(backbone, sizes, widths, anchors), the generator's settings and schedule, and a hash of the code that
draws the images and builds the model (``facemask/synthetic``, ``mrcnn/model``, the profiles). A later
run with the same key re-uses the file; a change of any of them builds a new one. The build is
``python -m facemask.train`` from scratch on the generated set, in a child process, under a lock (two
runs asking at once build once); ``weights.h5`` appears atomically, beside ``build.json`` (the key's
inputs, the minutes it took and the synthetic val mAP it reached).

``MRCNN_FACEMASK_CACHE`` moves the cache (default ``$XDG_CACHE_HOME/mrcnn-facemask``, else
``~/.cache/mrcnn-facemask``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CACHE_ENV = "MRCNN_FACEMASK_CACHE"
PACKAGE_ROOT = Path(__file__).resolve().parents[1]
#: The code the pretrained weights depend on (hashed into the cache key).
CODE = ("facemask/synthetic", "mrcnn/model", "facemask/profiles.py")
#: Config values that shape the model (or what its weights mean): taken from the run's config, so the
#: pretrained file loads into it layer for layer.
MODEL_KEYS = (
    "BACKBONE",
    "BACKBONE_STRIDES",
    "IMAGE_MIN_DIM",
    "IMAGE_MAX_DIM",
    "IMAGE_RESIZE_MODE",
    "TOP_DOWN_PYRAMID_SIZE",
    "RPN_CONV_CHANNELS",
    "FPN_CLASSIF_FC_LAYERS_SIZE",
    "MASK_HEAD_CHANNELS",
    "RPN_ANCHOR_SCALES",
    "RPN_ANCHOR_RATIOS",
    "RPN_ANCHOR_STRIDE",
    "MEAN_PIXEL",
    "TRAIN_BN",
)
#: The generated set (the demo's) per profile; tiny is for tests.
SYNTHETIC_SETS = {
    "tiny": {"n_train": 8, "n_val": 4, "image_size": [128, 160], "seed": 0},
    "default": {"n_train": 200, "n_val": 50, "image_size": [256, 320], "seed": 0},
}


class PretrainError(RuntimeError):
    """The synthetic pretraining did not produce weights (its child process failed)."""


def cache_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mrcnn-facemask"


def code_hash() -> str:
    """sha256 over the files of :data:`CODE` (path and bytes, in sorted order)."""
    digest = hashlib.sha256()
    for item in CODE:
        path = PACKAGE_ROOT / item
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for f in files:
            digest.update(f.relative_to(PACKAGE_ROOT).as_posix().encode())
            digest.update(f.read_bytes())
    return digest.hexdigest()


def _plain(value):
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def build_inputs(config) -> dict:
    """What the pretrained file depends on: profile, model-shape settings, the set, the code."""
    profile = getattr(config, "PROFILE", "cpu")
    return {
        "profile": profile,
        "model": {k: _plain(getattr(config, k)) for k in MODEL_KEYS if hasattr(config, k)},
        "synthetic_set": SYNTHETIC_SETS.get(profile, SYNTHETIC_SETS["default"]),
        "schedule": "the profile's from-scratch default stages, --classes single, --anchors default",
        "code": code_hash(),
    }


def cache_key(inputs: dict) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:12]


def cache_dir(config) -> Path:
    inputs = build_inputs(config)
    return cache_root() / "synthetic" / f"{inputs['profile']}-{cache_key(inputs)}"


def synthetic_weights(config, *, progress: bool = True) -> str:
    """The cached weights file for ``config``'s profile and model shape, built first if absent."""
    folder = cache_dir(config)
    weights = folder / "weights.h5"
    if weights.is_file():
        print(f"--weights synthetic: the cached pretrained model {weights}")
        return str(weights)
    folder.mkdir(parents=True, exist_ok=True)
    with _lock(folder / ".lock"):
        if not weights.is_file():  # another run may have built it while we waited
            _build(config, folder, progress)
    return str(weights)


def _build(config, folder: Path, progress: bool) -> None:
    from mrcnn import runs

    from .synthetic import make_dataset

    inputs = build_inputs(config)
    settings = inputs["synthetic_set"]
    started = time.time()
    print(
        f"--weights synthetic, phase 1 of 2: pretraining profile '{inputs['profile']}' on "
        f"{settings['n_train']} generated face-mask images (once; cached in {folder})",
        flush=True,
    )
    work = Path(tempfile.mkdtemp(prefix="build-", dir=folder))
    try:
        data = work / "data"
        make_dataset(
            data,
            n_train=settings["n_train"],
            n_val=settings["n_val"],
            image_size=tuple(settings["image_size"]),
            seed=settings["seed"],
        )
        overrides = work / "model.json"
        overrides.write_text(json.dumps(inputs["model"]))
        cmd = [
            sys.executable,
            "-m",
            "facemask.train",
            "--dataset",
            str(data),
            "--profile",
            inputs["profile"],
            "--weights",
            "none",
            "--classes",
            "single",
            "--anchors",
            "default",
            "--config",
            str(overrides),
            "--logs",
            str(work / "logs"),
            "--seed",
            "0",
        ]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(PACKAGE_ROOT), os.environ.get("PYTHONPATH", "")]))
        if not progress:
            env["CI"] = "1"  # one line per epoch, no bars
        proc = subprocess.run(cmd, env=env)
        run_dirs = sorted((work / "logs").glob("facemask*"))
        checkpoint = runs.last_checkpoint_in(str(run_dirs[-1])) if run_dirs else None
        if proc.returncode != 0 or checkpoint is None:
            raise PretrainError(
                f"the synthetic pretraining failed (exit code {proc.returncode}; command: "
                f"{' '.join(cmd)}); train from scratch with --weights none"
            )
        summary = runs.read_json(os.path.join(run_dirs[-1], "train_summary.json"))
        tmp = folder / "weights.h5.tmp"
        shutil.copyfile(checkpoint, tmp)
        runs.write_json(
            folder / "build.json",
            {
                **inputs,
                "minutes": round((time.time() - started) / 60, 2),
                "synthetic_val_mask_mAP50": summary.get("mask_mAP50"),
                "stages": summary.get("stages"),
                "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        )
        os.replace(tmp, folder / "weights.h5")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"--weights synthetic: pretrained in {(time.time() - started) / 60:.1f} min -> {folder / 'weights.h5'}; "
        "phase 2 of 2: fine-tuning on your data",
        flush=True,
    )


class _lock:
    """An exclusive ``flock`` on ``path`` for the with-block (released if the process dies)."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        import fcntl

        self.file = open(self.path, "w")
        fcntl.flock(self.file, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        import fcntl

        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()
