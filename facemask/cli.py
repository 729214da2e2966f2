"""The command-line layer every face-mask command shares: argument types, the class and checkpoint
options, ONE loader from those options to (model, config, class names), and user-error handling.

A checkpoint's run folder holds ``config.json``; it is read once here (:func:`checkpoint_config`) and
says the profile, the classes (``CLASSES``, ``CLASS_NAMES``, ``CLASS_KEY``) and every model size, so
commands run on a trained model need no class or profile flags. Heavy imports are deferred so that
argument and path errors are instant.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .data import ClassSpec
from .profiles import PROFILES

DEFAULT_DATASET = os.path.join("datasets", "facemask")
DEFAULT_LOGS = "logs"
RUN_NAME = "facemask"
PRETRAINED = ("coco", "imagenet", "synthetic", "none")


class CLIError(Exception):
    """An error with a one-line message for the user (no traceback)."""


# ----------------------------------------------------------------------------- argument types
def _number(text: str, kind: type, check: Callable[[float], bool], what: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: {text!r}") from None
    if (isinstance(value, float) and math.isnan(value)) or not check(value):
        raise argparse.ArgumentTypeError(f"{text} {what}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _number(text, int, lambda v: v >= 1, "must be >= 1")


def positive_float(text: str) -> float:
    """argparse type: a finite float > 0."""
    return _number(text, float, lambda v: 0 < v < math.inf, "must be a number > 0")


def scale_margin(text: str) -> float:
    """argparse type for ``--scale-margin``: a finite float >= 1."""
    return _number(text, float, lambda v: 1 <= v < math.inf, "must be a number >= 1")


#: What ``--scale-margin`` does, for the commands that fit anchors.
SCALE_MARGIN_HELP = (
    "fit the anchors to the training boxes and to each of them at 1/M to M times its size, for photos "
    "shot closer or farther than the training ones (1: the training sizes only)"
)


def probability(text: str) -> float:
    """argparse type: a float in [0, 1]."""
    return _number(text, float, lambda v: 0.0 <= v <= 1.0, "is not in [0, 1]")


def class_option(text: str) -> str:
    """argparse type for ``--classes``: single, subtypes, auto or a comma-separated list."""
    try:
        ClassSpec.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def add_class_args(p: argparse.ArgumentParser, default_help: str) -> None:
    p.add_argument(
        "--classes",
        type=class_option,
        default=None,
        metavar="single|subtypes|auto|A,B,...",
        help="single: one 'mask' class; subtypes: surgical/n95/cloth/fashion; auto: the names found "
        "under the class attribute of the training json; or a list such as helmet,vest,goggles. " + default_help,
    )
    p.add_argument(
        "--class-key",
        default=None,
        metavar="NAME",
        help="VIA region attribute holding the class (default: mask_type for subtypes, else the "
        "file's only region attribute)",
    )


def add_checkpoint_args(p: argparse.ArgumentParser) -> None:
    """The options of every command that reads a trained checkpoint (evaluate, inference, export, app)."""
    p.add_argument(
        "--weights",
        required=True,
        help="checkpoint .h5, a run folder (its newest checkpoint), or 'last' (newest under --logs); "
        "inference and the app also take an exported model.onnx, model.tflite or SavedModel folder",
    )
    add_class_args(p, "Default: the run's (config.json beside the checkpoint), else single.")
    p.add_argument("--logs", default=DEFAULT_LOGS, help=f"run folders, for --weights last (default {DEFAULT_LOGS})")
    p.add_argument(
        "--profile",
        choices=tuple(PROFILES),
        default=None,
        help="config profile when the checkpoint has no config.json beside it (default cpu)",
    )
    p.add_argument("--config", default=None, help="JSON/YAML file of config overrides")


# ----------------------------------------------------------------------------- checkpoints
@dataclass(frozen=True)
class WeightsChoice:
    """What ``--weights`` named, parsed once (:func:`parse_weights`).

    ``kind``: ``"pretrained"`` (``key`` is coco or imagenet: fetched on use, see :meth:`local_path`),
    ``"synthetic"`` (the profile's model pretrained on generated face masks: built once, cached),
    ``"none"`` (from scratch), ``"resume"`` (``last`` or a run folder: ``path`` is its newest
    checkpoint) or ``"file"`` (``path`` is a weights file).
    """

    kind: str
    text: str
    key: str | None = None
    path: str | None = None

    @property
    def pretrained(self) -> bool:
        """Starts from trained weights (anything but ``none``)."""
        return self.kind != "none"

    @property
    def resuming(self) -> bool:
        return self.kind == "resume"

    def local_path(self, progress: bool = True, config=None) -> str | None:
        """The weights file: a pretrained key is downloaded once into Keras' cache (or taken from its
        ``MRCNN_*_WEIGHTS`` override), ``synthetic`` built once for ``config``'s profile and model shape
        (:func:`facemask.pretrain.synthetic_weights`); None for ``none``. A failed download or build is
        a one-line :class:`CLIError`."""
        if self.kind == "synthetic":
            from .pretrain import PretrainError, synthetic_weights

            try:
                return synthetic_weights(config, progress=progress)
            except PretrainError as e:
                raise CLIError(str(e)) from None
        if self.kind != "pretrained":
            return self.path
        from mrcnn.model.pretrained import WeightsDownloadError, fetch_pretrained

        try:
            return fetch_pretrained(self.key, progress=progress)
        except WeightsDownloadError as e:
            raise CLIError(
                f"{e}: pass it as --weights PATH (or set {pretrained_spec(self.key).env}=PATH_OR_URL)"
            ) from None

    def describe(self) -> str:
        """What the run record keeps: the key, or the file it started from."""
        return self.key if self.kind in ("pretrained", "synthetic") else (self.path or "none")


def pretrained_spec(key: str):
    from mrcnn.model.pretrained import PRETRAINED

    return PRETRAINED[key]


def parse_weights(text: str, logs: str = DEFAULT_LOGS, *, pretrained: bool = False) -> WeightsChoice:
    """``--weights`` -> a :class:`WeightsChoice`. Keys: ``coco``, ``imagenet``, ``none`` (only where
    ``pretrained``, i.e. for training), ``last`` (the newest checkpoint under ``logs``); otherwise a run
    folder (its newest checkpoint) or a weights file."""
    from mrcnn.runs import find_last_checkpoint, last_checkpoint_in

    key = text.strip().lower()
    if key in PRETRAINED:
        if not pretrained:
            raise CLIError(
                f"--weights {text}: give a trained checkpoint (PATH, a run folder or 'last'); "
                f"{text} weights have no face-mask heads"
            )
        if key == "none":
            return WeightsChoice("none", text)
        return WeightsChoice("synthetic" if key == "synthetic" else "pretrained", text, key=key)
    if key == "last":
        return WeightsChoice("resume", text, path=find_last_checkpoint(logs, RUN_NAME))
    if os.path.isdir(text):
        checkpoint = last_checkpoint_in(text)
        if checkpoint is None:
            raise CLIError(f"--weights {text}: the folder has no mask_rcnn_*_NNNN.h5 checkpoint")
        return WeightsChoice("resume", text, path=checkpoint)
    if not os.path.isfile(text):
        keys = "coco, imagenet, synthetic, none, last" if pretrained else "last"
        raise CLIError(f"--weights {text}: no such file or folder (or give one of the keys {keys})")
    return WeightsChoice("file", text, path=text)


def resolve_weights(spec: str, logs: str = DEFAULT_LOGS, *, pretrained: bool = False) -> str:
    """``--weights`` -> a checkpoint path (:func:`parse_weights`); a pretrained key (training only) is
    returned as the key, unfetched."""
    choice = parse_weights(spec, logs, pretrained=pretrained)
    return choice.key or ("none" if choice.kind == "none" else choice.path)


@dataclass
class Checkpoint:
    """A checkpoint and the config that rebuilds its model."""

    weights: str
    config: object
    source: str  # where the config came from
    run_values: dict = field(default_factory=dict)  # the run's config.json ({} without one)

    @property
    def class_names(self) -> list[str]:
        """Names by class id, 0 = BG."""
        names = ["BG", *getattr(self.config, "CLASS_NAMES", ())]
        if len(names) != int(self.config.NUM_CLASSES):
            names = ["BG"] + [f"class_{i}" for i in range(1, int(self.config.NUM_CLASSES))]
        return names

    def describe(self) -> str:
        c = self.config
        return (
            f"config: {type(c).__name__} NAME={c.NAME} PROFILE={getattr(c, 'PROFILE', '?')} "
            f"BACKBONE={c.BACKBONE} IMAGE_MAX_DIM={c.IMAGE_MAX_DIM} BATCH_SIZE={c.BATCH_SIZE} "
            f"DETECTION_MIN_CONFIDENCE={c.DETECTION_MIN_CONFIDENCE} "
            f"DETECTION_MAX_INSTANCES={c.DETECTION_MAX_INSTANCES}  [from {self.source}]\n"
            f"classes: {', '.join(self.class_names[1:])}"
        )


def read_run_config(weights_path: str) -> tuple[str | None, dict]:
    """(path, values) of the run's ``config.json`` beside a checkpoint; (None, {}) without one."""
    from mrcnn.config import Config
    from mrcnn.runs import run_config_path

    path = run_config_path(weights_path)
    if not path:
        return None, {}
    # Keys added since the run was recorded take the value that run's code had.
    return path, {**RECORDED_BEFORE, **Config.read_file(path)}


