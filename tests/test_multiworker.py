"""Two worker processes on 127.0.0.1 train one model with MultiWorkerMirroredStrategy (CPU, tiny config):
they end with identical weights (also under float16 and bfloat16 mixed precision), the loss falls, only the chief
writes the run folder; then both
restart through train.py's --worker-hosts/--task-index from the chief's last checkpoint and go on."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

WORKER = textwrap.dedent("""
    import json, sys
    from mrcnn.model.loop import make_strategy
    data, logs, out, hosts, index = sys.argv[1:6]
    options = json.loads(sys.argv[6]) if len(sys.argv) > 6 else {}
    strategy = make_strategy(worker_hosts=hosts.split(","), task_index=int(index))
    import facemask
    from mrcnn.model import MaskRCNN
    config = facemask.make_config("tiny", **{"GPU_COUNT": strategy.num_replicas_in_sync, "IMAGES_PER_GPU": 1,
                                             "STEPS_PER_EPOCH": 5, "VALIDATION_STEPS": 1, **options.get("config", {})})
    train = facemask.load_dataset(data, "train", verbose=False)
    val = facemask.load_dataset(data, "val", verbose=False)
    model = MaskRCNN("training", config, logs, strategy=strategy)
    history = model.train(train, val, learning_rate=0.01, epochs=options.get("epochs", 3), layers="all", verbose=0)
    model.save_weights(f"{out}/worker{index}.h5")
    optimizer = model.keras_model.optimizer
    read = lambda variable: variable.value.numpy().item()  # a MirroredVariable: float() refuses it
    scale = read(optimizer.dynamic_scale) if hasattr(optimizer, "dynamic_scale") else None
    applied = read(getattr(optimizer, "inner_optimizer", optimizer).iterations)
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "loss": history.history["loss"],
                      "val_loss": history.history["val_loss"], "epoch": model.epoch,
                      "loss_scale": scale, "applied_steps": applied}))
