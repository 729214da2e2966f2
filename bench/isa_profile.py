#!/usr/bin/env python
"""Where the CPU profile's train step loses time on an AVX2-only CPU: oneDNN's own timing of every
primitive it runs (``ONEDNN_VERBOSE=profile_exec``), aggregated by primitive and direction, for the
machine's native ISA and for oneDNN capped at AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2``, what an AVX2-only
CPU runs), in one sitting.

Each ISA runs in its own child process (the cap is read when oneDNN starts), ``--reps`` times,
alternating (native, avx2, native, ...) so a change in the machine's load falls on both: the
cpu profile (ResNet-18 FPN-128, 256 px) in float32 (the precision an AVX2 CPU trains in), batch 2,
all layers, batches of the synthetic set prepared before the clock. After ``--warmup`` untimed steps a
child prints a marker, then times ``--steps`` steps; only the primitives after the marker count. The
implementation names oneDNN prints (``brg_conv_fwd:avx2`` against ``:avx512_core``) show that the cap
took effect.

Per row: milliseconds per step (median over the reps of the per-step sum), and the ratio avx2 /
native. oneDNN's times are wall time per primitive; TensorFlow runs two ops at once at most here,
so the rows can add up to more than the step's wall time. "outside oneDNN" is the step's wall time
less the oneDNN sum (clamped at 0): TensorFlow's own kernels (Eigen, ROI ops, NMS, losses), op
scheduling and the Python loop.

    python bench/isa_profile.py                 # writes "## Train-step profile by ISA" in bench/RESULTS.md
    python bench/isa_profile.py --reps 1 --steps 2 --no-write   # a smoke run
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from results import machine_facts, publish  # noqa: E402

SECTION = "## Train-step profile by ISA"
MARKER = "=== isa_profile: timed steps start ==="
RESULT = "isa_profile result: "
ISA_ENV = {"native": {}, "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"}}
DATA_DIR = ROOT / "bench" / ".cache" / "facemask_256"


# ------------------------------------------------------------------------------------------ child
def child(args) -> int:
    """Build the cpu-profile training model, warm up, print MARKER, time ``args.steps`` steps."""
    import tensorflow as tf

    import facemask
    from facemask.synthetic import make_dataset
    from mrcnn.data.pipeline import build_dataset
    from mrcnn.model import MaskRCNN

    tf.config.threading.set_intra_op_parallelism_threads(2)
    make_dataset(DATA_DIR, n_train=16, n_val=4, seed=0, image_size=(256, 320))
    dataset = facemask.load_dataset(str(DATA_DIR), "train", verbose=False)
    config = facemask.make_config("cpu", MIXED_PRECISION=False, IMAGES_PER_GPU=2)
    model = MaskRCNN("training", config, str(ROOT / "bench" / ".cache" / "isa_logs"))
    model.set_trainable("all")
    model.compile(config.LEARNING_RATE, config.LEARNING_MOMENTUM)
    batches = [b for _, b in zip(range(4), build_dataset(dataset, config, shuffle=False, augmentation=None))]
    for k in range(args.warmup):
        model.keras_model.train_on_batch(batches[k % len(batches)])
    print(MARKER, flush=True)
    times = []
    for k in range(args.steps):
        t0 = time.perf_counter()
        model.keras_model.train_on_batch(batches[k % len(batches)])
        times.append(time.perf_counter() - t0)
    print(RESULT + json.dumps({"step_s": times}), flush=True)
    return 0


# ------------------------------------------------------------------------------------------ parsing
def primitive_row(fields: list[str]) -> tuple[str, str, float] | None:
    """(row name, implementation, ms) of one ``onednn_verbose,...,primitive,exec,cpu,...`` line."""
    try:
        at = fields.index("exec")
    except ValueError:
        return None
    if len(fields) < at + 5 or fields[at - 1] != "primitive":
        return None
    kind, impl, prop = fields[at + 2], fields[at + 3], fields[at + 4]
    try:
        ms = float(fields[-1])
    except ValueError:
        return None
    direction = {
        "forward_training": "fwd",
        "forward_inference": "fwd",
        "backward_data": "bwd data",
        "backward_weights": "bwd weights",
        "backward": "bwd",
    }.get(prop, "")
    name = (
        f"{kind} {direction}".strip()
        if kind in ("convolution", "batch_normalization", "pooling", "inner_product", "matmul", "eltwise")
        else kind
    )
    return name, impl, ms


def aggregate(output: str, steps: int) -> tuple[dict[str, float], dict[str, collections.Counter]]:
    """ms per step by row, and the implementations seen per row, from a child's stdout after MARKER."""
    per_row: dict[str, float] = collections.defaultdict(float)
    impls: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    started = False
    for line in output.splitlines():
        if line.startswith(MARKER):
            started = True
            continue
        if not started or not line.startswith("onednn_verbose"):
            continue
        row = primitive_row(line.split(","))
        if row:
            name, impl, ms = row
            per_row[name] += ms / steps
            impls[name][impl] += 1
    return dict(per_row), impls


