"""Where one Mask R-CNN step spends its time: ours (TF/Keras) vs torchvision, phase by phase.

Both models are built by ``bench/model_speed.py`` at the bench settings (ResNet-50 FPN, 512 px, same
ROI counts; its SETTINGS_DOC). After WARMUP untimed steps each, ``--reps`` steps each are profiled,
interleaved (ours, theirs, ours, ...) under both profilers at once, since the machine is shared.

- Ours: ``tf.profiler.experimental``; the ``*.xplane.pb`` is parsed here. On the ``/host:CPU``
  plane, op events are named ``"<op name>:<op type>"``; async kernels (CropAndResize and its
  gradient) only show as ``ExecutorState::ProcessAsync::Start`` events whose ``name`` and
  ``kernel_type`` stats name the op. An op's phase is the Keras layer in its scope
  (``mask_rcnn_1/<layer>_<n>/...``; a ``gradient_tape/`` prefix = backward); unnamed layers
  (activations, adds, reshapes) take the phase of the layer feeding them. Two inter-op threads run
  ops at once, so the wall is shared out: while k ops run, each gets 1/k of the time; the rows then
  add up to the union of op intervals, and "untraced" = step wall - union. Summed op time is kept too.
- torchvision: ``torch.profiler`` with ``record_function("phase::<name>")`` ranges opened by module
  hooks and method wrappers; each event's self time goes to its innermost range. A backward node
  (``autograd::engine::evaluate_function: XBackward0``) goes to the phase of the forward op with its
  ``sequence_nr``; AccumulateGrad nodes have none ("grad aggregation").

Usage: ``bench/.venv-bench/bin/python bench/profile_step.py [--batch 1|2] [--reps 3]
[--phase train|infer] [--no-write]``; writes the ``## Train-step profile`` (or ``## Inference
profile``) section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as _dt
import functools
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import model_speed  # noqa: E402  (puts the repo root on sys.path; imports no framework)
from results import write_section  # noqa: E402

SECTIONS = {"train": "## Train-step profile", "infer": "## Inference profile"}
WARMUP = 3
PREFIX, STEP = "phase::", "profile_step"
ROWS = (
    "transform",
    "backbone",
    "FPN",
    "RPN head",
    "anchors",
    "proposals",
    "RPN targets",
    "detection targets",
    "ROIAlign",
    "box head",
    "detections",
    "mask head",
    "mask paste",
    "losses",
    "weight decay",
    "diagnostics",
    "other unscoped",
    "model glue",
    "grad aggregation",
    "backward other",
    "grad clipping",
    "optimizer step",
    "zero_grad",
    "untraced",
)
UNSPLIT = {"grad clipping", "optimizer step", "zero_grad", "untraced"}  # no forward/backward columns
BUSY_WARNING = 1.6  # process CPU time / wall (2 threads each) below which the run is flagged as contended


@dataclass
class Profile:
    """Milliseconds per step (mean over the profiled steps) by row, forward and backward."""

    walls: list[float]
    fwd: collections.Counter = field(default_factory=collections.Counter)
    bwd: collections.Counter = field(default_factory=collections.Counter)
    ops: collections.Counter = field(default_factory=collections.Counter)  # ours: summed op time per row
    top: collections.Counter = field(default_factory=collections.Counter)  # op -> ms
    note: str = ""
    cores: float = 0.0  # process CPU time / wall: well below 2 = the shared machine took cores away

    def total(self, row: str) -> float:
        return self.fwd[row] + self.bwd[row]


def _wrap_attribute(owner, attr: str, make_range, stack: contextlib.ExitStack):
    """Call ``owner.attr`` inside ``make_range()`` until ``stack`` closes."""
    original = owner.__dict__.get(attr)  # None: a method of the class
    fn = getattr(owner, attr)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with make_range():
            return fn(*args, **kwargs)

    setattr(owner, attr, wrapper)
    stack.callback(lambda: setattr(owner, attr, original) if original is not None else delattr(owner, attr))


# ---------------------------------------------------------------------------------------- ours (TF)
LAYER_RULES = [
    (re.compile(p), row)
    for p, row in (
        (r"(conv1|bn_conv1|res\d|bn\d|max_pooling2d|zero_padding2d)", "backbone"),
        (r"fpn_", "FPN"),
        (r"rpn_", "RPN head"),
        (r"anchors$", "anchors"),
        (r"ROI$", "proposals"),
        (r"(proposal_targets|gt_boxes_normalized)$", "detection targets"),
        (r"roi_align_", "ROIAlign"),
        (r"(mrcnn_class|mrcnn_bbox|pool_squeeze)", "box head"),
        (r"(mrcnn_detection|detection_boxes)$", "detections"),
        (r"(mrcnn_mask|positive_rois|real_detections)", "mask head"),
    )
]
OUTSIDE_SCOPES = {"losses": "losses", "weight_decay": "weight decay", "diagnostics": "diagnostics"}
NORM_TYPES = {"Square", "Sum", "Pack", "Sqrt", "Minimum", "Reciprocal", "RealDiv"}  # Keras clip_by_global_norm
OP_EVENT = re.compile(r"^([^\s:]+):(\w+)$")


def _rule_row(name: str) -> str | None:
    return next((row for pattern, row in LAYER_RULES if pattern.match(name)), None)


def layer_rows(keras_model) -> dict[str, str]:
    """Layer name -> row: by name, else (activations, adds, reshapes) the row of the layer feeding it."""
    import keras

    rows: dict[str, str] = {}
    for layer in keras_model.layers:  # topological order: producers first
        row = _rule_row(layer.name)
        if row is None and not isinstance(layer, keras.layers.InputLayer):
            try:
                sources = [t._keras_history.operation.name for t in keras.tree.flatten(layer.input)]
            except (AttributeError, ValueError):  # a shared layer has no single input
                sources = []
            row = next((rows[s] for s in sources if s in rows), "model glue")
        if row:
            rows[layer.name] = row
    return rows


def classify_tf_op(name: str, op_type: str, rows: dict[str, str]) -> tuple[str, bool]:
    """(row, is_backward) of one TF op from its full name."""
    parts = name.split("/")
    backward = parts[0] == "gradient_tape"
    parts = parts[1:] if backward else parts
    top = re.sub(r"_\d+$", "", parts[0])
    if top == "mask_rcnn":
        scope = parts[1] if len(parts) > 1 else ""
        while True:  # activation_33_1 -> activation_33 -> activation: Keras' call suffixes
            if row := rows.get(scope) or _rule_row(scope):
                return row, backward
            shorter = re.sub(r"_\d+$", "", scope)
            if shorter == scope:
                return "model glue", backward
            scope = shorter
    if top.lower() == "sgd":
        return ("grad clipping" if op_type in NORM_TYPES else "optimizer step"), False
    if top in OUTSIDE_SCOPES:
        return OUTSIDE_SCOPES[top], backward
    if top == "AddN" and not backward:  # tape.gradient summing a tensor's gradients (AddN / AccumulateNV2)
        return "grad aggregation", True
    return "other unscoped", backward


def _stat(plane, event, key: str) -> str:
    for s in event.stats:
        if plane.stat_metadata[s.metadata_id].name == key:
            return s.str_value or (plane.stat_metadata[s.ref_value].name if s.ref_value else "")
    return ""


def read_xplane(path: Path):
    """Spans in ps: steps, Python-side phase ranges, graph-function calls, and ops (name, type, span)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    space.ParseFromString(path.read_bytes())
    plane = next(p for p in space.planes if p.name == "/host:CPU")
    steps, ranges, functions, ops = [], [], [], []
    for line in plane.lines:
        base = line.timestamp_ns * 1000
        for ev in line.events:
            name = plane.event_metadata[ev.metadata_id].name
            span = (base + ev.offset_ps, base + ev.offset_ps + ev.duration_ps)
            if name == STEP:
                steps.append(span)
            elif name.startswith(PREFIX):
                ranges.append((name[len(PREFIX) :], span))
            elif name == "ExecutorState::ProcessAsync::Start":
                ops.append((_stat(plane, ev, "name"), _stat(plane, ev, "kernel_type"), span))
            elif m := OP_EVENT.match(name):
                ops.append((m.group(1), m.group(2), span))
            elif line.name == "python" and _stat(plane, ev, "tf_function_call"):
                functions.append(span)
    return steps, ranges, functions, ops


