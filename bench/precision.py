#!/usr/bin/env python
"""The CPU profile's train step and detect() in float32 vs bfloat16 (``MIXED_PRECISION`` False vs
"mixed_bfloat16"), interleaved in one process: what the profile's ``MIXED_PRECISION = "auto"`` buys on a
CPU with bfloat16 instructions (and costs on one without: there bfloat16 is emulated).

Writes the "## CPU profile: float32 vs bfloat16" section of bench/RESULTS.md. Both models start from the
same random weights; only the compute dtype differs. ``--reps`` timed calls each after 2 untimed ones.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from results import machine_facts, write_section  # noqa: E402

SECTION = "## CPU profile: float32 vs bfloat16"
POLICIES = {"float32": False, "bfloat16": "mixed_bfloat16"}
DATA_DIR = ROOT / "bench" / ".cache" / "facemask_cpu_profile"


def build(policy, dataset, mode: str):
    """A MaskRCNN of the CPU profile under ``policy``; training ones compiled as train.py does."""
    import facemask
    from mrcnn.model import MaskRCNN

    config = facemask.make_config("cpu", inference=mode == "inference", MIXED_PRECISION=policy)
    model = MaskRCNN(mode, config, tempfile.mkdtemp(prefix="bench_precision_"))
    if mode == "training":
        model.set_trainable("all")
        model.compile(config.LEARNING_RATE, config.LEARNING_MOMENTUM)
    return model


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleave(calls: dict, reps: int, warmup: int = 2) -> dict[str, list[float]]:
    for _ in range(warmup):
        for call in calls.values():
            call(0)
    times = {name: [] for name in calls}
    for k in range(reps):
        for name, call in calls.items():
            times[name].append(timed(lambda call=call, k=k: call(warmup + k)))
    return times


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)

    import facemask
    from facemask.synthetic import make_dataset
    from mrcnn.data.pipeline import build_dataset
    from mrcnn.model.precision import cpu_flags, policy_name

    load_start = machine_facts()["load"]
    make_dataset(str(DATA_DIR), n_train=16, n_val=4, seed=0)
    dataset = facemask.load_dataset(str(DATA_DIR), "train", verbose=False)

    trainers = {name: build(policy, dataset, "training") for name, policy in POLICIES.items()}
    weights = trainers["float32"].keras_model.get_weights()
    trainers["bfloat16"].keras_model.set_weights(weights)
    batches = [
        b
        for _, b in zip(range(8), build_dataset(dataset, trainers["float32"].config, shuffle=False, augmentation=None))
    ]
    train = interleave(
        {
            name: (lambda k, m=m: m.keras_model.train_on_batch(batches[k % len(batches)]))
            for name, m in trainers.items()
        },
        args.reps,
    )
    trainers.clear()

    images = [dataset.load_image(i) for i in dataset.image_ids]
    detectors = {name: build(policy, dataset, "inference") for name, policy in POLICIES.items()}
    # Random weights score few ROIs above DETECTION_MIN_CONFIDENCE, and the mask head and the pasting
    # run on detections only: bias the logits to foreground so every image returns the maximum, as a
    # trained model on a crowded photo would. Both detectors get the same weights.
    logits = detectors["float32"].keras_model.get_layer("mrcnn_class_logits")
    kernel, bias = logits.get_weights()
    bias[1:] += 20.0
    logits.set_weights([kernel, bias])
    detectors["bfloat16"].keras_model.set_weights(detectors["float32"].keras_model.get_weights())
    infer = interleave(
        {name: (lambda k, m=m: m.detect([images[k % len(images)]])) for name, m in detectors.items()}, args.reps
    )
    found = {name: len(m.detect([images[0]])[0]["scores"]) for name, m in detectors.items()}

    facts = machine_facts()
    flags = cpu_flags()
    bf16 = ", ".join(f for f in ("avx512_bf16", "amx_bf16") if f in flags) or "none"
    med = {
        (phase, name): statistics.median(t)
        for phase, times in (("train step", train), ("detect", infer))
        for name, t in times.items()
    }
    lines = [
        SECTION,
        "",
        f"`bench/.venv-bench/bin/python bench/precision.py --reps {args.reps}` ({_dt.date.today()}): the CPU "
        "profile (ResNet-18 FPN, 256 px, batch 2 for training, 1 image per detect()) built twice, with "
        '`MIXED_PRECISION=False` and `"mixed_bfloat16"`, timed interleaved after 2 untimed calls each; '
        "medians, min-max in brackets. The train step is `train_on_batch` on batches pulled before timing "
        "(random init, all layers trained); detect() includes molding and mask pasting, "
        f"{found['float32']} / {found['bfloat16']} detections per image (float32 / bfloat16).",
        "",
        f"Machine: {facts['nproc']} CPU cores ({facts['cpu']}), bfloat16 instructions: {bf16}; TensorFlow "
        f"{facts.get('tensorflow', '?')}, Keras {facts.get('keras', '?')}; load average (1/5/15 min) "
        f'{load_start} at start, {facts["load"]} at end. `MIXED_PRECISION="auto"` here means '
        f"`{policy_name('auto')}`.",
        "",
        "| call | float32 s | bfloat16 s | bfloat16 / float32 |",
        "|---|---:|---:|---:|",
    ]
    for phase, times in (("train step", train), ("detect", infer)):
        cells = [f"{med[phase, n]:.3f} ({min(times[n]):.3f}-{max(times[n]):.3f})" for n in POLICIES]
        lines.append(
            f"| {phase} | " + " | ".join(cells) + f" | **{med[phase, 'bfloat16'] / med[phase, 'float32']:.2f}** |"
        )
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    if not args.no_write:
        write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
