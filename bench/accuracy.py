#!/usr/bin/env python
"""Accuracy per CPU-minute: our CPU profile vs torchvision's Mask R-CNN built the same way, both from
scratch, same wall-clock minutes, on one VIA dataset folder (``DIR/train``, ``DIR/val``).

* ours: ``train.py --profile cpu --weights none`` with stages and steps per epoch sized to the budget
  (from ``--ours-step-s``, the seconds one batch-2 step takes), in a child process; its own evaluation
  (``eval_val/report.json`` of the last checkpoint) gives the figures.
* torchvision: ``torchvision.models.detection.MaskRCNN`` shaped like our CPU profile (see SETTINGS),
  trained for the same minutes (ours' measured training time when both run, else ``--minutes``) in a
  child process that never imports TensorFlow (torch and TensorFlow in one process segfaulted); it saves
  its val detections (masks pasted at full size, > 0.5) and this process scores them with OUR metric code
  (``mrcnn.evaluation.evaluate_model`` replaying them through a ``detect()`` adapter).

Both read the VIA json through ``facemask.load_dataset`` (the same masks, the same val images).
Writes ``## Accuracy vs torchvision (from scratch, same CPU minutes)`` in bench/RESULTS.md with a row
per dataset and method found under ``--out`` (so ``--only ours`` and ``--only torchvision`` runs add up;
``--only none`` rewrites the section from them without training).

Needs torch + torchvision (bench/requirements.txt) for ``--only torchvision|both``::

    /work/venv-bench/bin/python bench/accuracy.py --dataset /work/data/droplets --minutes 15
    python bench/accuracy.py --dataset DIR --minutes 0.5 --only ours --no-write   # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from results import machine_facts, write_section  # noqa: E402

SECTION = "## Accuracy vs torchvision (from scratch, same CPU minutes)"
METHODS = ("ours", "ours+synthetic", "torchvision")  # the table's order; a variant sorts after its base
THREADS = 2
REFERENCE_CONFIDENCE = 0.7  # our CPU profile's DETECTION_MIN_CONFIDENCE: the second figure
# torchvision recipe (the issue-18 peer): SGD, linear warm-up, lr/10 for the last quarter of the budget.
TV_LR, TV_MOMENTUM, TV_WEIGHT_DECAY, TV_WARMUP_ITERS, TV_STEP_AT = 0.01, 0.9, 1e-4, 200, 0.75
#: Gradient-norm clip, as ours (Config.GRADIENT_CLIP_NORM): with trainable BatchNorm from scratch the
#: unclipped peer diverged on the droplets photos after its warm-up (every loss NaN from step ~294).
TV_CLIP_NORM = 5.0

SETTINGS = """\
- ours: `train.py --profile cpu --weights none --classes {classes} --seed {seed}` (ResNet-18 FPN-128, 256 px \
square, batch 2, its default augmentation and anchors: `auto` from scratch), stages `all:LR:E1,all:LR/10:E` \
with E1 = 3/4 of the epochs (the second stage runs on from the weights the first ended with, as the defaults do), \
sized to the budget from `--ours-step-s`; minutes are its measured training time (validation included, \
model build and anchor fit excluded). Figures from its `eval_val/report.json` (last checkpoint).
- ours+synthetic (`--ours-weights synthetic`): the same, fine-tuned from `--weights synthetic` (the cpu profile \
pretrained on the generated face-mask set, built once and cached; its minutes are not counted), default anchors, \
the first fifth of the first stage's epochs on the heads; `+lldD`: `--layer-lr-decay D`.
- torchvision {tv_version}: `MaskRCNN(resnet_fpn_backbone("resnet18", weights=None, trainable_layers=5, \
norm_layer=torch.nn.BatchNorm2d))` (FPN 256 channels; BatchNorm trained, batch statistics, as ours), min_size = max_size = 256, anchors \
{anchors} x (0.5, 1, 2), 128 RPN anchors and 64 ROIs sampled per image, 300 post-NMS proposals in training and \
200 at inference, TwoMLPHead 256 wide, mask head `MaskRCNNHeads(256, (128,)*4, 1)` + \
`MaskRCNNPredictor(128, 128, K)`, random init, batch 1, SGD lr {lr} momentum {momentum} wd {wd}, gradient norm clipped at 5 (as ours), linear \
warm-up over {warmup} iterations, lr/10 for the last quarter of the minutes, horizontal flips (p 0.5), \
box_score_thresh 0.05, up to 100 detections; {threads} threads. Images and masks are decoded and resized \
to 256 px once, in memory, before the clock starts.
- Both: mask mAP@0.5 = Matterport's per-image AP over the val images with ground truth, detections ranked \
down to score 0.05 (`mrcnn.metrics.Evaluator`); "at 0.7" keeps only detections scoring >= 0.7; COCO segm AP \
is pycocotools' AP@[.5:.95]. Masks pasted at full image size, binarised > 0.5."""


# ------------------------------------------------------------------------------------- shared data
def load_splits(dataset_dir: str, classes: str):
    """The prepared train and val ``FaceMaskDataset`` both methods read (our VIA reader). Val takes
    train's class list, as train.py does, so ``--classes auto`` numbers the classes alike in both."""
    import facemask

    train = facemask.load_dataset(dataset_dir, "train", classes, verbose=False)
    spec = train.class_spec(facemask.ClassSpec.parse(classes))
    return train, facemask.load_dataset(dataset_dir, "val", spec, verbose=False)