def share_wall(spans) -> collections.Counter:
    """key -> ps of wall time: while k ops run at once, each gets 1/k of it (sums to their union)."""
    marks = sorted(
        [(a, 1, key) for a, _, key in spans] + [(b, -1, key) for _, b, key in spans], key=lambda m: (m[0], m[1])
    )
    shares, running, last = collections.Counter(), collections.Counter(), 0
    for t, delta, key in marks:
        count = sum(running.values())
        for k, c in running.items():
            shares[k] += (t - last) * c / count
        running[key] += delta
        if not running[key]:
            del running[key]
        last = t
    return shares


def ours_profile(path: Path, rows: dict[str, str]) -> Profile:
    steps, ranges, functions, ops = read_xplane(path)
    inside = lambda span: any(a <= span[0] < b for a, b in steps)  # noqa: E731
    n, ms = len(steps), 1e-9
    prof = Profile(walls=[(b - a) * ms for a, b in sorted(steps)])
    classify = functools.lru_cache(maxsize=None)(lambda name, op_type: classify_tf_op(name, op_type, rows))
    spans = []
    for name, op_type, (a, b) in ops:
        if inside((a, b)):
            row, backward = classify(name, op_type)
            spans.append((a, b, (row, backward)))
            prof.ops[row] += (b - a) * ms / n
            prof.top[op_type] += (b - a) * ms / n
    for (row, backward), ps in share_wall(spans).items():
        (prof.bwd if backward else prof.fwd)[row] += ps * ms / n
    union = sum(prof.fwd.values()) + sum(prof.bwd.values())
    python = [(row, (b - a) * ms / n) for row, (a, b) in ranges if inside((a, b))]
    for row, t in python:  # Python-side ranges (inference: molding, unmolding) run between graph calls
        prof.fwd[row] += t
    prof.fwd["untraced"] = sum(prof.walls) / n - union - sum(t for _, t in python)
    graph = sum(b - a for a, b in functions if inside((a, b))) * ms / n
    prof.note = (
        f"ours: {len(spans) // n} op events per step, summed op time {sum(prof.ops.values()):.0f} ms "
        f"over a union of {union:.0f} ms (x{sum(prof.ops.values()) / union:.2f} ops at once on "
        f"average), graph function {graph:.0f} ms of the {sum(prof.walls) / n:.0f} ms step"
    )
    return prof