#: Config keys introduced after runs were first recorded -> the value every older run had.
RECORDED_BEFORE = {"RPN_CONV_CHANNELS": 512}


def check_consistent(
    run_values: dict, run_path: str | None, classes: str | None, class_key: str | None, profile: str | None
) -> None:
    """Refuse ``--classes``/``--class-key``/``--profile`` that contradict what the run recorded."""
    saved = ClassSpec.from_saved(run_values)
    if saved is not None and classes:
        asked = ClassSpec.parse(classes, class_key)
        if asked.mode != "auto" and not asked.same_classes(saved):
            raise CLIError(
                f"--classes {classes} but the run was trained with classes "
                f"{', '.join(saved.names)} ({run_path}); drop --classes"
            )
    if saved is not None and class_key and saved.key and class_key != saved.key:
        raise CLIError(f"--class-key {class_key} but the run used {saved.key!r} ({run_path}); drop --class-key")
    recorded = run_values.get("PROFILE")
    if recorded and profile and profile != recorded:
        raise CLIError(
            f"--profile {profile} but the run was trained with --profile {recorded} ({run_path}); drop --profile"
        )


def config_for_run(run_values: dict, run_path: str, profile: str | None, classes: str | None, class_key: str | None):
    """The config a run was trained with, rebuilt from its ``config.json`` values."""
    from .profiles import PROFILES

    check_consistent(run_values, run_path, classes, class_key, profile)
    saved = ClassSpec.from_saved(run_values) or ClassSpec.parse(classes, class_key)
    cls = PROFILES.get(run_values.get("PROFILE") or "gpu", PROFILES["gpu"])
    config = cls(classes=saved) if saved.names else cls()
    return config.apply(run_values, source=run_path)