def run_child(isa: str, args) -> dict:
    env = {
        **os.environ,
        **ISA_ENV[isa],
        "ONEDNN_VERBOSE": "profile_exec",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "OMP_NUM_THREADS": "2",
    }
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode:
        raise SystemExit(f"{isa} child failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    result = next(json.loads(line[len(RESULT) :]) for line in proc.stdout.splitlines() if line.startswith(RESULT))
    header = next((line.split(",isa:", 1)[1] for line in proc.stdout.splitlines() if ",isa:" in line), "?")
    per_row, impls = aggregate(proc.stdout, args.steps)
    return {
        "step_ms": 1000 * statistics.median(result["step_s"]),
        "rows": per_row,
        "isa": header.strip(),
        "impls": {k: dict(v.most_common(3)) for k, v in impls.items()},
    }


# ------------------------------------------------------------------------------------------ report
def render(runs: dict[str, list[dict]], args, load_start, load_end) -> str:
    def median_row(isa, name):
        return statistics.median(r["rows"].get(name, 0.0) for r in runs[isa])

    names = sorted({n for rs in runs.values() for r in rs for n in r["rows"]}, key=lambda n: -median_row("native", n))
    step = {isa: statistics.median(r["step_ms"] for r in rs) for isa, rs in runs.items()}
    spread = {isa: (min(r["step_ms"] for r in rs), max(r["step_ms"] for r in rs)) for isa, rs in runs.items()}
    total = {isa: sum(median_row(isa, n) for n in names) for isa in runs}
    lines = [
        SECTION,
        "",
        f"`python bench/isa_profile.py --reps {args.reps} --steps {args.steps}` "
        f"({time.strftime('%Y-%m-%d')}): the cpu profile's train step (ResNet-18 FPN-128, 256 px, float32, "
        "batch 2, all layers), oneDNN's `profile_exec` times by primitive, native ISA against oneDNN capped "
        "at AVX2, alternating children; ms per step, median over the reps.",
        "",
        "| row | native ms | avx2 ms | avx2 / native |",
        "|---|---|---|---|",
    ]

    def cells(a, b):
        return f"{a:.1f} | {b:.1f} | {b / a:.2f}x" if a > 0 else f"{a:.1f} | {b:.1f} | -"

    for n in names:
        a, b = median_row("native", n), median_row("avx2", n)
        if max(a, b) >= 1.0:
            lines.append(f"| {n} | {cells(a, b)} |")
    lines.append(f"| **oneDNN total** | {cells(total['native'], total['avx2'])} |")
    outside = {isa: max(0.0, step[isa] - total[isa]) for isa in runs}
    lines.append(
        f"| outside oneDNN (step wall - oneDNN sum, at least 0) | {cells(outside['native'], outside['avx2'])} |"
    )
    lines.append(
        f"| **step wall** (min-max over reps) | {step['native']:.0f} ({spread['native'][0]:.0f}-"
        f"{spread['native'][1]:.0f}) | {step['avx2']:.0f} ({spread['avx2'][0]:.0f}-{spread['avx2'][1]:.0f}) "
        f"| {step['avx2'] / step['native']:.2f}x |"
    )
    conv = {isa: runs[isa][0]["impls"].get("convolution fwd", {}) for isa in runs}
    facts = machine_facts()
    lines += [
        "",
        f"oneDNN reported ISA: native `{runs['native'][0]['isa']}`, capped `{runs['avx2'][0]['isa']}`; "
        f"forward convolution implementations: native {sorted(conv['native'])}, capped {sorted(conv['avx2'])}.",
        f"Machine: {facts['nproc']} cores ({facts['cpu']}; {facts.get('isa', '?')}), load {load_start} at the "
        f"start and {load_end} at the end, TensorFlow {facts.get('tensorflow', '?')}.",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=3, help="children per ISA, alternating (default 3)")
    p.add_argument("--steps", type=int, default=5, help="timed steps per child (default 5)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3; the first traces)")
    p.add_argument("--no-write", action="store_true", help="print the table, leave bench/RESULTS.md alone")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)
    load_start = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    runs: dict[str, list[dict]] = {isa: [] for isa in ISA_ENV}
    for rep in range(args.reps):
        for isa in ISA_ENV:
            r = run_child(isa, args)
            runs[isa].append(r)
            print(
                f"rep {rep + 1}/{args.reps} {isa}: step {r['step_ms']:.0f} ms, oneDNN {sum(r['rows'].values()):.0f} "
                f"ms/step, isa {r['isa']}",
                flush=True,
            )
    load_end = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    publish(SECTION, render(runs, args, load_start, load_end), write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