""")


def _free_hosts(n: int) -> str:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    hosts = ",".join(f"127.0.0.1:{s.getsockname()[1]}" for s in sockets)
    for s in sockets:
        s.close()
    return hosts


def _run_workers(argv_of_worker, timeout: float) -> list[str]:
    """Start one process per argv, wait for all (killing all on a failure or the timeout); stdouts."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    procs = [
        subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for argv in argv_of_worker
    ]
    try:
        outs = [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    for i, (p, (_, err)) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, f"worker {i} failed:\n{err[-3000:]}"
    return [out for out, _ in outs]


def _weights(path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        found = {}
        f.visititems(lambda name, obj: found.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return found


@pytest.fixture(scope="module")
def first_run(tiny_facemask_dir, tmp_path_factory):
    """Three epochs on two workers; worker 1 gets a logs folder of its own, which must stay empty."""
    tmp = tmp_path_factory.mktemp("multiworker")
    logs = [tmp / "logs_chief", tmp / "logs_worker1"]
    hosts = _free_hosts(2)
    outs = _run_workers(
        [
            [sys.executable, "-c", WORKER, str(tiny_facemask_dir), str(logs[i]), str(tmp), hosts, str(i)]
            for i in range(2)
        ],
        timeout=300,
    )
    return tmp, logs, [json.loads(out.strip().splitlines()[-1]) for out in outs]


def test_two_workers_train_one_model_and_only_the_chief_writes(first_run):
    tmp, logs, results = first_run
    assert [r["replicas"] for r in results] == [2, 2] and [r["epoch"] for r in results] == [3, 3]
    chief, worker = _weights(tmp / "worker0.h5"), _weights(tmp / "worker1.h5")
    assert chief.keys() == worker.keys() and len(chief) > 100
    different = [name for name in chief if not np.array_equal(chief[name], worker[name])]
    assert not different, f"the workers' weights differ: {different[:5]}"

    loss = results[0]["loss"]
    assert results[1]["loss"] == loss  # the logs are the all-reduced global means, the same on each worker
    assert all(math.isfinite(v) for v in loss + results[0]["val_loss"])
    # Epoch means of 5 steps on shuffled images are noisy (one epoch can rise at this batch of 1 per
    # worker): the run must get below its first epoch, not fall at every epoch.
    assert min(loss[1:]) < 0.9 * loss[0], f"the loss did not fall over the overfit: {loss}"

    assert not logs[1].exists(), f"worker 1 wrote into {logs[1]}: {list(logs[1].rglob('*'))}"
    (run,) = logs[0].iterdir()
    checkpoints = sorted(p.name for p in run.glob("mask_rcnn_*.h5"))
    assert checkpoints == [f"mask_rcnn_facemask_{e:04d}.h5" for e in (1, 2, 3)]
    assert (run / "best.h5").is_file() and (run / "config.json").is_file()
    assert json.loads((run / "state.json").read_text())["epoch"] == 3


@pytest.mark.parametrize("policy", [True, "mixed_bfloat16"])
def test_two_workers_with_mixed_precision_keep_one_model(tiny_facemask_dir, tmp_path, policy):
    """float16 compute with loss scaling: each worker scales its loss, the strategy all-reduces the scaled
    gradients and both unscale and skip (or apply) the same step, so the weights stay identical. (With
    Keras' own LossScaleOptimizer a worker whose gradients overflowed skipped while the other waited in
    the all-reduce: this test hung.) bfloat16, the CPU profile's "auto" on bfloat16 CPUs, has no scaling."""
    options = json.dumps({"config": {"MIXED_PRECISION": policy, "STEPS_PER_EPOCH": 4}, "epochs": 2})
    hosts = _free_hosts(2)
    outs = _run_workers(
        [
            [
                sys.executable,
                "-c",
                WORKER,
                str(tiny_facemask_dir),
                str(tmp_path / f"logs{i}"),
                str(tmp_path),
                hosts,
                str(i),
                options,
            ]
            for i in range(2)
        ],
        timeout=300,
    )
    results = [json.loads(out.strip().splitlines()[-1]) for out in outs]
    assert [r["replicas"] for r in results] == [2, 2] and [r["epoch"] for r in results] == [2, 2]
    assert results[0]["loss"] == results[1]["loss"] and all(math.isfinite(v) for v in results[0]["loss"])
    # The same steps applied (and skipped) on both, from the same loss scale: float16 scales, bfloat16 not.
    assert results[0]["applied_steps"] == results[1]["applied_steps"] >= 1
    assert results[0]["loss_scale"] == results[1]["loss_scale"]
    assert (results[0]["loss_scale"] is not None) == (policy is True)
    chief, worker = _weights(tmp_path / "worker0.h5"), _weights(tmp_path / "worker1.h5")
    assert chief.keys() == worker.keys() and len(chief) > 100
    assert all(v.dtype == np.float32 for v in chief.values() if v.dtype.kind == "f"), "checkpoints stay float32"
    different = [name for name in chief if not np.array_equal(chief[name], worker[name])]
    assert not different, f"the workers' weights differ: {different[:5]}"


def test_both_workers_resume_from_the_chiefs_checkpoint_with_train_py(first_run, tiny_facemask_dir):
    tmp, logs, _ = first_run
    (run,) = logs[0].iterdir()
    last = run / "mask_rcnn_facemask_0003.h5"
    overrides = tmp / "one_image_per_worker.json"
    overrides.write_text(json.dumps({"IMAGES_PER_GPU": 1, "VALIDATION_STEPS": 1}))
    hosts = _free_hosts(2)
    _run_workers(
        [
            [
                sys.executable,
                "train.py",
                "--worker-hosts",
                hosts,
                "--task-index",
                str(i),
                "--dataset",
                str(tiny_facemask_dir),
                "--logs",
                str(logs[i]),
                "--weights",
                str(last),
                "--profile",
                "tiny",
                "--config",
                str(overrides),
                "--anchors",
                "default",
                "--augment",
                "none",
                "--stages",
                "all:0.02:4",
                "--steps-per-epoch",
                "3",
                "--no-eval",
            ]
            for i in range(2)
        ],
        timeout=300,
    )

    assert not logs[1].exists()
    assert [p.name for p in logs[0].iterdir()] == [run.name]  # the same run folder, continued
    assert (run / "mask_rcnn_facemask_0004.h5").is_file()
    assert json.loads((run / "state.json").read_text())["epoch"] == 4
    epochs = [json.loads(line)["epoch"] for line in (run / "history.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3, 4]