def checkpoint_config(
    weights: str,
    *,
    logs: str = DEFAULT_LOGS,
    profile: str | None = None,
    classes: str | None = None,
    class_key: str | None = None,
    config_file: str | None = None,
    **overrides,
) -> Checkpoint:
    """Resolve ``--weights`` and build the inference config that matches it: the run's ``config.json``
    when there is one (refusing contradicting flags), else ``profile``/``classes``; then ``config_file``
    and ``overrides`` (None values ignored); batch size 1 unless overridden. Checks that the file is a
    weights file whose class count fits."""
    from .profiles import make_config

    path = resolve_weights(weights, logs)
    run_path, run_values = read_run_config(path)
    overrides = {"IMAGES_PER_GPU": 1, "GPU_COUNT": 1, **{k: v for k, v in overrides.items() if v is not None}}
    if run_path:
        config = config_for_run(run_values, run_path, profile, classes, class_key)
        source = run_path
    else:
        spec = ClassSpec.parse(classes, class_key)
        if spec.mode == "auto":
            raise CLIError(
                f"--classes auto needs the run's config.json beside {path} (it records the class "
                "names); pass the class list instead, e.g. --classes helmet,vest"
            )
        config = make_config(profile or "cpu", spec)
        source = f"profile '{profile or 'cpu'}' (no config.json beside the checkpoint)"
    if config_file:
        config.apply_file(config_file)
        source += f" + {config_file}"
    config.apply(overrides).validate()
    check_class_count(path, config, run_path)
    return Checkpoint(path, config, source, run_values)