# ---------------------------------------------------------------------------------------- torchvision
MODULE_ROWS = {
    "transform": "transform",
    "backbone.body": "backbone",
    "backbone.fpn": "FPN",
    "rpn": "proposals",
    "rpn.head": "RPN head",
    "rpn.anchor_generator": "anchors",
    "roi_heads": "model glue",
    "roi_heads.box_roi_pool": "ROIAlign",
    "roi_heads.mask_roi_pool": "ROIAlign",
    "roi_heads.box_head": "box head",
    "roi_heads.box_predictor": "box head",
    "roi_heads.mask_head": "mask head",
    "roi_heads.mask_predictor": "mask head",
}
ATTRIBUTE_ROWS = {  # called through an attribute of the model: wrapped in place while profiling
    "rpn.assign_targets_to_anchors": "RPN targets",
    "rpn.fg_bg_sampler": "RPN targets",
    "rpn.box_coder.encode": "RPN targets",
    "rpn.compute_loss": "losses",
    "roi_heads.select_training_samples": "detection targets",
    "roi_heads.postprocess_detections": "detections",
    "transform.postprocess": "mask paste",
}
FUNCTION_ROWS = {
    "fastrcnn_loss": "losses",
    "maskrcnn_loss": "losses",
    "project_masks_on_boxes": "detection targets",
    "maskrcnn_inference": "mask paste",
}  # module functions of torchvision.models.detection.roi_heads
EVALUATE = "autograd::engine::evaluate_function: "


def _torch_range(row: str, prefix: str = PREFIX):
    from torch.profiler import record_function

    return record_function(prefix + row)


@contextlib.contextmanager
def torch_phase_ranges(model):
    """A ``phase::<row>`` range around each listed module forward, method and function."""
    from torchvision.models.detection import roi_heads

    def hook(module, row, stack):
        open_ranges = []
        pre = module.register_forward_pre_hook(lambda *_: open_ranges.append(_torch_range(row).__enter__()))
        post = module.register_forward_hook(lambda *_: open_ranges.pop().__exit__(None, None, None))
        stack.callback(pre.remove), stack.callback(post.remove)

    with contextlib.ExitStack() as stack:
        for path, row in MODULE_ROWS.items():
            hook(model.get_submodule(path), row, stack)
        for path, row in ATTRIBUTE_ROWS.items():
            owner, _, attr = path.rpartition(".")
            _wrap_attribute(
                functools.reduce(getattr, owner.split("."), model), attr, functools.partial(_torch_range, row), stack
            )
        for name, row in FUNCTION_ROWS.items():
            _wrap_attribute(roi_heads, name, functools.partial(_torch_range, row), stack)
        yield


