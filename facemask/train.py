#!/usr/bin/env python
"""Train Mask R-CNN on face masks (VIA-annotated folders), then report val mask mAP@0.5.

With no arguments it runs the CPU demo: generates the synthetic face-mask data if absent, trains a
small config, evaluates it (the same code as evaluate.py) and prints the mAP.

Examples::

    python train.py                                   # CPU demo on synthetic data (= facemask-train)
    python train.py --profile gpu --weights coco --dataset /content/drive/MyDrive/facemask
    python train.py --dataset my_photos --weights synthetic   # pretrain on generated face masks once (cached), fine-tune
    python train.py --weights last                    # resume the newest run exactly where it stopped
    python train.py --stages "heads:0.001:10,all:0.0001:20" --anchors auto
    python train.py --dataset my_data --classes auto --class-key label   # any classes from any attribute

Stages: ``LAYERS:LR:EPOCH`` items; each trains LAYERS (heads, 3+, 4+, 5+, all or a regex) at LR
until the global epoch EPOCH, continuing the epoch count from the weights the previous stage ended
with (a step schedule, as torchvision and Detectron2 run it). The run is evaluated on its last
checkpoint; ``best.h5`` (lowest val loss) is kept beside it but not used: on small real sets the val
loss bottoms out long before the mAP does (see bench/RESULTS.md).

A run records how it was launched (``run.json``: stages, dataset, anchors, augmentation) beside its
``config.json`` (profile, classes, sizes, anchors); ``--weights last`` (or a run folder) continues
that run with those settings and refuses a contradicting ``--classes``/``--profile``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from .cli import (
    DEFAULT_DATASET,
    SCALE_MARGIN_HELP,
    CLIError,
    add_class_args,
    check_consistent,
    cli_main,
    parse_weights,
    positive_float,
    positive_int,
    pretrained_spec,
    read_run_config,
    scale_margin,
)
from .profiles import PROFILES


def parse_stages(text: str) -> list[tuple[str, float, int]]:
    """``LAYERS:LR:EPOCH,...`` -> [(layers, lr, epoch)]: LR > 0, EPOCH >= 1 and increasing."""
    stages = []
    for item in text.split(","):
        parts = item.strip().split(":")
        if len(parts) != 3 or not parts[0]:
            raise argparse.ArgumentTypeError(f"stage {item!r} is not LAYERS:LR:EPOCH (e.g. heads:0.001:10)")
        layers, lr, epoch = parts
        try:
            lr, epoch = float(lr), int(epoch)
        except ValueError:
            raise argparse.ArgumentTypeError(f"stage {item!r}: LR must be a number and EPOCH an integer") from None
        if not 0 < lr < float("inf"):
            raise argparse.ArgumentTypeError(f"stage {item!r}: the learning rate must be > 0")
        if epoch < 1:
            raise argparse.ArgumentTypeError(f"stage {item!r}: EPOCH is the epoch the stage ends at, so >= 1")
        stages.append((layers, lr, epoch))
    if any(b[2] <= a[2] for a, b in zip(stages, stages[1:])):
        raise argparse.ArgumentTypeError("stage epochs must increase (each is the epoch the stage ends at)")
    return stages


def lr_decay(text: str) -> float:
    """``--layer-lr-decay``: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not in (0, 1]: the earlier stages' rates are LR * D^k")
    return value