def weights_class_count(path: str) -> int | None:
    """Classes (BG included) of a by-name weights file, read from its shapes only (no 246 MB read);
    None without class logits. A file that is not one gives a one-line :class:`CLIError`."""
    from mrcnn.model.weights import read_layer_shapes

    try:
        logits = read_layer_shapes(path).get("mrcnn_class_logits")
    except ValueError as e:
        reason = str(e).split(";")[0]  # the library's advice is for Python callers
        raise CLIError(
            f"{reason}: pass --weights PATH with a checkpoint written by train.py (or Matterport's "
            "mask_rcnn_coco.h5), a run folder or last"
        ) from None
    return int(logits[0][1][-1]) if logits else None


def check_class_count(path: str, config, run_path: str | None = None) -> None:
    """One line when ``path`` is not a by-name weights file, or has another number of classes."""
    file_classes = weights_class_count(path)
    if file_classes is not None and file_classes != int(config.NUM_CLASSES):
        names = ", ".join(getattr(config, "CLASS_NAMES", ())) or "?"
        fix = (
            f"its run's config.json ({run_path}) disagrees with it"
            if run_path
            else "pass the --classes it was trained with (or keep its run's config.json beside it)"
        )
        raise CLIError(
            f"{path} has {file_classes - 1} class(es) but the config has {int(config.NUM_CLASSES) - 1} ({names}): {fix}"
        )


def explain_mismatch(error: Exception, path: str, source: str) -> CLIError:
    """A one-line :class:`CLIError` for a weights/model shape mismatch that is not about classes."""
    lines = [ln.strip() for ln in str(error).splitlines()[1:] if ln.startswith("  ")]
    example = f" (e.g. {lines[0]})" if lines else ""
    return CLIError(
        f"{path} does not fit the model built from {source}: {len(lines)} layer(s) differ in "
        f"shape{example}; the backbone or sizes differ: pass the --profile or --config it was "
        "trained with"
    )


def build_model(ckpt: Checkpoint, logs: str = DEFAULT_LOGS):
    """The inference ``MaskRCNN`` of a :class:`Checkpoint`, its weights loaded."""
    from mrcnn.model.maskrcnn import MaskRCNN
    from mrcnn.model.weights import WeightsMismatchError

    model = MaskRCNN("inference", ckpt.config, logs)
    try:
        model.load_weights(ckpt.weights, verbose=1)
    except WeightsMismatchError as e:
        raise explain_mismatch(e, ckpt.weights, ckpt.source) from None
    return model


def is_exported(weights: str) -> bool:
    """``--weights`` names an exported ``model.onnx`` / ``model.tflite`` or SavedModel folder (facemask-export)."""
    from mrcnn.serve.runtimes import format_of

    return format_of(weights) is not None


