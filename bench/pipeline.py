"""Benchmark of the training input pipeline (mrcnn.data.pipeline.build_dataset) at 512 px.

Generates the synthetic face-mask dataset into bench/.cache/ if absent, then measures images/s of
``build_dataset`` after a warm-up, with and without the default augmentation, for
``num_parallel_calls`` 1 and AUTOTUNE, plus a single-thread per-stage breakdown of one sample.
Prints a table and writes the "## Input pipeline" section of bench/RESULTS.md (other sections kept).

    python bench/pipeline.py                # defaults: 24 timed batches of 2 images per setting
    python bench/pipeline.py --batches 50 --no-write

``--dataset DIR`` (a VIA dataset with train/, e.g. real photos kept outside the repository) times
the CPU profile's pipeline (256 px, default augmentation, AUTOTUNE) on it instead, with the
resized-input cache off and warm, and writes "## Input pipeline on real photos".
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from results import machine_facts, write_section  # noqa: E402  (bench/results.py)

from mrcnn.config import Config  # noqa: E402
from mrcnn.data import ViaDataset  # noqa: E402
from mrcnn.data.augment import as_augmenter  # noqa: E402
from mrcnn.data.pipeline import build_dataset  # noqa: E402
from mrcnn.ops.anchors import get_anchors  # noqa: E402
from mrcnn.ops.boxes import extract_bboxes  # noqa: E402
from mrcnn.ops.images import mold_image, resize_image_for_config, resize_mask  # noqa: E402
from mrcnn.ops.masks import minimize_mask  # noqa: E402
from mrcnn.ops.rpn_targets import build_rpn_targets  # noqa: E402

CACHE = ROOT / "bench" / ".cache" / "facemask"
RESULTS = ROOT / "bench" / "RESULTS.md"
SECTION = "## Input pipeline"


class BenchConfig(Config):
    NAME = "bench_pipeline"
    NUM_CLASSES = 2
    BACKBONE = "resnet50"
    IMAGE_MIN_DIM = 512
    IMAGE_MAX_DIM = 512
    IMAGES_PER_GPU = 2


def load_data(n_train: int, n_val: int) -> ViaDataset:
    from facemask.synthetic import make_dataset

    t0 = time.perf_counter()
    summary = make_dataset(str(CACHE), n_train=n_train, n_val=n_val, seed=0)
    how = "cached" if summary.get("cached") else f"generated in {time.perf_counter() - t0:.1f} s"
    dataset = ViaDataset()
    dataset.load_via(CACHE / "train" / "via_region_data.json", single_class="mask", verbose=False)
    dataset.prepare()
    print(f"dataset: {CACHE} ({how}), {len(dataset.image_ids)} train images, {summary['masks']} masks in all")
    return dataset


def time_build_dataset(dataset, config, augmentation, num_parallel_calls, batches: int, warmup: int) -> float:
    """images/s over ``batches`` batches after ``warmup`` batches (a warm-up of one epoch or more
    fills the resized-input cache, ``config.INPUT_CACHE_MB``)."""
    ds = build_dataset(dataset, config, augmentation=augmentation, seed=0, num_parallel_calls=num_parallel_calls)
    it = iter(ds)
    for _ in range(warmup):
        next(it)
    t0 = time.perf_counter()
    for _ in range(batches):
        batch = next(it)
    _ = batch["input_image"].shape  # make sure the last batch is materialised
    elapsed = time.perf_counter() - t0
    del it
    return batches * config.BATCH_SIZE / elapsed


def stage_breakdown(dataset, config, samples: int) -> dict[str, float]:
    """Mean ms per image of each stage of training_sample, one thread, default augmentation."""
    augmenter = as_augmenter("default")
    totals: dict[str, float] = {}

    def clock(name, fn, *args, **kwargs):
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        totals[name] = totals.get(name, 0.0) + time.perf_counter() - t
        return out

    ids = dataset.image_ids[:samples]
    for i, image_id in enumerate(ids):
        rng = np.random.default_rng([0, i])
        image = clock("read JPEG", dataset.load_image, int(image_id))
        masks, class_ids = clock("rasterise polygons", dataset.load_mask, int(image_id))
        image, info = clock("resize image", resize_image_for_config, image, config, rng=rng)
        masks = clock("resize masks", resize_mask, masks, info)
        image, masks_nhw = clock("augment", augmenter, image, np.transpose(masks, (2, 0, 1)), seed=i)
        masks = np.transpose(masks_nhw, (1, 2, 0))
        boxes = clock("boxes", extract_bboxes, masks)
        clock("mini-masks", minimize_mask, boxes, masks, config.MINI_MASK_SHAPE)
        anchors = clock("anchors (cached)", get_anchors, config, image.shape)
        clock(
            "RPN targets",
            build_rpn_targets,
            anchors,
            class_ids[: len(boxes)],
            boxes,
            anchors_per_image=config.RPN_TRAIN_ANCHORS_PER_IMAGE,
            bbox_std_dev=config.RPN_BBOX_STD_DEV,
            rng=rng,
        )
        clock("mold", mold_image, image, config)
    return {k: 1000 * v / len(ids) for k, v in totals.items()}


def real_photos(args, facts) -> str:
    """Cache off vs warm on a real VIA dataset, with the CPU profile's config; the section text."""
    import facemask
    from facemask.data import load_dataset

    dataset = load_dataset(args.dataset, "train", "single", verbose=False)
    name = Path(args.dataset).resolve().name
    counts = [dataset.load_mask(i)[0].shape[-1] for i in dataset.image_ids]
    heights = sorted({dataset.image_info[i]["height"] for i in dataset.image_ids})
    widths = sorted({dataset.image_info[i]["width"] for i in dataset.image_ids})
    base = facemask.make_config("cpu", NUM_CLASSES=2)
    epoch = -(-len(dataset.image_ids) // base.BATCH_SIZE)
    rows = []
    for cache_mb in (0, base.INPUT_CACHE_MB):
        config = facemask.make_config("cpu", NUM_CLASSES=2, INPUT_CACHE_MB=cache_mb)
        warmup = args.warmup + (epoch if cache_mb else 0)
        runs = [
            time_build_dataset(dataset, config, "default", tf.data.AUTOTUNE, args.batches, warmup)
            for _ in range(args.repeats)
        ]
        rows.append(
            (f"{cache_mb} MB" + (" (off)" if not cache_mb else ", warm"), float(np.median(runs)), min(runs), max(runs))
        )
        print(f"INPUT_CACHE_MB={cache_mb:5d}: {rows[-1][1]:.1f} images/s (runs {', '.join(f'{r:.1f}' for r in runs)})")
    samples = min(args.breakdown_samples, len(dataset.image_ids))
    stages = stage_breakdown(dataset, base, samples)
    lines = [
        "## Input pipeline on real photos",
        "",
        f"`python bench/pipeline.py --dataset {name}` ({time.strftime('%Y-%m-%d')}): `build_dataset` on the "
        f"{name} train split ({len(dataset.image_ids)} photos, {heights[0]}-{heights[-1]} x {widths[0]}-{widths[-1]} px, "
        f"{np.mean(counts):.0f} instances per image on average), the CPU profile's config "
        f"({base.IMAGE_MAX_DIM} px square, batch {base.BATCH_SIZE}), default augmentation, AUTOTUNE. Each row: median of "
        f"{args.repeats} runs of {args.batches} timed batches after a warm-up ({args.warmup} batches, plus one epoch "
        f"({epoch} batches) with the cache, so it is full); min-max in brackets.",
        "",
        f"Machine: {facts['nproc']} CPU cores available ({facts['cpu']}), TensorFlow {facts['tensorflow']}, numpy "
        f"{facts['numpy']}, albumentations {facts['albumentations']}; load average at start {facts['load']}.",
        "",
        "| INPUT_CACHE_MB | images/s | ms/image |",
        "|---|---:|---:|",
    ]
    lines += [f"| {label} | {ips:.1f} ({lo:.1f}-{hi:.1f}) | {1000 / ips:.1f} |" for label, ips, lo, hi in rows]
    lines += [
        "",
        f"Per-stage cost without the cache, one thread (mean over {samples} "
        "images; the cache skips the first four rows from the second epoch on):",
        "",
        "| stage | ms/image |",
        "|---|---:|",
    ]
    lines += [f"| {stage} | {ms:.2f} |" for stage, ms in stages.items()]
    lines += [f"| **total** | **{sum(stages.values()):.2f}** |"]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40, help="timed batches per repeat")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per setting (median reported)")
    parser.add_argument("--warmup", type=int, default=4, help="untimed batches first")
    parser.add_argument("--n-train", type=int, default=48)
    parser.add_argument("--n-val", type=int, default=8)
    parser.add_argument("--breakdown-samples", type=int, default=16)
    parser.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    parser.add_argument("--dataset", help="a VIA dataset folder (train/ inside): time it with the CPU profile")
    args = parser.parse_args(argv)

    config = BenchConfig().validate()
    facts = machine_facts()
    if args.dataset:
        table = real_photos(args, facts)
        print()
        print(table)
        if not args.no_write:
            write_section("## Input pipeline on real photos", table)
            print(f"\nwrote the '## Input pipeline on real photos' section of {RESULTS}")
        return 0
    dataset = load_data(args.n_train, args.n_val)
    anchors = len(get_anchors(config))

    rows = []
    for augmentation in (None, "default"):
        for npc, npc_name in ((1, "1"), (tf.data.AUTOTUNE, "AUTOTUNE")):
            runs = [
                time_build_dataset(dataset, config, augmentation, npc, args.batches, args.warmup)
                for _ in range(args.repeats)
            ]
            ips = float(np.median(runs))
            rows.append((augmentation or "none", npc_name, ips, min(runs), max(runs)))
            print(
                f"augmentation={augmentation or 'none':8} num_parallel_calls={npc_name:8} {ips:7.1f} images/s "
                f"(runs {', '.join(f'{r:.1f}' for r in runs)})"
            )
    stages = stage_breakdown(dataset, config, args.breakdown_samples)

    lines = [
        SECTION,
        "",
        f"`python bench/pipeline.py` ({time.strftime('%Y-%m-%d')}): `build_dataset` on the synthetic face-mask "
        f"train split ({len(dataset.image_ids)} JPEGs of ~384x512, `facemask.synthetic`, seed 0, "
        "single class), 512x512 square input, resnet50 strides, "
        f"{anchors} anchors, batch {config.BATCH_SIZE}, mini-masks {tuple(config.MINI_MASK_SHAPE)}. "
        f"Each row: median of {args.repeats} runs of {args.warmup} warm-up + {args.batches} timed batches "
        f"({args.batches * config.BATCH_SIZE} images); min-max in brackets.",
        "",
        f"Machine: {facts['nproc']} CPU cores available ({facts['cpu']}), Python {facts['python']}, "
        f"TensorFlow {facts['tensorflow']}, numpy {facts['numpy']}, albumentations {facts['albumentations']}; "
        f"load average at start {facts['load']} (1/5/15 min; other work on the machine slows every row).",
        "",
        "| augmentation | num_parallel_calls | images/s | ms/image |",
        "|---|---|---:|---:|",
    ]
    lines += [f"| {aug} | {npc} | {ips:.1f} ({lo:.1f}-{hi:.1f}) | {1000 / ips:.1f} |" for aug, npc, ips, lo, hi in rows]
    lines += [
        "",
        f"Per-stage cost, one thread, default augmentation (mean over {args.breakdown_samples} images):",
        "",
        "| stage | ms/image |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {ms:.2f} |" for name, ms in stages.items()]
    total = sum(stages.values())
    lines += [
        f"| **total** | **{total:.2f}** |",
        "",
        f"The stage total ({total:.1f} ms, i.e. {1000 / total:.0f} images/s on one thread) is roughly what "
        "the num_parallel_calls=1 rows can reach (tf.data, numpy_function and batching add a little); "
        "AUTOTUNE can gain at most the number of free cores. On a shared machine rows vary by up to ~30% "
        "run to run (see the min-max), so only large differences are meaningful.",
    ]
    table = "\n".join(lines)
    print()
    print(table)
    if not args.no_write:
        write_section(SECTION, table)
        print(f"\nwrote the '{SECTION}' section of {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