def torch_train_step(theirs, k: int):
    """Theirs.train_step, each part in its own range."""
    import torch

    batch = theirs.batches[k % len(theirs.batches)]
    with _torch_range("model glue"):
        losses = theirs.model([b[0] for b in batch], [b[1] for b in batch])
    with _torch_range("losses"):
        loss = sum(losses.values())
    with _torch_range("zero_grad"):
        theirs.optimizer.zero_grad(set_to_none=True)
    with _torch_range("backward"):
        loss.backward()
    with _torch_range("grad clipping"):
        torch.nn.utils.clip_grad_norm_(theirs.params, 5.0)
    with _torch_range("optimizer step"):
        theirs.optimizer.step()


def torch_infer_step(theirs, images):
    """Theirs.infer, with the uint8 -> float conversion in the transform row."""
    import torch

    with torch.no_grad():
        with _torch_range("transform"):
            tensors = [torch.from_numpy(im.copy()).permute(2, 0, 1).float().div_(255.0) for im in images]
        with _torch_range("model glue"):
            theirs.model(tensors)


def _owner(event):
    """The innermost step, phase range or backward node around ``event`` (itself included)."""
    while event is not None and not (event.name == STEP or event.name.startswith((PREFIX, EVALUATE))):
        event = event.cpu_parent
    return event


def torch_profile(events) -> Profile:
    steps = [e for e in events if e.name == STEP]
    n = len(steps)
    prof = Profile(walls=[e.cpu_time_total / 1e3 for e in steps])
    owners = {e.id: _owner(e) for e in events}
    # sequence_nr -> (start, row) of the forward op that made the autograd node. Ops that make none (no
    # grad) share the number with the next op that does, which runs after them: take the latest.
    made_by, candidates = {}, collections.defaultdict(set)
    for e in events:
        owner = owners[e.id]
        if (
            e.sequence_nr >= 0
            and owner is not None
            and owner.name.startswith(PREFIX)
            and owner.name != PREFIX + "backward"
        ):
            candidates[e.sequence_nr].add(owner.name)
            if e.sequence_nr not in made_by or e.time_range.start >= made_by[e.sequence_nr][0]:
                made_by[e.sequence_nr] = (e.time_range.start, owner.name[len(PREFIX) :])
    for e in events:
        owner, ms = owners[e.id], e.self_cpu_time_total / 1e3 / n
        if owner is None:
            continue
        if owner.name == STEP:
            prof.fwd["untraced"] += ms
        elif owner.name.startswith(EVALUATE):
            fallback = "grad aggregation" if "AccumulateGrad" in owner.name else "backward other"
            prof.bwd[made_by[owner.sequence_nr][1] if owner.sequence_nr in made_by else fallback] += ms
        elif owner.name == PREFIX + "backward":
            prof.bwd["backward other"] += ms
        else:
            prof.fwd[owner.name[len(PREFIX) :]] += ms
        if e is not owner:
            prof.top[e.name] += ms
    nodes = [e for e in events if e.name.startswith(EVALUATE)]
    prof.note = f"torchvision: {len(events) // n} profiler events per step"
    if nodes:
        matched = sum(e.sequence_nr in made_by for e in nodes) // n
        shared = sum(len(candidates.get(e.sequence_nr, ())) > 1 for e in nodes) // n
        prof.note += (
            f", {matched} of {len(nodes) // n} backward nodes matched to a forward op by sequence_nr (the "
            f"rest are AccumulateGrad), {shared} of them through a number also held by no-grad ops of "
            f"another row (latest op taken)"
        )
    return prof