def load_exported_model(args: argparse.Namespace, **overrides):
    """(model, :class:`Checkpoint`) for ``--weights DIR/model.onnx|model.tflite`` (or a SavedModel folder): an
    :class:`mrcnn.serve.runtimes.ExportedModel` (``detect()`` as MaskRCNN's). The detection
    threshold and count are baked into the file: a higher ``DETECTION_MIN_CONFIDENCE`` or a lower
    ``DETECTION_MAX_INSTANCES`` filters its output, the other way round is an error."""
    from types import SimpleNamespace

    from mrcnn.serve.runtimes import load_exported

    for flag in ("classes", "profile", "config"):
        if getattr(args, flag, None):
            raise CLIError(
                f"--{flag} does not apply to an exported model ({args.weights}): its classes and "
                "config are fixed at export (the .json beside it)"
            )
    model = load_exported(args.weights)
    values = {
        **model.config,
        "CLASS_NAMES": model.class_names[1:],
        "NUM_CLASSES": len(model.class_names),
        "IMAGES_PER_GPU": 1,
        "GPU_COUNT": 1,
        "BATCH_SIZE": 1,
    }
    baked = {
        "DETECTION_MIN_CONFIDENCE": float(values.get("DETECTION_MIN_CONFIDENCE", 0.0)),
        "DETECTION_MAX_INSTANCES": int(values.get("DETECTION_MAX_INSTANCES", 100)),
    }
    asked_conf = overrides.get("DETECTION_MIN_CONFIDENCE")
    if asked_conf is not None and asked_conf < baked["DETECTION_MIN_CONFIDENCE"]:
        raise CLIError(
            f"{args.weights} was exported with --min-confidence {baked['DETECTION_MIN_CONFIDENCE']}; "
            f"for {asked_conf} export again with facemask-export --min-confidence {asked_conf}"
        )
    asked_max = overrides.get("DETECTION_MAX_INSTANCES")
    if asked_max is not None and asked_max > baked["DETECTION_MAX_INSTANCES"]:
        raise CLIError(
            f"{args.weights} was exported with --max-detections {baked['DETECTION_MAX_INSTANCES']}; "
            f"for {asked_max} export again with facemask-export --max-detections {asked_max}"
        )
    model.min_confidence = asked_conf
    model.max_detections = asked_max
    values["DETECTION_MIN_CONFIDENCE"] = asked_conf if asked_conf is not None else baked["DETECTION_MIN_CONFIDENCE"]
    values["DETECTION_MAX_INSTANCES"] = asked_max if asked_max is not None else baked["DETECTION_MAX_INSTANCES"]
    model.config = SimpleNamespace(**values)
    ckpt = Checkpoint(args.weights, model.config, f"{model.format} export ({model.path})")
    print(
        f"exported {model.format} model {args.weights}: classes {', '.join(ckpt.class_names[1:])}; "
        f"DETECTION_MIN_CONFIDENCE={values['DETECTION_MIN_CONFIDENCE']} "
        f"DETECTION_MAX_INSTANCES={values['DETECTION_MAX_INSTANCES']}"
    )
    return model, ckpt


def load_checkpoint(args: argparse.Namespace, **overrides):
    """(model, :class:`Checkpoint`) from the parsed checkpoint options, configs overridden by
    ``overrides`` (None values ignored). Prints the config and class names it uses. An exported
    ``.onnx``/``.tflite`` file or SavedModel folder gives an :class:`mrcnn.serve.runtimes.ExportedModel`
    (:func:`load_exported_model`)."""
    if is_exported(args.weights):
        return load_exported_model(args, **overrides)
    ckpt = checkpoint_config(
        args.weights,
        logs=args.logs,
        profile=args.profile,
        classes=args.classes,
        class_key=args.class_key,
        config_file=args.config,
        **overrides,
    )
    print(ckpt.describe())
    return build_model(ckpt, args.logs), ckpt


