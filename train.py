#!/usr/bin/env python
"""Train Mask R-CNN on face masks (VIA-annotated folders), then report val mask mAP@0.5.

With no arguments it runs the CPU demo: generates the synthetic face-mask data if absent, trains a
small config, evaluates it (the same code as evaluate.py) and prints the mAP.

Examples::

    python train.py                                   # CPU demo on synthetic data
    python train.py --profile gpu --weights coco --dataset /content/drive/MyDrive/facemask
    python train.py --weights last                    # resume the newest run where it stopped
    python train.py --stages "heads:0.001:10,all:0.0001:20" --anchors auto

Stages: ``LAYERS:LR:EPOCH`` items; each trains LAYERS (heads, 3+, 4+, 5+, all or a regex) at LR
until the global epoch EPOCH, continuing the epoch count. A stage after the first restarts from the
best-by-val-loss weights so far, as the original face-mask project did.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

DEFAULT_DATASET = os.path.join("datasets", "facemask")


def parse_stages(text: str) -> list[tuple[str, float, int]]:
    stages = []
    for item in text.split(","):
        parts = item.strip().split(":")
        if len(parts) != 3:
            raise argparse.ArgumentTypeError(f"stage {item!r} is not LAYERS:LR:EPOCH (e.g. heads:0.001:10)")
        layers, lr, epoch = parts
        try:
            stages.append((layers, float(lr), int(epoch)))
        except ValueError:
            raise argparse.ArgumentTypeError(f"stage {item!r}: LR must be a number and EPOCH an integer") from None
    if any(b[2] <= a[2] for a, b in zip(stages, stages[1:])):
        raise argparse.ArgumentTypeError("stage epochs must increase (each is the epoch the stage ends at)")
    return stages


def default_stages(weights: str, lr: float, profile: str) -> list[tuple[str, float, int]]:
    """Pretrained: heads then all at lr/100 (the original project). From scratch: all layers,
    then all at lr/10 restarted from the best weights (a step schedule)."""
    pretrained = weights.lower() != "none"
    if profile == "tiny":
        return [("heads" if pretrained else "all", lr, 1), ("all", lr / 10, 2)]
    if pretrained:
        return [("heads", lr, 10), ("all", lr / 100, 20)]
    if profile == "cpu":
        return [("all", lr, 14), ("all", lr / 10, 18)]
    return [("all", lr, 30), ("all", lr / 10, 40)]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default=DEFAULT_DATASET,
                   help="folder with train/ and val/ (VIA json + images); the synthetic demo set is "
                        f"generated there when it is the default ({DEFAULT_DATASET}) and absent")
    p.add_argument("--weights", default="none",
                   help="coco (download Matterport's COCO weights), imagenet, last (resume newest run), "
                        "none (from scratch, the CPU demo default) or a path to a .h5 file")
    p.add_argument("--profile", choices=("cpu", "gpu", "tiny"), default="cpu",
                   help="config size: cpu (ResNet-18, 256 px; the demo), gpu (ResNet-101, 1024 px), tiny (tests)")
    p.add_argument("--classes", choices=("single", "subtypes"), default="single",
                   help="one 'mask' class, or surgical/n95/cloth/fashion from the mask_type attribute")
    p.add_argument("--config", metavar="FILE", help="JSON/YAML file of config overrides (e.g. from tools/fit_anchors.py)")
    p.add_argument("--anchors", default=None, metavar="default|auto|FILE",
                   help="auto: fit RPN anchors to the training boxes first (k-means) and use them; "
                        "default: the config's. Unset: auto when training from scratch (--weights none: "
                        "no pretrained RPN to keep consistent), else default")
    p.add_argument("--stages", type=parse_stages, metavar="LAYERS:LR:EPOCH,...",
                   help="training stages (default depends on --weights, see above)")
    p.add_argument("--steps-per-epoch", type=int, metavar="N", help="override STEPS_PER_EPOCH")
    p.add_argument("--augment", choices=("default", "none"), default="default", help="augmentation policy")
    p.add_argument("--logs", default="logs", help="where run folders (checkpoints, TensorBoard) go")
    p.add_argument("--synthetic-size", default="256x320", metavar="HxW",
                   help="image size when generating the demo data")
    p.add_argument("--synthetic-count", default="200,50", metavar="TRAIN,VAL",
                   help="number of demo images to generate")
    p.add_argument("--no-eval", action="store_true", help="skip the val mAP evaluation at the end")
    p.add_argument("--eval-limit", type=int, metavar="N", help="evaluate on the first N val images only")
    p.add_argument("--gpus", type=int, default=None, metavar="N",
                   help="train on N GPUs with tf.distribute.MirroredStrategy (default: 1 / CPU)")
    p.add_argument("--worker-hosts", type=lambda t: t.split(","), metavar="HOST:PORT,HOST:PORT,...",
                   help="train as one worker of a MultiWorkerMirroredStrategy cluster (the same list on "
                        "every worker; the first is the chief); or set TF_CONFIG instead")
    p.add_argument("--task-index", type=int, metavar="I", help="this worker's position in --worker-hosts")
    p.add_argument("--seed", type=int, default=42, help="data order and augmentation seed")
    return p


def make_strategy(args):
    """MultiWorkerMirroredStrategy from --worker-hosts/--task-index or TF_CONFIG, MirroredStrategy
    from --gpus N > 1, else None; returns (strategy, is_chief)."""
    from mrcnn.model.loop import is_chief, make_strategy as strategy_for

    strategy = strategy_for(args.gpus, args.worker_hosts, args.task_index)
    return strategy, strategy is None or is_chief(strategy)


def ensure_dataset(args) -> None:
    if os.path.isfile(os.path.join(args.dataset, "train", "via_region_data.json")):
        return
    if os.path.normpath(args.dataset) != os.path.normpath(DEFAULT_DATASET):
        raise SystemExit(f"error: no {args.dataset}/train/via_region_data.json; point --dataset at a folder "
                         "with train/ and val/ VIA annotations")
    from tools.make_synthetic import make_dataset

    h, w = (int(v) for v in args.synthetic_size.lower().split("x"))
    n_train, n_val = (int(v) for v in args.synthetic_count.split(","))
    print(f"Generating the synthetic face-mask demo set in {args.dataset} ({n_train} train, {n_val} val)...")
    make_dataset(args.dataset, n_train=n_train, n_val=n_val, image_size=(h, w), seed=0)


def fit_anchor_config(args, config_path: str | None) -> str:
    """Run tools/fit_anchors.py on the training set; returns the snippet path to apply."""
    from tools import fit_anchors

    os.makedirs(args.logs, exist_ok=True)
    out = os.path.join(args.logs, "anchors_auto.json")
    argv = ["--dataset", args.dataset, "--subset", "train", "--classes", args.classes, "--profile", args.profile,
            "--out", out, "--plot", os.path.join(args.logs, "anchors_auto.png")]
    if config_path:
        argv += ["--config", config_path]
    fit_anchors.run(argv)
    return out


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import facemask
    from mrcnn.model import MaskRCNN
    from mrcnn.runs import run_config_path

    try:
        ensure_dataset(args)
        overrides = {"SEED": args.seed}
        if args.steps_per_epoch:
            overrides["STEPS_PER_EPOCH"] = args.steps_per_epoch
        strategy, chief = make_strategy(args)
        if strategy is not None:
            overrides["GPU_COUNT"] = strategy.num_replicas_in_sync
        config = facemask.make_config(args.profile, args.classes, args.config, **overrides)
        weights = facemask.resolve_weights(args.weights, args.logs, config.NAME)
        resumed_config = run_config_path(weights) if args.weights.lower() == "last" else None
        anchors = args.anchors or ("auto" if args.weights.lower() == "none" else "default")
        if resumed_config:
            # Resume exactly the run's model (anchors, sizes, classes); command-line overrides still apply.
            print(f"Resuming with the run's config {resumed_config}")
            config.apply_file(resumed_config).apply(overrides).validate()
        elif anchors == "auto":
            config.apply_file(fit_anchor_config(args, args.config)).validate()
        elif anchors != "default":
            config.apply_file(anchors).validate()
        config.display()

        train_set = facemask.load_dataset(args.dataset, "train", args.classes)
        val_set = facemask.load_dataset(args.dataset, "val", args.classes)
        model = MaskRCNN("training", config, model_dir=args.logs, strategy=strategy)
        if weights == "imagenet":
            model.load_weights(model.get_imagenet_weights(), exclude=[])
        elif weights != "none":
            exclude = [] if args.weights.lower() == "last" else list(_class_heads_if_needed(weights, config))
            model.load_weights(weights, exclude=exclude)

        stages = args.stages or default_stages(args.weights, config.LEARNING_RATE, args.profile)
        augmentation = None if args.augment == "none" else "default"
        started = time.time()
        for i, (layers, lr, epoch) in enumerate(stages):
            # A new stage (not one resumed half-way) restarts from the best weights so far.
            if i > 0 and model.epoch == stages[i - 1][2] and model.restore_best(verbose=0):
                print(f"\nStage {i + 1}: restarting from the best weights so far ({model.log_dir}/best.h5)")
            print(f"\n=== Stage {i + 1}/{len(stages)}: layers={layers} lr={lr} until epoch {epoch} ===")
            model.train(train_set, val_set, learning_rate=lr, epochs=epoch, layers=layers,
                        augmentation=augmentation, verbose=2 if os.environ.get("CI") else 1)
        train_seconds = time.time() - started
        if not chief:  # the chief plots, evaluates and reports
            return 0
        _plot_history(model.log_dir)
        print(f"\nTraining took {train_seconds / 60:.1f} min; run folder: {model.log_dir}")

        if args.no_eval:
            return 0
        import evaluate

        best = os.path.join(model.log_dir, "best.h5")
        checkpoint = best if os.path.isfile(best) else model.find_last()
        summary = evaluate.evaluate_checkpoint(checkpoint, args.dataset, "val", args.classes, args.logs,
                                               limit=args.eval_limit)
        record = {"train_seconds": round(train_seconds, 1), "stages": stages, "checkpoint": checkpoint,
                  "mask_mAP50": summary.get("mask_mAP50"), "box_mAP50": summary.get("box_mAP50")}
        with open(os.path.join(model.log_dir, "train_summary.json"), "w") as f:
            json.dump(record, f, indent=2)
        print(f"\nval mask mAP@0.5 = {summary.get('mask_mAP50'):.3f} (mean over images, Matterport-style); "
              f"training {train_seconds / 60:.1f} min")
        return 0
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def _class_heads_if_needed(weights_path: str, config):
    """Exclude the class-specific heads when the file's class count differs from ours."""
    from mrcnn.model.weights import CLASS_SPECIFIC_HEADS, read_layer_shapes

    logits = read_layer_shapes(weights_path).get("mrcnn_class_logits")  # shapes only: no 246 MB read
    if logits and logits[0][1][-1] != config.NUM_CLASSES:
        print(f"The weights have {logits[0][1][-1]} classes, the config {config.NUM_CLASSES}: "
              f"excluding {', '.join(CLASS_SPECIFIC_HEADS)} (trained anew).")
        return CLASS_SPECIFIC_HEADS
    return ()


def _plot_history(log_dir: str) -> None:
    from mrcnn.runs import read_history
    from mrcnn.visualize import plot_losses

    history = read_history(log_dir)
    if not history:
        return
    keys = [k for k in history[0] if k.endswith("loss")]
    series = {k: [h.get(k, float("nan")) for h in history] for k in keys}
    path = os.path.join(log_dir, "losses.png")
    plot_losses(series, path)
    print(f"Loss curves: {path}")


if __name__ == "__main__":
    sys.exit(main())