def default_stages(pretrained: bool, lr: float, profile: str, synthetic: bool = False) -> list[tuple[str, float, int]]:
    """Pretrained (COCO, ImageNet, a file): heads then all at lr/100 (the original project). From
    scratch: all layers, then all at lr/10 for the last quarter (a step schedule). From the synthetic
    pretraining: the from-scratch schedule with its first epochs on the heads (its backbone saw
    generated images only, so it keeps training at the full rate)."""
    if profile == "tiny":
        return [("heads" if pretrained else "all", lr, 1), ("all", lr / 10, 2)]
    if synthetic:
        scratch = default_stages(False, lr, profile)
        return [("heads", lr, max(1, scratch[0][2] // 5))] + scratch
    if pretrained:
        return [("heads", lr, 10), ("all", lr / 100, 20)]
    if profile == "cpu":
        return [("all", lr, 22), ("all", lr / 10, 29)]
    return [("all", lr, 30), ("all", lr / 10, 40)]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="facemask-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--dataset",
        default=None,
        help="folder with train/ and val/ (VIA json + images); the synthetic demo set is "
        f"generated there when it is the default ({DEFAULT_DATASET}) and absent",
    )
    p.add_argument(
        "--weights",
        default="none",
        help="coco (Matterport's COCO weights, downloaded once into ~/.keras/models; "
        "MRCNN_COCO_WEIGHTS=PATH_OR_URL replaces the source), imagenet (ResNet-50 ImageNet "
        "weights: --profile r50; MRCNN_IMAGENET_WEIGHTS likewise), synthetic (the profile's "
        "model pretrained on generated face masks: built once, cached in ~/.cache/mrcnn-facemask; "
        "no download), last (resume the newest run), "
        "a run folder (resume it), none (from scratch, the CPU demo default) or a .h5 path",
    )
    p.add_argument(
        "--profile",
        choices=tuple(PROFILES),
        default=None,
        help="config size: cpu (ResNet-18, 256 px; the demo, default), gpu (ResNet-101, 1024 px; "
        "for --weights coco), r50 (ResNet-50, 512 px; for --weights imagenet or coco), "
        "tiny (tests); a resumed run keeps its own",
    )
    add_class_args(p, "Default: single (a resumed run keeps its own).")
    p.add_argument(
        "--unknown",
        choices=("error", "skip"),
        default="error",
        help="regions without a usable class: stop with a count and examples (default) or skip them",
    )
    p.add_argument(
        "--config", metavar="FILE", help="JSON/YAML file of config overrides (e.g. from facemask-fit-anchors)"
    )
    p.add_argument(
        "--anchors",
        default=None,
        metavar="default|auto|FILE",
        help="auto: fit RPN anchors to the training boxes first (k-means) and use them; "
        "default: the config's. Unset: auto when training from scratch (--weights none: "
        "no pretrained RPN to keep consistent), else default",
    )
    p.add_argument(
        "--scale-margin",
        type=scale_margin,
        metavar="M",
        help=f"--anchors auto: {SCALE_MARGIN_HELP}. Default 2; 1 on the generated demo set, whose val "
        "images come from the same sizes as its training ones",
    )
    p.add_argument(
        "--stages",
        type=parse_stages,
        metavar="LAYERS:LR:EPOCH,...",
        help="training stages (default depends on --weights, see above; a resumed run keeps its own)",
    )
    p.add_argument(
        "--next-stage-from",
        choices=("last", "best"),
        default=None,
        help="where each stage after the first starts: last (the weights the stage before ended "
        "with; default) or best (its lowest-val-loss checkpoint, best.h5, as the original "
        "face-mask project restarted its all-layers stage; bench/RESULTS.md compares them)",
    )
    p.add_argument(
        "--layer-lr-decay",
        type=lr_decay,
        metavar="D",
        help="per-layer learning rates in every stage that trains the backbone: res5 at the stage's LR, "
        "res4 at LR*D, res3 at LR*D^2, res2 at LR*D^3, conv1 at LR*D^4 (FPN, RPN and heads at LR); "
        "0 < D <= 1, e.g. 0.5. Unset: every layer at the stage's LR (a resumed run keeps its own)",
    )
    p.add_argument("--steps-per-epoch", type=positive_int, metavar="N", help="override STEPS_PER_EPOCH")
    p.add_argument(
        "--minutes",
        type=positive_float,
        metavar="N",
        help="finish training and the final evaluation within N minutes: the first steps are timed, "
        "then the steps per epoch are scaled (the stages, their epochs and learning-rate steps "
        "keep their shape); planned vs actual are printed and kept in run.json. With --weights "
        "last, N is the time for what remains (unset: what remains of the run's own budget)",
    )
    p.add_argument(
        "--augment", choices=("default", "none"), default=None, help="augmentation policy (default: default)"
    )
    p.add_argument("--logs", default="logs", help="where run folders (checkpoints, TensorBoard) go")
    p.add_argument(
        "--synthetic-size", default="256x320", metavar="HxW", help="image size when generating the demo data"
    )
    p.add_argument("--synthetic-count", default="200,50", metavar="TRAIN,VAL", help="number of demo images to generate")
    p.add_argument("--no-eval", action="store_true", help="skip the val mAP evaluation at the end")
    p.add_argument("--eval-limit", type=positive_int, metavar="N", help="evaluate on the first N val images only")
    p.add_argument(
        "--eval-every",
        type=positive_int,
        metavar="N",
        help="also evaluate the val mask mAP@0.5 every N epochs while training: val_map.png beside "
        "losses.png (costs one val pass each time)",
    )
    p.add_argument(
        "--gpus",
        type=positive_int,
        default=None,
        metavar="N",
        help="train on N GPUs with tf.distribute.MirroredStrategy (default: 1 / CPU)",
    )
    p.add_argument(
        "--worker-hosts",
        type=lambda t: t.split(","),
        metavar="HOST:PORT,HOST:PORT,...",
        help="train as one worker of a MultiWorkerMirroredStrategy cluster (the same list on "
        "every worker; the first is the chief); or set TF_CONFIG instead",
    )
    p.add_argument("--task-index", type=int, metavar="I", help="this worker's position in --worker-hosts")
    p.add_argument(
        "--seed",
        type=int,
        default=42,
        help="seed of the initial weights, the data order and the augmentation (default %(default)s)",
    )
    return p


def ensure_dataset(dataset: str, args) -> None:
    """Generate the synthetic demo set when the default dataset folder is absent."""
    if os.path.isfile(os.path.join(dataset, "train", "via_region_data.json")):
        return
    if os.path.normpath(dataset) != os.path.normpath(DEFAULT_DATASET):
        raise CLIError(
            f"no {dataset}/train/via_region_data.json; point --dataset at a folder with train/ and val/ VIA annotations"
        )
    from .synthetic import make_dataset

    h, w = (int(v) for v in args.synthetic_size.lower().split("x"))
    n_train, n_val = (int(v) for v in args.synthetic_count.split(","))
    print(f"Generating the synthetic face-mask demo set in {dataset} ({n_train} train, {n_val} val)...")
    make_dataset(dataset, n_train=n_train, n_val=n_val, image_size=(h, w), seed=0)


def make_strategy(args):
    """MultiWorkerMirroredStrategy from --worker-hosts/--task-index or TF_CONFIG, MirroredStrategy
    from --gpus N > 1, else None (one device); returns (strategy, is_chief)."""
    from mrcnn.model.loop import is_chief
    from mrcnn.model.loop import make_strategy as strategy_for

    if args.worker_hosts and (args.task_index is None or not 0 <= args.task_index < len(args.worker_hosts)):
        raise CLIError(
            f"--task-index must be 0..{len(args.worker_hosts) - 1} with {len(args.worker_hosts)} --worker-hosts"
        )
    strategy = strategy_for(args.gpus, args.worker_hosts, args.task_index)
    return strategy, strategy is None or is_chief(strategy)


class Plan:
    """What to train: the config, classes, stages and data, for a new run or a resumed one."""

    def __init__(self, args):
        from mrcnn import runs

        from .data import ClassSpec

        self.choice = parse_weights(args.weights, args.logs, pretrained=True)
        self.resuming = self.choice.resuming
        run_path, run_values = read_run_config(self.choice.path) if self.resuming else (None, {})
        self.run = runs.read_run_record(os.path.dirname(self.choice.path)) if self.resuming else {}
        if run_path:
            check_consistent(run_values, run_path, args.classes, args.class_key, args.profile)
        self.profile = run_values.get("PROFILE") or args.profile or "cpu"
        self.dataset = args.dataset or self.run.get("dataset") or DEFAULT_DATASET
        self.augment = args.augment or self.run.get("augment") or "default"
        self.next_stage_from = args.next_stage_from or self.run.get("next_stage_from") or "last"
        self.layer_lr_decay = args.layer_lr_decay or self.run.get("layer_lr_decay")
        self.pretrained = self.run.get("weights", "?") != "none" if self.resuming else self.choice.pretrained
        self.anchors = "run" if self.resuming else (args.anchors or ("auto" if not self.pretrained else "default"))
        demo = os.path.normpath(self.dataset) == os.path.normpath(DEFAULT_DATASET)
        self.scale_margin = args.scale_margin or self.run.get("scale_margin") or (1.0 if demo else 2.0)
        self.weights_path = None  # the file to start from: fetched by weights_file()
        self.budget = None  # a BudgetPlan when --minutes (or the resumed run's budget) applies
        self.minutes = args.minutes
        if self.minutes is None and self.resuming and self.run.get("budget"):
            left = remaining_budget_minutes(self.run["budget"], os.path.dirname(self.choice.path))
            if left <= 0:
                raise CLIError(
                    f"{os.path.dirname(self.choice.path)}: the run's {self.run['budget']['minutes']:g}-minute "
                    "budget is spent; pass --minutes N for more time"
                )
            self.minutes = left
        self.spec = ClassSpec.from_saved(run_values) or ClassSpec.parse(args.classes, args.class_key)
        self.overrides = {"SEED": args.seed}
        if args.steps_per_epoch:
            self.overrides["STEPS_PER_EPOCH"] = args.steps_per_epoch
        self.run_values, self.run_path = run_values, run_path
        self.stages = args.stages or [tuple(s) for s in self.run.get("stages", [])] or None

    def config(self, spec, config_file: str | None, strategy):
        from .profiles import make_config

        overrides = dict(self.overrides)
        if strategy is not None:
            overrides["GPU_COUNT"] = strategy.num_replicas_in_sync
        config = make_config(self.profile, spec, config_file)
        if self.run_path:
            # Resume exactly the run's model (anchors, sizes, classes); command-line overrides still apply.
            print(f"Resuming with the run's config {self.run_path}")
            config.apply(self.run_values, source=self.run_path)
        return config.apply(overrides).validate()

    def weights_file(self, config) -> str | None:
        """The file to start from (None from scratch): a pretrained key is checked against the
        config's backbone, then downloaded once (or taken from Keras' cache or its override)."""
        if self.choice.kind == "pretrained":
            spec = pretrained_spec(self.choice.key)
            if config.BACKBONE not in spec.backbones:
                fits = {"coco": "--profile gpu (ResNet-101) or r50 (ResNet-50)", "imagenet": "--profile r50"}
                raise CLIError(
                    f"--weights {self.choice.key} is {spec.description}: it does not fit profile "
                    f"'{self.profile}' (BACKBONE={config.BACKBONE}); use {fits[self.choice.key]}, "
                    f"or --weights none to train profile '{self.profile}' from scratch"
                )
        if self.weights_path is None:
            self.weights_path = self.choice.local_path(config=config)
        return self.weights_path

    def record(self) -> dict:
        started = self.choice.describe() if self.choice.kind != "resume" else None
        return {
            "stages": [list(s) for s in self.stages],
            "dataset": os.path.abspath(self.dataset),
            "weights": self.run.get("weights") or started,
            "weights_file": self.run.get("weights_file")
            or (self.weights_path if self.choice.kind in ("pretrained", "synthetic") else None),
            "anchors": self.run.get("anchors") or self.anchors,
            "scale_margin": self.scale_margin if (self.run.get("anchors") or self.anchors) == "auto" else None,
            "augment": self.augment,
            "next_stage_from": self.next_stage_from,
            "layer_lr_decay": self.layer_lr_decay,
            "budget": self.budget.to_record() if self.budget else self.run.get("budget"),
        }


def save_anchor_fit(fit, run_dir: str) -> None:
    """The fitted anchors' config snippet and plot, in the run folder."""
    from mrcnn.config import Config
    from mrcnn.visualize import plot_fitted_anchors

    os.makedirs(run_dir, exist_ok=True)
    Config.write_values(fit.to_config(), os.path.join(run_dir, "anchors_auto.json"))
    plot_fitted_anchors(fit, os.path.join(run_dir, "anchors_auto.png"), "train")


def run(argv=None) -> dict:
    started_at = time.time()
    args = build_parser().parse_args(argv)
    from mrcnn import runs
    from mrcnn.model import MaskRCNN

    from .data import load_dataset

    plan = Plan(args)
    ensure_dataset(plan.dataset, args)
    strategy, chief = make_strategy(args)
    train_set = load_dataset(plan.dataset, "train", plan.spec, unknown=args.unknown)
    spec = train_set.class_spec(plan.spec)  # auto: the classes found, with counts above
    val_set = load_dataset(plan.dataset, "val", spec, unknown=args.unknown)
    config = plan.config(spec, args.config, strategy)
    plan.weights_file(config)  # a pretrained key: checked against the backbone and fetched before the work
    fit = None
    if plan.anchors == "auto":
        from mrcnn.anchor_fit import fit_anchors_to_dataset, format_fit_report

        print("Fitting RPN anchors to the training boxes...")
        fit = fit_anchors_to_dataset(train_set, config, progress=True, scale_margin=plan.scale_margin)
        print(format_fit_report(fit.report))
        config.apply(fit.to_config()).validate()
    elif plan.anchors not in ("default", "run"):
        config.apply_file(plan.anchors).validate()
    config.display()

    build_started = time.time()
    seed_weight_init(config.SEED)
    model = MaskRCNN("training", config, model_dir=args.logs, strategy=strategy)
    build_seconds = time.time() - build_started
    untrained = load_initial_weights(model, plan, config)
    if fit is not None and chief:
        save_anchor_fit(fit, model.log_dir)
    plan.stages = plan.stages or default_stages(
        plan.pretrained, config.LEARNING_RATE, plan.profile, synthetic=plan.choice.kind == "synthetic"
    )
    check_stages(model, plan.stages, untrained)
    augmentation = None if plan.augment == "none" else "default"
    if plan.minutes:
        plan.budget = plan_time_budget(
            model, plan, args, train_set, val_set, augmentation, spent_s=time.time() - started_at, build_s=build_seconds
        )
        config.apply({"STEPS_PER_EPOCH": plan.budget.steps_per_epoch}).validate()
        print(plan.budget.describe())
    if plan.resuming and not args.stages and not plan.run.get("stages"):
        print(
            f"warning: {model.log_dir} has no {runs.RUN_FILE} (an older run): using the default stages "
            f"{plan.stages}; pass --stages to choose",
            file=sys.stderr,
        )
    if chief:  # only the chief writes into the run folder
        runs.write_run_record(model.log_dir, plan.record())
    callbacks = []
    if args.eval_every:
        from mrcnn.evaluation import PeriodicEvaluation

        callbacks.append(PeriodicEvaluation(model, val_set, every=args.eval_every, limit=args.eval_limit))
    started = time.time()
    stages = plan.stages
    for i, (layers, lr, epoch) in enumerate(stages):
        print(f"\n=== Stage {i + 1}/{len(stages)}: layers={layers} lr={lr} until epoch {epoch} ===")
        if i and plan.next_stage_from == "best" and model.epoch == stages[i - 1][2]:
            restart_from_best(model)
        model.train(
            train_set,
            val_set,
            learning_rate=lr,
            epochs=epoch,
            layers=layers,
            augmentation=augmentation,
            custom_callbacks=callbacks,
            verbose=2 if os.environ.get("CI") else 1,
            layer_lr_decay=plan.layer_lr_decay,
        )
    train_seconds = time.time() - started
    record = {"train_seconds": round(train_seconds, 1), "stages": stages, "run_dir": model.log_dir}
    if not chief:  # the chief plots, evaluates and reports
        return record
    _plot_history(model.log_dir)
    print(f"\nTraining took {train_seconds / 60:.1f} min; run folder: {model.log_dir}")
    if args.no_eval:
        report_budget(plan, record, started_at, model.log_dir)
        return record
    from .evaluate import evaluate_checkpoint

    checkpoint = runs.last_checkpoint_in(model.log_dir)
    if checkpoint is None:
        raise CLIError(f"{model.log_dir}: no checkpoint was written, so there is nothing to evaluate")
    summary = evaluate_checkpoint(
        checkpoint, plan.dataset, "val", logs=args.logs, limit=args.eval_limit, unknown=args.unknown
    )
    record.update(
        {
            "checkpoint": checkpoint,
            "mask_mAP50": summary.get("mask_mAP50"),
            "box_mAP50": summary.get("box_mAP50"),
            "mask_mAP50_at_min_confidence": summary.get("mask_mAP50_at_min_confidence"),
        }
    )
    report_budget(plan, record, started_at, model.log_dir)

    def fmt(value):
        return "n/a" if value is None else f"{value:.3f}"

    print(
        f"\nval mask mAP@0.5 = {fmt(summary.get('mask_mAP50'))} (Matterport's compute_ap, mean over the "
        f"{summary.get('images_with_gt')} val images with masks, detections ranked down to score "
        f"{summary.get('detection_min_confidence'):g}); {fmt(summary.get('mask_mAP50_at_min_confidence'))} with "
        f"only the detections >= {summary.get('reference_min_confidence'):g}; training {train_seconds / 60:.1f} min"
    )
    return record


def seed_weight_init(seed: int | None) -> None:
    """Seed the random initial weights (and TF's op seeds) from ``--seed``: the same seed starts from the
    same weights, and two seeds differ by data order, augmentation *and* init, as with torchvision's
    ``torch.manual_seed``. (Multithreaded kernels still sum in varying order: runs agree closely, not bit
    for bit.) Until this, every run drew a fresh init whatever its seed. ``None`` leaves them unseeded."""
    if seed is not None:
        import keras

        keras.utils.set_random_seed(int(seed))


def load_initial_weights(model, plan: Plan, config) -> list[str]:
    """COCO/ImageNet/a file (class heads excluded when the class count differs) or the resumed run's.
    Returns the layers left at their random initialisation (excluded, or not in the file): the first
    stage must train them."""
    from mrcnn.model.weights import WeightsMismatchError

    from .cli import check_class_count, explain_mismatch

    weights = plan.weights_file(config)
    if weights is None:
        return []
    if plan.resuming:
        check_class_count(weights, config, plan.run_path)
        exclude = []
    else:
        exclude = list(_class_heads_if_needed(weights, config))
    try:
        report = model.load_weights(weights, exclude=exclude)
    except WeightsMismatchError as e:
        raise explain_mismatch(e, weights, plan.run_path or f"profile '{plan.profile}'") from None
    if not report.loaded:
        raise CLIError(
            f"{weights}: none of its layers has a name of this model's layers (profile "
            f"'{plan.profile}'); it is not a Mask R-CNN / ResNet weights file in Matterport's naming"
        )
    return report.excluded + report.missing_in_file


def plan_time_budget(model, plan: Plan, args, train_set, val_set, augmentation, spent_s: float, build_s: float):
    """Time a few train steps of each stage's layers (and a val step, a checkpoint), then plan the steps
    per epoch that fit ``plan.minutes`` (:func:`facemask.budget.plan_budget`)."""
    from mrcnn.model.maskrcnn import validation_steps

    from .budget import BudgetTooSmall, StepTimes, evaluation_seconds, plan_budget

    probe_started = time.time()
    times = {}
    for layers in dict.fromkeys(layers for layers, _, end in plan.stages if end > model.epoch):
        print(f"Timing train steps of layers={layers} for the {plan.minutes:g}-minute budget...")
        t = model.time_steps(train_set, val_set, layers, augmentation=augmentation)
        times[layers] = StepTimes(t["train_step"], t["val_step"], t["checkpoint"], t["trace"])
    spent = spent_s + (time.time() - probe_started)
    val_steps = validation_steps(model.config, val_set)
    last = times[next(reversed(times))] if times else StepTimes(0.0)
    images = 0 if args.no_eval else min(len(val_set.image_ids), args.eval_limit or len(val_set.image_ids))
    periodic = (plan.stages[-1][2] - model.epoch) // args.eval_every if args.eval_every else 0
    eval_s = evaluation_seconds(last.val_step, model.config.BATCH_SIZE, images, build_s, periodic) if images else 0.0
    try:
        budget = plan_budget(plan.minutes, plan.stages, model.epoch, times, val_steps, eval_s, spent)
    except BudgetTooSmall as e:
        raise CLIError(f"--minutes {plan.minutes:g}: {e}") from None
    from mrcnn import runs

    budget.train_seconds_before = float(runs.read_state(model.log_dir).get("train_seconds", 0.0))
    return budget


def remaining_budget_minutes(budget: dict, run_dir: str) -> float:
    """What is left of a run's budget: its minutes less what its last session spent before training
    and in the epochs it finished since (``state.json`` counts the epochs' seconds)."""
    from mrcnn import runs

    epochs_s = float(runs.read_state(run_dir).get("train_seconds", 0.0)) - budget.get("train_seconds_before", 0.0)
    return budget["minutes"] - (budget.get("spent_s", 0.0) + epochs_s) / 60.0


def report_budget(plan: Plan, record: dict, started_at: float, run_dir: str) -> None:
    """Planned vs actual minutes, printed and kept in ``train_summary.json``."""
    from mrcnn import runs

    if plan.budget is not None:
        actual = time.time() - started_at
        record["budget"] = {
            "minutes": plan.budget.minutes,
            "planned_s": round(plan.budget.planned_total_s, 1),
            "actual_s": round(actual, 1),
            "steps_per_epoch": plan.budget.steps_per_epoch,
        }
        print(
            f"Time budget {plan.budget.minutes:g} min: planned {plan.budget.planned_total_s / 60:.1f} min, "
            f"took {actual / 60:.1f} min ({actual / 60 / plan.budget.minutes:.0%} of the budget)"
        )
    runs.write_json(os.path.join(run_dir, "train_summary.json"), record)


def check_stages(model, stages, untrained: list[str]) -> None:
    """Before anything trains: every stage must select layers, and the first must train the layers
    that start from random weights (without them a backbone stage fits random class heads)."""
    for i, (layers, lr, epoch) in enumerate(stages):
        try:
            selected = set(model.layers_matching(layers))
        except ValueError as e:
            raise CLIError(f"--stages: stage {i + 1} ({layers}:{lr:g}:{epoch}): {e}") from None
        left = [name for name in untrained if name not in selected] if i == 0 else []
        if left:
            raise CLIError(
                f"--stages: stage 1 ({layers}) leaves {len(left)} layer(s) untrained that start from "
                f"random weights, not from the weights file ({', '.join(left[:4])}"
                f"{', ...' if len(left) > 4 else ''}): train them first, e.g. --stages "
                "heads:0.001:10,all:0.00001:20"
            )


def restart_from_best(model) -> None:
    """Load the run's ``best.h5`` (lowest val loss so far) into the model, keeping its run folder
    and epoch count: the original face-mask project's rule for its all-layers stage."""
    from mrcnn import runs
    from mrcnn.model.weights import load_weights_by_name

    best = runs.best_checkpoint(model.log_dir)
    if best is None:
        print("--next-stage-from best: no best.h5 yet; going on from the last weights")
        return
    epoch = runs.read_state(model.log_dir).get("best_epoch")
    load_weights_by_name(model.keras_model, best, verbose=0)
    print(f"Starting this stage from {best} (lowest val loss so far{f', epoch {epoch}' if epoch else ''})")


def _class_heads_if_needed(weights_path: str, config):
    """Exclude the class-specific heads when the file's class count differs from ours."""
    from mrcnn.model.weights import CLASS_SPECIFIC_HEADS

    from .cli import weights_class_count

    file_classes = weights_class_count(weights_path)
    if file_classes is not None and file_classes != config.NUM_CLASSES:
        print(
            f"The weights have {file_classes} classes, the config {config.NUM_CLASSES}: "
            f"excluding {', '.join(CLASS_SPECIFIC_HEADS)} (trained anew)."
        )
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
    name = "val_loss" if "val_loss" in series else "loss"
    verdict = convergence(series.get(name) or [], name=name)
    plot_losses(series, path, title=f"{os.path.basename(log_dir)}: {verdict}")
    print(f"Loss curves: {path} ({verdict})")


def convergence(losses, window: int = 3, tolerance: float = 0.02, name: str = "val_loss") -> str:
    """Whether a loss curve has flattened: the best of its last ``window`` epochs improves on the best
    before them by less than ``tolerance`` (relative). A curve whose last epochs stay above its minimum by
    more than that has turned up (on a val loss: overfitting), which the verdict says apart."""
    values = [v for v in losses if v == v]
    if len(values) <= window:
        return f"{len(values)} epochs: too few to judge convergence"
    before, last = min(values[:-window]), min(values[-window:])
    gain = (before - last) / abs(before) if before else 0.0
    if gain <= -tolerance:
        lowest = next(i for i, v in enumerate(losses) if v == before) + 1
        return (
            f"converged, then rising: {name} was lowest at epoch {lowest} and the last {window} epochs "
            f"stayed {-gain:.1%} above it (overfitting: the mAP can still rise, see --eval-every)"
        )
    if gain < tolerance:
        return f"converged (the last {window} epochs changed {name} by {-gain:+.1%})"
    return f"NOT converged: the last {window} epochs still improved {name} by {gain:.1%}; train longer"


def main(argv=None) -> int:
    return cli_main(run, argv)


if __name__ == "__main__":
    sys.exit(main())