def dataset_label(dataset_dir: str) -> str:
    """Folder name plus the title line of its SOURCE.md, when it has one."""
    name = Path(dataset_dir).resolve().name
    source = Path(dataset_dir) / "SOURCE.md"
    if source.is_file():
        title = source.read_text(encoding="utf-8").splitlines()[0].lstrip("# ").strip()
        return f"{name} ({title.split(':', 1)[-1].strip()})" if title else name
    return name


def describe_split(dataset) -> str:
    instances = sum(len(dataset.instance_class_ids(i) or ()) for i in dataset.image_ids)
    return f"{len(dataset.image_ids)} images, {instances} instances"


# --------------------------------------------------------------------------------------------- ours
def run_train_child(cmd: list[str], logs: Path, log_path: Path, name: str) -> tuple[Path, dict, dict]:
    """Run a ``train.py`` command line in a child process, its output into ``log_path``; the newest run
    under ``logs``: (its folder, ``train_summary.json``, the ``eval_val/report.json`` of its last checkpoint).
    A failed child stops the bench with the last lines of its log."""
    with open(log_path, "w", encoding="utf-8") as log:
        done = subprocess.run(
            cmd,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "CI": "1", "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
    if done.returncode:
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
        raise SystemExit(
            f"{name}: train.py failed (exit {done.returncode}); last lines of {log_path}:\n" + "\n".join(tail)
        )
    run_dir = max(logs.glob("*/train_summary.json"), key=os.path.getmtime).parent
    summary = json.loads((run_dir / "train_summary.json").read_text())
    report = json.loads((Path(summary["checkpoint"]).parent / "eval_val" / "report.json").read_text())
    return run_dir, summary, report


def ours_stages(budget_s: float, step_s: float, lr: float, synthetic: bool = False) -> tuple[str, int]:
    """``(--stages text, --steps-per-epoch)`` for about ``budget_s / step_s`` steps: at most 50 steps an
    epoch, at least 2 epochs; lr for the first 3/4 of the epochs, lr/10 after. ``synthetic`` (fine-tuning
    the synthetic-pretrained model, as train.py's default for it): the first fifth of the epochs on the
    heads only, at lr."""
    total = max(2, round(budget_s / step_s))
    steps_per_epoch = min(50, max(1, total // 2))
    epochs = max(2, round(total / steps_per_epoch))
    first = min(epochs - 1, max(1, round(0.75 * epochs)))
    stages = f"all:{lr:g}:{first},all:{lr / 10:g}:{epochs}"
    if synthetic and first >= 2:
        stages = f"heads:{lr:g}:{max(1, first // 5)}," + stages
    return stages, steps_per_epoch


def ours_method(args) -> str:
    """The method's name in the table (and its result file): ours, ours+synthetic, ours+lld0.5, ..."""
    name = "ours" + ("+synthetic" if args.ours_weights == "synthetic" else "")
    return name + (f"+lld{args.ours_layer_lr_decay:g}" if args.ours_layer_lr_decay else "")


def run_ours(args, out: Path) -> dict:
    """Train and evaluate with train.py in a child process; the figures of its eval report."""
    from facemask import make_config

    lr = float(make_config("cpu").LEARNING_RATE)
    method = ours_method(args)
    stages, steps_per_epoch = ours_stages(args.minutes * 60, args.ours_step_s, lr, args.ours_weights == "synthetic")
    logs = out / f"{method}_logs_{time.strftime('%Y%m%d_%H%M%S')}"
    cmd = [
        sys.executable,
        "train.py",
        "--dataset",
        args.dataset,
        "--profile",
        "cpu",
        "--weights",
        args.ours_weights,
        "--classes",
        args.classes,
        "--seed",
        str(args.seed),
        "--logs",
        str(logs),
        "--stages",
        stages,
        "--steps-per-epoch",
        str(steps_per_epoch),
    ]
    if args.ours_weights == "none":
        cmd += ["--anchors", "auto"]  # train.py's from-scratch default, said explicitly
    if args.ours_layer_lr_decay:
        cmd += ["--layer-lr-decay", str(args.ours_layer_lr_decay)]
    if args.config:
        cmd += ["--config", args.config]
    log_path = out / f"{method}_train.log"
    print(f"ours: {' '.join(cmd)}\n      (log: {log_path})", flush=True)
    run_dir, summary, report = run_train_child(cmd, logs, log_path, "ours")
    config = json.loads((run_dir / "config.json").read_text())
    epochs = summary["stages"][-1][2]
    return {
        "method": method,
        "steps": epochs * int(config.get("STEPS_PER_EPOCH", steps_per_epoch)),
        "batch": int(config.get("IMAGES_PER_GPU", 2)),
        "train_s": float(summary["train_seconds"]),
        "mask_mAP50": report["mask_mAP50"],
        "mask_mAP50_at_0.7": report.get("mask_mAP50_at_min_confidence"),
        "reference_confidence": report.get("reference_min_confidence"),
        "coco_segm_AP": report["coco_segm"]["AP"],
        "stages": stages,
        "run_dir": str(run_dir),
    }


# -------------------------------------------------------------------------------------- torchvision
def build_torchvision_model(num_classes: int, anchor_scales, norm: str = "bn"):
    """torchvision Mask R-CNN shaped like our CPU profile (random init; see SETTINGS). ``norm``: ``bn``
    (trainable BatchNorm, batch statistics) or ``frozen`` (torchvision's default FrozenBatchNorm2d, which
    at random init is an identity: no normalisation; how the issue-30 peer was built)."""
    import torch
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.ops import FrozenBatchNorm2d

    # "bn" trains BatchNorm as ours from scratch does (TRAIN_BN=None); resnet_fpn_backbone's default
    # FrozenBatchNorm2d ("frozen") is an identity at random init, i.e. no normalisation at all.
    norm_layer = {"bn": torch.nn.BatchNorm2d, "frozen": FrozenBatchNorm2d}[norm]
    backbone = resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=5, norm_layer=norm_layer)
    channels = backbone.out_channels  # 256
    anchors = AnchorGenerator(
        sizes=tuple((int(s),) for s in anchor_scales), aspect_ratios=((0.5, 1.0, 2.0),) * len(anchor_scales)
    )
    return MaskRCNN(
        backbone,
        num_classes=None,
        min_size=256,
        max_size=256,
        rpn_anchor_generator=anchors,
        rpn_batch_size_per_image=128,
        rpn_post_nms_top_n_train=300,
        rpn_post_nms_top_n_test=200,
        box_batch_size_per_image=64,
        box_score_thresh=0.05,
        box_detections_per_img=100,
        box_head=TwoMLPHead(channels * 7 * 7, 256),
        box_predictor=FastRCNNPredictor(256, num_classes),
        mask_head=MaskRCNNHeads(channels, (128,) * 4, 1),
        mask_predictor=MaskRCNNPredictor(128, 128, num_classes),
    )


def torch_samples(dataset, max_side: int = 256) -> list:
    """``[(image [3, h, w] float 0..1, {"boxes" [N, 4] x1y1x2y2, "labels" [N], "masks" [N, h, w] uint8})]``
    for every image, resized so the long side is ``max_side`` (torchvision's own resize is then a no-op)."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torchvision.ops import masks_to_boxes

    samples = []
    for image_id in dataset.image_ids:
        image = torch.from_numpy(np.ascontiguousarray(dataset.load_image(image_id))).permute(2, 0, 1).float() / 255
        masks, class_ids = dataset.load_mask(image_id)
        h, w = image.shape[1:]
        size = (max(1, round(h * max_side / max(h, w))), max(1, round(w * max_side / max(h, w))))
        image = F.interpolate(image[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
        masks = torch.from_numpy(np.ascontiguousarray(masks.transpose(2, 0, 1))).float()
        masks = (
            (F.interpolate(masks[None], size=size, mode="bilinear", align_corners=False)[0] > 0.5)
            if len(masks)
            else torch.zeros((0, *size))
        )
        keep = masks.flatten(1).any(1)  # instances too small to survive the resize are dropped
        masks = masks[keep]
        boxes = masks_to_boxes(masks) + torch.tensor([0.0, 0.0, 1.0, 1.0])  # x1 y1 x2 y2, exclusive ends
        target = {
            "boxes": boxes.reshape(-1, 4),
            "masks": masks.to(torch.uint8),
            "labels": torch.as_tensor(np.asarray(class_ids), dtype=torch.int64)[keep],
        }
        samples.append((image.contiguous(), target))
    return samples


def hflip(image, target):
    """Mirror an image [3, h, w] and its target left-right."""
    w = image.shape[-1]
    boxes = target["boxes"].clone()
    boxes[:, [0, 2]] = w - target["boxes"][:, [2, 0]]
    return image.flip(-1), {**target, "boxes": boxes, "masks": target["masks"].flip(-1)}


def tv_learning_rate(step: int, elapsed_s: float, budget_s: float, warmup_iters: int = TV_WARMUP_ITERS) -> float:
    """Linear warm-up from lr/1000 over ``warmup_iters`` steps; lr/10 once 3/4 of the budget is spent."""
    warmup = min(1.0, 0.001 + (1 - 0.001) * step / warmup_iters)
    return TV_LR * warmup * (0.1 if elapsed_s >= TV_STEP_AT * budget_s else 1.0)


def train_torchvision(
    model, samples, budget_s: float, seed: int, warmup_iters: int = TV_WARMUP_ITERS, log_every: int = 100
) -> dict:
    """SGD at batch 1 over shuffled ``samples`` with random flips until ``budget_s`` seconds have passed."""
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=TV_LR, momentum=TV_MOMENTUM, weight_decay=TV_WEIGHT_DECAY)
    model.train()
    steps = skipped = 0
    started = time.perf_counter()
    while True:
        for index in rng.permutation(len(samples)):
            elapsed = time.perf_counter() - started
            if elapsed >= budget_s:
                return {"steps": steps, "skipped_nonfinite": skipped, "train_s": elapsed}
            for group in optimizer.param_groups:
                group["lr"] = tv_learning_rate(steps, elapsed, budget_s, warmup_iters)
            image, target = samples[index]
            if rng.random() < 0.5:
                image, target = hflip(image, target)
            losses = model([image], [target])
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                skipped += 1
                continue
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, TV_CLIP_NORM)  # as ours (GRADIENT_CLIP_NORM)
            optimizer.step()
            steps += 1
            if steps % log_every == 0:
                parts = " ".join(f"{k.replace('loss_', '')} {v.item():.3f}" for k, v in losses.items())
                print(
                    f"  torchvision step {steps} ({elapsed / 60:.1f} min) loss {loss.item():.3f} [{parts}]", flush=True
                )


def predict_torchvision(model, dataset) -> list[dict]:
    """Val detections in ``dataset.image_ids`` order, Matterport's ``detect()`` format: ``rois`` [N, 4]
    y1x1y2x2, ``class_ids``, ``scores``, ``masks`` [H, W, N] bool at the original image size."""
    import numpy as np
    import torch

    model.eval()
    predictions = []
    with torch.no_grad():
        for image_id in dataset.image_ids:
            image = np.ascontiguousarray(dataset.load_image(image_id))
            out = model([torch.from_numpy(image).permute(2, 0, 1).float() / 255])[0]
            predictions.append(
                {
                    "rois": out["boxes"].numpy()[:, [1, 0, 3, 2]],
                    "class_ids": out["labels"].numpy(),
                    "scores": out["scores"].numpy(),
                    "masks": (out["masks"][:, 0] > 0.5).permute(1, 2, 0).numpy(),
                }
            )
    return predictions


def save_predictions(path: Path, predictions: list[dict]) -> None:
    """One compressed npz; masks bit-packed (they are full-size and mostly empty)."""
    import numpy as np

    arrays = {}
    for i, p in enumerate(predictions):
        arrays.update(
            {
                f"{i}_rois": p["rois"],
                f"{i}_class_ids": p["class_ids"],
                f"{i}_scores": p["scores"],
                f"{i}_shape": np.asarray(p["masks"].shape),
                f"{i}_masks": np.packbits(p["masks"]),
            }
        )
    np.savez_compressed(path, count=len(predictions), **arrays)


def load_predictions(path: Path) -> list[dict]:
    import numpy as np

    with np.load(path) as z:
        return [
            {
                "rois": z[f"{i}_rois"],
                "class_ids": z[f"{i}_class_ids"],
                "scores": z[f"{i}_scores"],
                "masks": np.unpackbits(z[f"{i}_masks"], count=int(np.prod(z[f"{i}_shape"])))
                .reshape(z[f"{i}_shape"])
                .astype(bool),
            }
            for i in range(int(z["count"]))
        ]


class ReplayDetector:
    """``detect()`` that hands back saved detections in order, for :func:`mrcnn.evaluation.evaluate_model`."""

    def __init__(self, predictions: list[dict]):
        self.predictions = list(predictions)
        self.config = SimpleNamespace(BATCH_SIZE=1)

    def detect(self, images) -> list[dict]:
        results = [self.predictions.pop(0) for _ in images]
        for image, r in zip(images, results):
            if r["masks"].shape[:2] != image.shape[:2]:
                raise ValueError(
                    f"saved detections are {r['masks'].shape[:2]}, the image {image.shape[:2]}: "
                    "the val folder changed since the torchvision run"
                )
        return results


def torchvision_worker(args) -> int:
    """The child process: train, predict on val, save ``torchvision_train.json`` + predictions. No TensorFlow."""
    import torch
    import torchvision

    from facemask import make_config

    torch.set_num_threads(THREADS)
    torch.manual_seed(args.seed)
    out = Path(args.worker_out)
    train_set, val_set = load_splits(args.dataset, args.classes)
    samples = torch_samples(train_set)
    anchor_scales = make_config("cpu").RPN_ANCHOR_SCALES
    model = build_torchvision_model(len(train_set.class_names), anchor_scales, args.tv_norm)
    print(
        f"torchvision {torchvision.__version__}: training {args.budget_s / 60:.2f} min on {len(samples)} images",
        flush=True,
    )
    trained = train_torchvision(model, samples, args.budget_s, args.seed, args.tv_warmup)
    started = time.perf_counter()
    save_predictions(out / "torchvision_val.npz", predict_torchvision(model, val_set))
    (out / "torchvision_train.json").write_text(
        json.dumps(
            {
                **trained,
                "predict_s": time.perf_counter() - started,
                "anchor_scales": list(anchor_scales),
                "norm": args.tv_norm,
                "warmup_iters": args.tv_warmup,
                "torchvision": torchvision.__version__,
                "torch": torch.__version__,
                "class_names": train_set.class_names,
            }
        )
    )
    if "tensorflow" in sys.modules:
        print("warning: TensorFlow got imported in the torchvision worker", file=sys.stderr)
    return 0


def run_torchvision(args, budget_s: float, out: Path) -> dict:
    """Train + predict in a child process, then score its val detections here with our metric code."""
    from mrcnn.evaluation import evaluate_model

    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--dataset",
        args.dataset,
        "--classes",
        args.classes,
        "--seed",
        str(args.seed),
        "--tv-norm",
        args.tv_norm,
        "--tv-warmup",
        str(args.tv_warmup),
        "--torchvision-worker",
        str(out),
        "--budget-s",
        str(budget_s),
    ]
    done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": str(THREADS)})
    if done.returncode:
        raise SystemExit(f"torchvision: the training child failed (exit {done.returncode}): {' '.join(cmd)}")
    trained = json.loads((out / "torchvision_train.json").read_text())
    _, val_set = load_splits(args.dataset, args.classes)
    evaluator, _ = evaluate_model(
        ReplayDetector(load_predictions(out / "torchvision_val.npz")),
        val_set,
        progress=False,
        keep_examples=0,
        class_names=trained["class_names"],
        reference_confidence=REFERENCE_CONFIDENCE,
        reference_max=100,
    )
    summary = evaluator.summary()
    return {
        "method": "torchvision" + ("+frozenbn" if args.tv_norm == "frozen" else ""),
        "steps": trained["steps"],
        "batch": 1,
        "train_s": trained["train_s"],
        "skipped_nonfinite": trained["skipped_nonfinite"],
        "mask_mAP50": summary["mask_mAP50"],
        "mask_mAP50_at_0.7": summary["mask_mAP50_at_min_confidence"],
        "reference_confidence": REFERENCE_CONFIDENCE,
        "coco_segm_AP": summary["coco_segm"]["AP"],
        "anchor_scales": trained["anchor_scales"],
        "torchvision": trained["torchvision"],
        "torch": trained["torch"],
    }


# ------------------------------------------------------------------------------------------ report
def fmt(value, spec: str = ".3f") -> str:
    return "n/a" if value is None or value != value else format(value, spec)


def table(rows: list[dict]) -> list[str]:
    lines = [
        "| dataset | method | steps x batch | non-finite losses skipped | train minutes | mask mAP@0.5 (ranked) "
        "| at 0.7 | COCO segm AP |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        skipped = r.get("skipped_nonfinite")
        lines.append(
            f"| {r['dataset']} | {r['method']} | {r['steps']} x {r['batch']} | "
            f"{'-' if skipped is None else skipped} | {r['train_s'] / 60:.1f} | "
            f"{fmt(r['mask_mAP50'])} | {fmt(r['mask_mAP50_at_0.7'])} | {fmt(r['coco_segm_AP'])} |"
        )
    return lines


def collect(out_root: Path) -> list[dict]:
    """Every saved result under ``out_root`` (``<dataset>/<method>.json``), datasets sorted, ours first."""
    rows = [
        json.loads(p.read_text()) for p in out_root.glob("*/*.json") if p.stem.split("+")[0] in ("ours", "torchvision")
    ]

    def order(row):
        base = row["method"].split("+lld")[0]
        return row["dataset"], METHODS.index(base) if base in METHODS else len(METHODS), row["method"]

    return sorted(rows, key=order)


def section_text(rows: list[dict], args) -> str:
    facts = machine_facts()
    tv = next((r.get("torchvision") for r in rows if r.get("torchvision")), facts.get("torchvision", "?"))
    torch_version = next((r.get("torch") for r in rows if r.get("torch")), facts.get("torch", "?"))
    anchors = next((r.get("anchor_scales") for r in rows if r.get("anchor_scales")), "our CPU defaults")
    lines = [
        SECTION,
        "",
        "Both from random init on 2 CPU threads, for the same wall-clock training minutes, evaluated on the "
        "same val images by our metric code (`python bench/accuracy.py --dataset DIR --minutes M`).",
        "",
    ]
    lines += table(rows)
    labels = sorted({(r["dataset"], r.get("dataset_label", r["dataset"]), r.get("split", "")) for r in rows})
    lines += ["", "Datasets (real photos, not in the repository; see each folder's SOURCE.md):", ""]
    lines += [f"- {label}: {split}" for _, label, split in labels]
    lines += [
        "",
        "Settings:",
        "",
        SETTINGS.format(
            classes=args.classes,
            seed=args.seed,
            tv_version=tv,
            anchors=tuple(anchors) if anchors else "?",
            lr=TV_LR,
            momentum=TV_MOMENTUM,
            wd=TV_WEIGHT_DECAY,
            warmup=TV_WARMUP_ITERS,
            threads=THREADS,
        ),
    ]
    lines += [
        "",
        f"Machine: {facts['nproc']} cores ({facts['cpu']}), load {facts['load']}, TensorFlow "
        f"{facts.get('tensorflow', '?')}, torch {torch_version}, {time.strftime('%Y-%m-%d')}. "
        "The machine is shared: minutes are wall-clock, so a loaded machine gives both fewer steps.",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True, help="folder with train/ and val/ (VIA json + images)")
    p.add_argument(
        "--minutes",
        type=float,
        default=15.0,
        help="training budget; torchvision gets ours' measured minutes when both run",
    )
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--only",
        choices=("ours", "torchvision", "both", "none"),
        default="both",
        help="which to train; none: rewrite the table from the results already under --out",
    )
    p.add_argument("--out", default="bench/.cache/acc", help="logs and per-method results (default %(default)s)")
    p.add_argument("--classes", default="single", help="--classes for both (default single)")
    p.add_argument("--config", help="config overrides file for ours (train.py --config)")
    p.add_argument(
        "--ours-weights",
        choices=("none", "synthetic"),
        default="none",
        help="ours from scratch (none) or fine-tuned from the synthetic pretraining (train.py --weights "
        "synthetic, built once and cached; its minutes are not counted); method ours+synthetic",
    )
    p.add_argument(
        "--ours-layer-lr-decay",
        type=float,
        default=None,
        metavar="D",
        help="train.py --layer-lr-decay D for ours (method name gets +lldD)",
    )
    p.add_argument(
        "--ours-step-s",
        type=float,
        default=0.85,
        help="seconds per batch-2 training step of ours, to size its epochs (default %(default)s: "
        "17.0 min / 1,200 steps measured on 2 shared cores)",
    )
    p.add_argument(
        "--tv-norm",
        choices=("bn", "frozen"),
        default="bn",
        help="torchvision's backbone norm: bn (trainable BatchNorm, the default here) or frozen "
        "(its FrozenBatchNorm2d left as is: an identity at random init, as the issue-30 peer)",
    )
    p.add_argument("--tv-warmup", type=int, default=TV_WARMUP_ITERS, help="warm-up iterations (default %(default)s)")
    p.add_argument("--no-write", action="store_true", help="print the table, leave bench/RESULTS.md alone")
    p.add_argument("--torchvision-worker", dest="worker_out", help=argparse.SUPPRESS)  # the child process
    p.add_argument("--budget-s", type=float, help=argparse.SUPPRESS)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker_out:
        return torchvision_worker(args)
    if not (Path(args.dataset) / "train").is_dir() or not (Path(args.dataset) / "val").is_dir():
        print(f"error: {args.dataset} needs train/ and val/ folders (VIA json + images)", file=sys.stderr)
        return 2
    args.dataset = str(Path(args.dataset).resolve())
    out_root = (ROOT / args.out).resolve()
    name = Path(args.dataset).name
    out = out_root / name
    out.mkdir(parents=True, exist_ok=True)
    split = ", ".join(
        f"{s} {describe_split(d)}" for s, d in zip(("train", "val"), load_splits(args.dataset, args.classes))
    )
    extra = {"dataset": name, "dataset_label": dataset_label(args.dataset), "split": split, "seed": args.seed}

    budget_s = args.minutes * 60
    if args.only in ("ours", "both"):
        ours = {**run_ours(args, out), **extra}
        (out / f"{ours['method']}.json").write_text(json.dumps(ours, indent=2))
        print(
            f"{ours['method']}: {ours['steps']} steps in {ours['train_s'] / 60:.1f} min, mask mAP@0.5 {fmt(ours['mask_mAP50'])}"
        )
        if args.only == "both":
            budget_s = ours["train_s"]  # the same minutes ours actually took
    if args.only in ("torchvision", "both"):
        tv = {**run_torchvision(args, budget_s, out), **extra}
        (out / f"{tv['method']}.json").write_text(json.dumps(tv, indent=2))
    rows = collect(out_root)
    print("\n".join(table(rows)))
    if not args.no_write:
        write_section(SECTION, section_text(rows, args))
        print(f"wrote the section to {ROOT / 'bench' / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