# ----------------------------------------------------------------------------- running a command
def user_errors() -> tuple[type[BaseException], ...]:
    from mrcnn.config import ConfigError
    from mrcnn.data.image_io import ImageReadError, InputStreamError
    from mrcnn.data.via import ViaFormatError
    from mrcnn.serve.runtimes import RuntimeMissingError

    return (
        CLIError,
        FileNotFoundError,
        ConfigError,
        ImageReadError,
        ViaFormatError,
        ValueError,
        MemoryError,
        InputStreamError,
        RuntimeMissingError,
    )


def _names(items, show: int = 8) -> str:
    items = list(items)
    return ", ".join(map(str, items[:show])) + (f" and {len(items) - show} more" if len(items) > show else "")


def cli_message(error: BaseException, *, classes_from_run: bool = False) -> str:
    """A user error on one line in the command line's words: library errors that carry their facts
    (unknown classes, a class key the file lacks, missing images) get the flags that fix them instead
    of the library's keyword arguments. ``classes_from_run``: the classes come from the run's
    config.json (evaluate), so ``--classes`` is not the fix."""
    from mrcnn.data.dataset import MissingImagesError
    from mrcnn.data.via import ClassKeyError
    from mrcnn.data.via_dataset import UnknownClassError

    if isinstance(error, UnknownClassError) and error.path:
        first = error.problems[0] if error.problems else ""
        first = re.sub(r" is not in \[.*\]$", "", first.removeprefix(f"{os.path.basename(error.path)}, "))
        known = f"classes {_names(error.known)}" if error.known else "classes from the data"
        if error.reasons - {"unknown class"}:
            keys = f" (region attributes in the file: {_names(error.keys)})" if error.keys else ""
            fix = f"pass --class-key NAME for the attribute that holds the class{keys}, or --unknown skip"
        elif classes_from_run:
            fix = "pass --unknown skip to leave them out (the model knows only its run's classes)"
        else:
            fix = (
                "pass --unknown skip to leave them out, or --classes with every class the file uses "
                "(--classes auto takes them from the file)"
            )
        return f"{len(error.problems)} region(s) in {error.path} have no usable class ({known}), e.g. {first}; {fix}"
    if isinstance(error, ClassKeyError):
        return (
            f"--class-key {error.class_key}: {error.path} has no region attribute of that name; "
            f"pass --class-key with one of: {_names(error.keys)}"
        )
    if isinstance(error, MissingImagesError):
        return (
            f"{len(error.missing)} of {error.total} images listed in {error.json_path} are not in "
            f"{error.image_dir}, e.g. {_names(os.path.basename(p) for p in error.missing[:3])}: put them "
            "beside the json, or point --dataset at the folder that has them"
        )
    return one_line(error)


def cli_main(run_fn: Callable, argv: Sequence[str] | None = None) -> int:
    """Run a command's ``run(argv)``: user errors become one line on stderr and exit 1; Ctrl-C 130.
    ``FACEMASK_DEBUG=1`` re-raises them with the traceback."""
    try:
        run_fn(argv)
    except user_errors() as e:
        if os.environ.get("FACEMASK_DEBUG"):
            raise
        print(f"error: {cli_message(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


def one_line(error: BaseException, max_items: int = 6) -> str:
    """The error's message on one line: listed problems are joined with '; ', long lists cut."""
    parts = [p.strip().removeprefix("- ") for p in str(error).splitlines() if p.strip()]
    if len(parts) > max_items:
        parts = parts[:max_items] + [f"... and {len(parts) - max_items} more"]
    if not parts:
        return type(error).__name__
    text = parts[0]
    for part in parts[1:]:  # a header ending in ':' introduces the list: no ':;'
        text += (" " if text.endswith(":") else "; ") + part
    return text