# ---------------------------------------------------------------------------------------- both
def profile_both(ours_step, ours_model, theirs_step, theirs_model, reps: int) -> tuple[Profile, Profile]:
    """WARMUP steps each, then ``reps`` profiled steps each, interleaved, under both profilers."""
    import tensorflow as tf
    from torch.profiler import ProfilerActivity, profile

    for k in range(WARMUP):
        ours_step(k), theirs_step(k)
    logdir = Path(tempfile.mkdtemp(prefix="profile_step_tf_"))
    cpu = [0.0, 0.0]
    try:
        with torch_phase_ranges(theirs_model), profile(activities=[ProfilerActivity.CPU]) as prof:
            tf.profiler.experimental.start(str(logdir))
            for k in range(WARMUP, WARMUP + reps):
                t0 = sum(os.times()[:2])  # user + system CPU seconds of this process
                with tf.profiler.experimental.Trace(STEP):
                    ours_step(k)
                t1 = sum(os.times()[:2])
                with _torch_range(STEP, prefix=""):
                    theirs_step(k)
                cpu[0], cpu[1] = cpu[0] + t1 - t0, cpu[1] + sum(os.times()[:2]) - t1
            tf.profiler.experimental.stop()
        result = ours_profile(max(logdir.rglob("*.xplane.pb")), layer_rows(ours_model)), torch_profile(prof.events())
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    for p, seconds in zip(result, cpu):
        p.cores = seconds * 1e3 / sum(p.walls)
    return result


