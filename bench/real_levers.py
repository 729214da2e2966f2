#!/usr/bin/env python
"""One lever at a time on real photos, several seeds each: ``train.py --dataset DIR`` with its defaults
and with one change (anchors, augmentation, pretraining, ...), beside torchvision built as the issue-30
peer, for the minutes our defaults take. Writes ``## Real photos: levers, seed by seed (DATASET)`` in
bench/RESULTS.md, a section per dataset folder name.

Each run is a child ``train.py`` (its own eval of the last checkpoint gives the figures: mask mAP@0.5
ranked down to score 0.05, Matterport's per-image AP, and COCO segm AP); results go to
``--out/<dataset>/<lever>_s<seed>.json``, so runs add up across calls and ``--levers`` / ``--seeds``
pick what to (re)train. ``--only none`` rewrites the table from what is there::

    python bench/real_levers.py --dataset /work/data/maskedface --levers defaults anchors-default --seeds 0 1 2
    bench/.venv-bench/bin/python bench/real_levers.py --dataset DIR --levers torchvision --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from results import machine_facts, publish  # noqa: E402

SECTION = "## Real photos: levers, seed by seed"  # + " (dataset folder name)"
#: Lever name -> train.py arguments added to ``--dataset DIR --seed S`` (the defaults otherwise).
LEVERS = {
    "defaults": [],
    "anchors-default": ["--anchors", "default"],
    "anchors-margin1": ["--scale-margin", "1"],  # fitted to the training sizes only (the default before)
    "augment-none": ["--augment", "none"],
    "synthetic": ["--weights", "synthetic"],
    "synthetic+lld0.5": ["--weights", "synthetic", "--layer-lr-decay", "0.5"],
}
PEER = "torchvision"  # the issue-30 peer: FrozenBatchNorm as is, 100-step warm-up, batch 1
PEER_WARMUP = 100


def run_ours(dataset: str, lever: str, extra: list[str], seed: int, out: Path) -> dict:
    from accuracy import run_train_child

    logs = out / f"{lever}_s{seed}_logs"
    cmd = [sys.executable, "train.py", "--dataset", dataset, "--seed", str(seed), "--logs", str(logs), *extra]
    log_path = out / f"{lever}_s{seed}.log"
    print(f"{lever} seed {seed}: {' '.join(cmd[1:])}  (log {log_path})", flush=True)
    started = time.time()
    run_dir, summary, report = run_train_child(cmd, logs, log_path, f"{lever} seed {seed}")
    return {
        "train_s": float(summary["train_seconds"]),
        "wall_s": time.time() - started,
        "mask_mAP50": report["mask_mAP50"],
        "coco_segm_AP": report["coco_segm"]["AP"],
        "per_image_mask_AP50": [round(float(x["mask_AP50"]), 3) for x in report.get("per_image", [])],
        "run_dir": str(run_dir),
    }


def run_peer(dataset: str, seed: int, minutes: float, out: Path) -> dict:
    import accuracy

    work = out / f"{PEER}_s{seed}_work"
    work.mkdir(parents=True, exist_ok=True)
    args = SimpleNamespace(dataset=dataset, classes="single", seed=seed, tv_norm="frozen", tv_warmup=PEER_WARMUP)
    print(f"{PEER} seed {seed}: {minutes:.1f} min", flush=True)
    row = accuracy.run_torchvision(args, minutes * 60, work)
    return {"train_s": row["train_s"], "steps": row["steps"], **{k: row[k] for k in ("mask_mAP50", "coco_segm_AP")}}


def collect(out: Path) -> dict[str, dict[int, dict]]:
    rows: dict[str, dict[int, dict]] = {}
    for path in sorted(out.glob("*_s*.json")):
        r = json.loads(path.read_text())
        rows.setdefault(r["lever"], {})[r["seed"]] = r
    return rows


def section_text(dataset: str, rows: dict[str, dict[int, dict]]) -> str:
    facts = machine_facts()
    order = [*LEVERS, PEER]
    lines = [
        f"{SECTION} ({dataset})",
        "",
        f"`python bench/real_levers.py --dataset {dataset} --levers LEVER ... --seeds S ...` "
        "(torchvision rows from bench/.venv-bench). Each row: `train.py --dataset DIR --seed S` plus the lever's "
        "arguments, 2 CPU threads, its own evaluation of the last checkpoint: mask mAP@0.5 ranked down to score "
        "0.05 (Matterport's per-image AP) and COCO segm AP@[.5:.95]. torchvision: the issue-30 peer "
        "(`bench/accuracy.py --tv-norm frozen --tv-warmup 100`: ResNet-18 FPN, random init, FrozenBatchNorm left "
        "as is, batch 1, SGD 0.01, lr/10 for the last quarter, flips) for the mean minutes of our `defaults` rows.",
        "",
        "| lever | train.py arguments | mAP@0.5 per seed | mean | spread (max-min) | COCO segm AP mean | train min |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for lever in sorted(rows, key=lambda k: order.index(k) if k in order else len(order)):
        runs = rows[lever]
        maps = [runs[s]["mask_mAP50"] for s in sorted(runs)]
        per_seed = ", ".join(f"{runs[s]['mask_mAP50']:.3f} (s{s})" for s in sorted(runs))
        args = "peer" if lever == PEER else (" ".join(runs[min(runs)].get("args", [])) or "(defaults)")
        lines.append(
            f"| {lever} | `{args}` | {per_seed} | {statistics.mean(maps):.3f} | {max(maps) - min(maps):.3f} | "
            f"{statistics.mean(r['coco_segm_AP'] for r in runs.values()):.3f} | "
            f"{statistics.mean(r['train_s'] for r in runs.values()) / 60:.1f} |"
        )
    lines += [
        "",
        f"Machine: {facts['nproc']} cores ({facts['cpu']}), load {facts['load']} at the end, TensorFlow "
        f"{facts.get('tensorflow', '?')}, {time.strftime('%Y-%m-%d')}. Shared machine: minutes are wall-clock.",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--levers", nargs="+", default=["defaults"], help=f"of {', '.join([*LEVERS, PEER])}")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--out", default="bench/.cache/levers")
    p.add_argument("--peer-minutes", type=float, help="torchvision's minutes (default: mean of the defaults rows)")
    p.add_argument("--only", choices=("train", "none"), default="train", help="none: rewrite the table only")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    unknown = [x for x in args.levers if x not in LEVERS and x != PEER]
    if unknown:
        print(f"error: unknown lever {unknown[0]!r}; pick from {', '.join([*LEVERS, PEER])}", file=sys.stderr)
        return 2
    dataset = str(Path(args.dataset).resolve())
    out = (ROOT / args.out).resolve() / Path(dataset).name
    out.mkdir(parents=True, exist_ok=True)
    if args.only == "train":
        for lever in args.levers:
            if lever == PEER:  # once, before its first run: defaults rows of this call count too
                defaults = list(collect(out).get("defaults", {}).values())
                if not (args.peer_minutes or defaults):
                    print(
                        f"error: no defaults runs in {out} to time torchvision by; give --peer-minutes", file=sys.stderr
                    )
                    return 2
                minutes = args.peer_minutes or statistics.mean(r["train_s"] / 60 for r in defaults)
            for seed in args.seeds:
                if lever == PEER:
                    row = run_peer(dataset, seed, minutes, out)
                else:
                    row = run_ours(dataset, lever, LEVERS[lever], seed, out)
                row = {"lever": lever, "seed": seed, "args": LEVERS.get(lever, []), **row}
                (out / f"{lever}_s{seed}.json").write_text(json.dumps(row, indent=2))
                print(f"  -> mask mAP@0.5 {row['mask_mAP50']:.3f}, {row['train_s'] / 60:.1f} min", flush=True)
    name = Path(dataset).name
    publish(f"{SECTION} ({name})", section_text(name, collect(out)), write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
