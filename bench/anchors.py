#!/usr/bin/env python
"""Default vs k-means-fitted anchors on the synthetic face-mask set: coverage, then the val mask
mAP@0.5 of the same short CPU training with each.

Writes the "## Anchors" section of bench/RESULTS.md. The two trainings are identical (config,
seed, stages, data order) except for RPN_ANCHOR_SCALES / RPN_ANCHOR_RATIOS.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from results import machine_facts, write_section  # noqa: E402

SECTION = "## Anchors"


def train_and_evaluate(dataset: str, logs: Path, anchors: str, stages: str, steps: int) -> dict:
    cmd = [
        sys.executable,
        "train.py",
        "--dataset",
        dataset,
        "--profile",
        "cpu",
        "--logs",
        str(logs),
        "--anchors",
        anchors,
        "--stages",
        stages,
        "--steps-per-epoch",
        str(steps),
    ]
    started = time.time()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    run = sorted(logs.glob("facemask*"))[-1]
    summary = json.loads((run / "train_summary.json").read_text())
    summary["wall_s"] = time.time() - started
    return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="datasets/facemask")
    p.add_argument("--stages", default="all:0.01:6,all:0.001:8", help="the short training, for both runs")
    p.add_argument("--steps-per-epoch", type=int, default=50)
    p.add_argument("--no-train", action="store_true", help="coverage table only")
    args = p.parse_args(argv)

    from facemask import fit_anchors
    from facemask.synthetic import make_dataset

    make_dataset(str(ROOT / args.dataset), n_train=200, n_val=50, image_size=(256, 320), seed=0)
    cache = ROOT / "bench" / ".cache" / "anchors"
    cache.mkdir(parents=True, exist_ok=True)
    snippet = cache / "fitted.json"
    result = fit_anchors.run(
        [
            "--dataset",
            str(ROOT / args.dataset),
            "--subset",
            "train",
            "--profile",
            "cpu",
            "--out",
            str(snippet),
            "--plot",
            str(cache / "fitted.png"),
            "--quiet",
        ]
    )
    report = result["report"]
    rows = []
    for name in ("default", "fitted"):
        shape, pos = report[name]["shape"], report[name]["positional"]
        scales, ratios = report[name]["scales"], report[name]["ratios"]
        rows.append((name, scales, ratios, shape, pos))

    lines = [
        SECTION,
        "",
        f"Synthetic face-mask train set ({result['n_boxes']} mask boxes), CPU profile (256 px input, "
        "ResNet-18 strides). Coverage: best anchor IoU per GT box, shape only (centre-aligned) and on "
        "the real anchor grid (what the RPN sees).",
        "",
        "| anchors | scales | ratios | mean IoU (shape / grid) | recall@0.5 (shape / grid) | recall@0.7 (shape / grid) |",
        "|---|---|---|---|---|---|",
    ]
    for name, scales, ratios, shape, pos in rows:
        lines.append(
            f"| {name} | {list(scales)} | {list(ratios)} | {shape['mean_iou']:.3f} / {pos['mean_iou']:.3f} | "
            f"{shape['recall@0.5']:.3f} / {pos['recall@0.5']:.3f} | "
            f"{shape['recall@0.7']:.3f} / {pos['recall@0.7']:.3f} |"
        )
    if not args.no_train:
        results = {
            name: train_and_evaluate(args.dataset, cache / f"logs_{name}", anchors, args.stages, args.steps_per_epoch)
            for name, anchors in (("default", "default"), ("fitted", str(snippet)))
        }
        lines += [
            "",
            f"Short training with each (stages `{args.stages}`, {args.steps_per_epoch} steps/epoch, "
            "same seed), best-val-loss checkpoint evaluated on the 50 val images:",
            "",
            "| anchors | val mask mAP@0.5 | val box mAP@0.5 | train + eval wall time |",
            "|---|---|---|---|",
        ]
        for name, r in results.items():
            lines.append(f"| {name} | {r['mask_mAP50']:.3f} | {r['box_mAP50']:.3f} | {r['wall_s'] / 60:.1f} min |")
    facts = machine_facts()
    lines += [
        "",
        f"Machine: {facts['nproc']} cores ({facts['cpu']}), load {facts['load']}, "
        f"TensorFlow {facts.get('tensorflow', '?')}, {time.strftime('%Y-%m-%d')}.",
    ]
    text = "\n".join(lines)
    print(text)
    write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