# ---------------------------------------------------------------------------------------- report
def _cell(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 0.5 else ("0" if value == 0 else f"{value:.1f}")


def _signed(value: float) -> str:
    return f"{value:+.0f}" if abs(value) >= 0.5 else "0"


def _table(ours: Profile, theirs: Profile) -> list[str]:
    walls = [sum(p.walls) / len(p.walls) for p in (ours, theirs)]
    lines = [
        "| phase | ours fwd | ours bwd | ours total | ours % | ours op ms | tv fwd | tv bwd | tv total | tv % "
        "| diff ours-tv |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in ROWS:
        if max(ours.total(row), theirs.total(row)) < 0.05:
            continue
        cells = []
        for p, wall in zip((ours, theirs), walls):
            cells += ["", ""] if row in UNSPLIT else [_cell(p.fwd[row]), _cell(p.bwd[row])]
            cells += [_cell(p.total(row)), f"{100 * p.total(row) / wall:.1f}"]
            cells += [_cell(p.ops[row]) if row in p.ops else ""] if p is ours else []
        lines.append(f"| {row} | {' | '.join(cells)} | {_signed(ours.total(row) - theirs.total(row))} |")
    lines.append(
        f"| **step wall** | | | **{walls[0]:.0f}** | 100 | {sum(ours.ops.values()):.0f} | | | "
        f"**{walls[1]:.0f}** | 100 | **{_signed(walls[0] - walls[1])}** |"
    )
    gaps = sorted(((ours.total(r) - theirs.total(r), r) for r in ROWS), reverse=True)
    gaps = ", ".join(f"{r} {_signed(d)} ms" for d, r in gaps[:4] if d >= 0.5) or "none"
    return lines + [
        "",
        f"Gap: ours - torchvision = {_signed(walls[0] - walls[1])} ms per step; largest positive "
        f"diffs (ours slower): {gaps}.",
    ]


def render(ours: Profile, theirs: Profile, args, loads) -> str:
    what = "training step" if args.phase == "train" else "inference call (ours `detect`, torchvision eval forward)"
    walls = ", ".join(
        f"{name} {sum(p.walls) / len(p.walls):.0f} ms ({', '.join(f'{w:.0f}' for w in p.walls)})"
        for name, p in (("ours", ours), ("torchvision", theirs))
    )
    lines = [
        SECTIONS[args.phase],
        "",
        f"`{args.command}` ({_dt.date.today().isoformat()}): where one {what} goes, batch {args.batch}, "
        f"ours (TF profiler) vs torchvision (torch.profiler), CPU, settings as in `## Model speed`. "
        f"{WARMUP} warm-up steps each, then {args.reps} profiled each, interleaved; ms per step (mean over "
        f"the profiled steps). Ours' rows share the wall out among concurrent ops; `ours op ms` is summed "
        f"op time, which counts overlapping ops twice.",
        "",
        model_speed.machine_facts(*loads),
        "",
        f"Step wall under the profilers: {walls}; CPU busy {ours.cores:.2f} / {theirs.cores:.2f} cores of 2 "
        f"(ours / torchvision; lower = the shared machine took the rest).",
        "",
        *(
            [
                f"**Warning**: below {BUSY_WARNING} cores busy the machine was contended: absolute ms are "
                "inflated and shares distorted; re-run on a quiet machine.",
                "",
            ]
            if min(ours.cores, theirs.cores) < BUSY_WARNING
            else []
        ),
        *_table(ours, theirs),
        "",
        "Top 10 ops, ms per step (ours: summed op time by TF op type, overlaps counted twice; torchvision: "
        "self time by op):",
        "",
        "| # | ours op | ms | torchvision op | ms |",
        "|---:|---|---:|---|---:|",
    ]
    for i, ((o, om), (t, tm)) in enumerate(zip(ours.top.most_common(10), theirs.top.most_common(10)), 1):
        lines.append(f"| {i} | `{o}` | {om:.0f} | `{t}` | {tm:.0f} |")
    return "\n".join(lines + ["", f"Counts: {ours.note}; {theirs.note}.", "", CAVEATS, ""])


CAVEATS = """\
How the rows are attributed:
- Ours: an op's row is the Keras layer in its name scope; unnamed layers (activations, adds, reshapes) \
take the row of the layer feeding them; ops of the model outside any layer are "model glue". \
CropAndResize and its gradient are async kernels, read from `ExecutorState::ProcessAsync::Start` events \
("ROIAlign"; the mask-target crops in `proposal_targets` are "detection targets"). Two inter-op threads \
share the 2 cores and one intra-op pool, so an op's duration includes waiting for the other's work (a \
small elementwise op next to a big conv can last tens of ms); sharing the wall out among the ops running \
at each instant limits but does not remove that: rows of small ops overlapping big ones are upper bounds \
and vary between runs. "untraced" = wall - union of op intervals (executor gaps, Keras Python; in \
inference also the NumPy parts of `detect` outside molding/unmolding). Unscoped AddN ops outside the \
model are tape.gradient's gradient sums ("grad aggregation"); other ops outside the model and outside the \
`losses` / `weight_decay` / `diagnostics` name scopes (metric updates) are "other unscoped". "grad \
clipping" is the global norm (Square, Sum, Sqrt...) in the optimizer's scope; the rescaling multiplies \
stay in "optimizer step".
- torchvision: an event's self time goes to its innermost range, so "proposals" is `model.rpn` minus its \
head, anchors, targets (`assign_targets_to_anchors`, `fg_bg_sampler`, `box_coder.encode`) and loss, and \
"model glue" is the rest of the model forward and of `roi_heads`. Backward nodes are attributed through \
`sequence_nr`; AccumulateGrad nodes (writing `.grad`) are "grad aggregation". Weight decay is inside \
SGD's step ("optimizer step"). Mask targets (`project_masks_on_boxes`) are "detection targets", as in ours.
- Not like for like: ours computes RPN targets and anchor sampling in the input pipeline, outside the \
step. The profilers add overhead (torchvision's more, per small op), and the machine is shared: compare \
shares more than absolute ms, and check the CPU-busy figure."""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=1, choices=[1, 2])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--phase", choices=["train", "infer"], default="train")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    args.command = " ".join(
        ["bench/.venv-bench/bin/python bench/profile_step.py", *(sys.argv[1:] if argv is None else argv)]
    )
    import torch  # noqa: F401  (torch and torchvision before TensorFlow: the other order segfaults)
    import torchvision  # noqa: F401

    loads = [os.getloadavg()]
    dataset = model_speed.prepare_data()
    model_dir = tempfile.mkdtemp(prefix="profile_step_logs_")
    ours, theirs = model_speed.Ours(dataset, model_dir), model_speed.Theirs(dataset)
    with contextlib.ExitStack() as stack:
        if args.phase == "train":
            n_batches = max(1, min(len(dataset.image_ids) // args.batch, WARMUP + args.reps))
            theirs.setup_train(ours.setup_train(args.batch, n_batches))
            ours_step, theirs_step = ours.train_step, functools.partial(torch_train_step, theirs)
        else:
            import tensorflow as tf

            images = [dataset.load_image(i) for i in dataset.image_ids[: args.batch]]
            ours.setup_infer(args.batch)
            theirs.setup_infer()
            for attr, row in (("mold_inputs", "transform"), ("unmold_detections", "mask paste")):
                _wrap_attribute(
                    ours.model, attr, functools.partial(tf.profiler.experimental.Trace, PREFIX + row), stack
                )
            ours_step, theirs_step = (lambda _k: ours.infer(images)), (lambda _k: torch_infer_step(theirs, images))
        profiles = profile_both(ours_step, ours.model.keras_model, theirs_step, theirs.model, args.reps)
    shutil.rmtree(model_dir, ignore_errors=True)
    loads.append(os.getloadavg())
    text = render(*profiles, args, loads)
    print("\n" + text)
    if not args.no_write:
        write_section(SECTIONS[args.phase], text)
        print(f"wrote {model_speed.RESULTS}")


if __name__ == "__main__":
    main()
