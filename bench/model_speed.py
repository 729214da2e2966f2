"""Mask R-CNN train-step and inference speed: ours (TF/Keras) vs torchvision's maskrcnn_resnet50_fpn.

Both models: ResNet-50 FPN, frozen BatchNorm, random init, 2 classes, 512x512 input, the same ROI
counts (see SETTINGS_DOC). Timings of the two are interleaved in one process (ours, theirs, ours,
theirs, ...) and reported as medians and as a ratio ours/theirs, since the machine is shared and noisy.
Peak RSS per framework is measured in separate child processes (``--only ours|torch``), because RSS
is process-wide.

Needs the bench virtualenv (torch + torchvision next to the project's requirements)::

    python3.11 -m venv bench/.venv-bench
    bench/.venv-bench/bin/pip install -r requirements.txt -r bench/requirements.txt
    bench/.venv-bench/bin/pip install -e . --no-deps
    bench/.venv-bench/bin/python bench/model_speed.py            # writes bench/RESULTS.md "## Model speed"

Options: ``--reps N`` timed reps per model and phase (default 5), ``--batches 1 2``, ``--no-memory``
(skip the child processes), ``--no-write`` (print only), ``--bfloat16`` (both in bfloat16: ours with
``MIXED_PRECISION="mixed_bfloat16"``, torchvision under ``torch.autocast("cpu", torch.bfloat16)``;
writes ``## Model speed, bfloat16``; worth it only on CPUs with bfloat16 instructions).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))
from results import machine_facts as section_facts  # noqa: E402  (bench/results.py)
from results import write_section

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DATA_DIR = os.path.join(
    ROOT, "bench", ".cache", "facemask_512"
)  # bench/pipeline.py caches 384x512 images in "facemask"
RESULTS = os.path.join(ROOT, "bench", "RESULTS.md")
SECTIONS = {"float32": "## Model speed", "bfloat16": "## Model speed, bfloat16"}
PRECISION = "float32"  # or "bfloat16" (--bfloat16): the precision both frameworks compute in
SIZE = 512
THREADS = 2

SETTINGS_DOC = """\
- Both: ResNet-50 FPN (256 pyramid channels, 1024-wide box head, 4x256 mask-head convs, 28x28 masks), \
random init, NUM_CLASSES=2 (background + mask), 512x512 input (the synthetic images are 512x512, no \
rescale), anchors 32..512 x ratios (0.5, 1, 2), frozen BatchNorm (ours: TRAIN_BN=False, all layers \
trainable; torchvision: `resnet_fpn_backbone("resnet50", norm_layer=FrozenBatchNorm2d, \
trainable_layers=5)`), SGD lr 0.001, momentum 0.9, weight decay 1e-4, gradient-norm clip 5 (ours: \
global_clipnorm; torchvision: clip_grad_norm_).
- RPN: 256 sampled anchors per image; 2000 ROIs kept after NMS (0.7) in training, 1000 at inference. \
Pre-NMS: ours PRE_NMS_LIMIT=2000 over *all* levels; torchvision `rpn_pre_nms_top_n_train=2000` / \
`_test=1000` *per level* (so torchvision feeds up to 5x more boxes into its NMS).
- Heads: 512 sampled ROIs per image, 25% positive (ours TRAIN_ROIS_PER_IMAGE=512, ROI_POSITIVE_RATIO=0.25; \
torchvision box_batch_size_per_image=512, box_positive_fraction=0.25).
- Detection: up to 100 per image, score threshold 0.0 (ours DETECTION_MIN_CONFIDENCE=0.0; torchvision \
box_score_thresh=0.0), per-class NMS 0.5 (ours DETECTION_NMS_THRESHOLD=0.5), masks pasted at full image size.
- Train step: ours `keras_model.train_on_batch(batch)` on batches pulled from \
`mrcnn.data.pipeline.build_dataset(..., augmentation=None, shuffle=False)` before timing (only the model \
step is timed); torchvision: train-mode forward with targets (boxes/labels/masks from `load_mask` + \
`extract_bboxes` of the same images), sum of losses, backward, clip, SGD step. Inputs are already \
tensors in both cases.
- Inference: ours `model.detect([images])` (inference-mode graph, IMAGES_PER_GPU=batch, includes \
molding and numpy mask pasting; the class logits' biases favour the foreground class, so every image \
returns 100 detections as torchvision's do, since ours runs the mask head on real detections only); torchvision `model.eval()` forward under `torch.no_grad()` on the same \
uint8 images converted to float tensors (conversion included).
- Threads: torch.set_num_threads(2); TF intra-op threads 2.
- What still differs (Matterport's design in ours): ROIAlign samples each bin once \
(`crop_and_resize`, 7x7 / 14x14 points), torchvision's `MultiScaleRoIAlign` (sampling_ratio 2) four \
times; our frozen BatchNorm keeps gamma/beta trainable (only the statistics are frozen), \
`FrozenBatchNorm2d` freezes all four; our box and mask heads have BatchNorm after each conv/fc; our \
weight decay is Matterport's L2 loss term (WD * sum(w^2) / size(w)), torchvision's is SGD's; our RPN \
anchor targets are computed in the input pipeline, outside the timed step."""


# ---------------------------------------------------------------------------------------- helpers
def maxrss_mib() -> float:
    """Peak resident memory of this process (MiB). Linux's VmHWM, not ``ru_maxrss``: the latter
    survives exec, so a child started by a 7 GB parent reported the parent's peak."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024.0  # kB
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def prepare_data():
    import facemask
    from facemask.synthetic import make_dataset

    make_dataset(DATA_DIR, n_train=16, n_val=4, seed=0, image_size=(SIZE, SIZE))
    return facemask.load_dataset(DATA_DIR, "train", verbose=False)


def our_config(batch: int, inference: bool, rpn_channels: int = 512):
    import facemask

    return facemask.make_config(
        "gpu",
        IMAGE_MIN_DIM=SIZE,
        IMAGE_MAX_DIM=SIZE,
        BACKBONE="resnet50",
        NUM_CLASSES=2,
        IMAGES_PER_GPU=batch,
        GPU_COUNT=1,
        TRAIN_ROIS_PER_IMAGE=512,
        ROI_POSITIVE_RATIO=0.25,
        POST_NMS_ROIS_TRAINING=2000,
        POST_NMS_ROIS_INFERENCE=1000,
        PRE_NMS_LIMIT=2000,
        RPN_TRAIN_ANCHORS_PER_IMAGE=256,
        DETECTION_MAX_INSTANCES=100,
        TRAIN_BN=False,
        DETECTION_MIN_CONFIDENCE=0.0 if inference else 0.9,
        DETECTION_NMS_THRESHOLD=0.5,
        MIXED_PRECISION="mixed_bfloat16" if PRECISION == "bfloat16" else False,
        RPN_CONV_CHANNELS=rpn_channels,
    )


# ---------------------------------------------------------------------------------------- ours
class Ours:
    def __init__(self, dataset, model_dir, rpn_channels: int = 512):
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(THREADS)
        self.dataset, self.model_dir, self.rpn_channels = dataset, model_dir, rpn_channels

    def setup_train(self, batch: int, n_batches: int):
        import keras

        from mrcnn.data.pipeline import build_dataset
        from mrcnn.model import MaskRCNN

        keras.backend.clear_session()
        cfg = our_config(batch, inference=False, rpn_channels=self.rpn_channels)
        self.model = MaskRCNN("training", cfg, self.model_dir)
        self.model.set_trainable("all")
        self.model.compile(0.001, 0.9)
        ds = build_dataset(self.dataset, cfg, shuffle=False, augmentation=None)
        self.batches = [b for _, b in zip(range(n_batches), ds)]
        # image ids in the same order, for the torchvision targets
        return [[int(i) for i in b["input_image_meta"][:, 0].numpy()] for b in self.batches]

    def train_step(self, k: int):
        self.model.keras_model.train_on_batch(self.batches[k % len(self.batches)])

    def setup_infer(self, batch: int):
        import keras

        from mrcnn.model import MaskRCNN

        self.model = None
        keras.backend.clear_session()
        self.model = MaskRCNN(
            "inference", our_config(batch, inference=True, rpn_channels=self.rpn_channels), self.model_dir
        )
        # Random weights leave some ROIs' argmax on background, and the mask head and the pasting run
        # on real detections only: bias the logits to foreground so every image returns 100, as
        # torchvision's (which scores every class of every box).
        logits = self.model.keras_model.get_layer("mrcnn_class_logits")
        kernel, bias = logits.get_weights()
        bias[1:] += 20.0
        logits.set_weights([kernel, bias])

    def infer(self, images) -> int:
        results = self.model.detect(images)
        return sum(len(r["scores"]) for r in results)

    def teardown(self):
        import keras

        self.model, self.batches = None, None
        keras.backend.clear_session()


# ---------------------------------------------------------------------------------------- torchvision
class Theirs:
    def __init__(self, dataset):
        import torch

        torch.set_num_threads(THREADS)
        torch.manual_seed(0)
        self.dataset = dataset
        self.targets = {}
        # torchvision's mixed precision: autocast runs convs/matmuls in bfloat16, weights stay float32
        self.autocast = (
            (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if PRECISION == "bfloat16" else contextlib.nullcontext
        )

    def build(self):
        import torch
        from torchvision.models.detection import MaskRCNN
        from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
        from torchvision.ops.misc import FrozenBatchNorm2d

        backbone = resnet_fpn_backbone(
            backbone_name="resnet50", weights=None, norm_layer=FrozenBatchNorm2d, trainable_layers=5
        )
        self.model = MaskRCNN(
            backbone,
            num_classes=2,
            min_size=SIZE,
            max_size=SIZE,
            rpn_pre_nms_top_n_train=2000,
            rpn_pre_nms_top_n_test=1000,
            rpn_post_nms_top_n_train=2000,
            rpn_post_nms_top_n_test=1000,
            rpn_nms_thresh=0.7,
            rpn_batch_size_per_image=256,
            rpn_positive_fraction=0.5,
            box_batch_size_per_image=512,
            box_positive_fraction=0.25,
            box_detections_per_img=100,
            box_score_thresh=0.0,
            box_nms_thresh=0.5,
        )
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.SGD(params, lr=0.001, momentum=0.9, weight_decay=1e-4)
        self.params = params

    def sample(self, image_id: int):
        import torch

        from mrcnn.ops.boxes import extract_bboxes

        if image_id not in self.targets:
            image = self.dataset.load_image(image_id)
            masks, class_ids = self.dataset.load_mask(image_id)
            boxes = extract_bboxes(masks)  # y1, x1, y2, x2 (exclusive)
            keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            boxes, masks, class_ids = boxes[keep], masks[..., keep], class_ids[keep]
            img = torch.from_numpy(image.copy()).permute(2, 0, 1).float().div_(255.0)
            target = {
                "boxes": torch.as_tensor(boxes[:, [1, 0, 3, 2]], dtype=torch.float32).reshape(-1, 4),
                "labels": torch.as_tensor(class_ids, dtype=torch.int64),
                "masks": torch.from_numpy(masks.transpose(2, 0, 1).astype("uint8")),
            }
            self.targets[image_id] = (img, target)
        return self.targets[image_id]

    def setup_train(self, id_batches):
        self.build()
        self.model.train()
        self.batches = [[self.sample(i) for i in ids] for ids in id_batches]

    def train_step(self, k: int):
        import torch

        batch = self.batches[k % len(self.batches)]
        with self.autocast():
            losses = self.model([b[0] for b in batch], [b[1] for b in batch])
            loss = sum(losses.values())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 5.0)
        self.optimizer.step()

    def setup_infer(self):
        self.build()
        self.model.eval()

    def infer(self, images) -> int:
        import torch

        with torch.no_grad(), self.autocast():
            tensors = [torch.from_numpy(im.copy()).permute(2, 0, 1).float().div_(255.0) for im in images]
            out = self.model(tensors)
        return sum(len(o["scores"]) for o in out)

    def teardown(self):
        self.model = self.optimizer = self.params = self.batches = None


# ---------------------------------------------------------------------------------------- runs
#: Our variants timed against torchvision: Matterport's layout (512-wide RPN conv, what
#: mask_rcnn_coco.h5 holds) and torchvision's own layout (the RPN conv as wide as the FPN, 256).
VARIANTS = {"ours": 512, "ours, RPN 256": 256}


def run_interleaved(batches, reps, warmup, log=print):
    """Timings of every variant of ours and of torchvision, interleaved (ours, ours RPN 256,
    torchvision, ours, ...); returns rows with {name: [seconds]} and maxrss after each phase."""
    import tempfile

    dataset = prepare_data()
    models = {
        name: Ours(dataset, tempfile.mkdtemp(prefix="bench_logs_"), channels) for name, channels in VARIANTS.items()
    }
    theirs = models["torchvision"] = Theirs(dataset)
    rows = []

    def interleave(phase, batch, call):
        first = {name: timed(lambda m=m: call(m, 0)) for name, m in models.items()}
        for k in range(1, warmup):
            for m in models.values():
                call(m, k)
        t = {name: [] for name in models}
        for k in range(reps):
            for name, m in models.items():
                t[name].append(timed(lambda m=m, k=k: call(m, warmup + k)))
            log(f"[b={batch}] {phase} rep {k}: " + "  ".join(f"{n} {v[-1]:.3f}s" for n, v in t.items()))
        return dict(phase=phase, batch=batch, times=t, first=first)

    for batch in batches:
        n_batches = max(1, min(len(dataset.image_ids) // batch, warmup + reps))
        t0 = time.perf_counter()
        ids = [m.setup_train(batch, n_batches) for name, m in models.items() if name != "torchvision"][0]
        theirs.setup_train(ids)
        log(f"[b={batch}] built training models in {time.perf_counter() - t0:.1f}s; image ids {ids}")
        rows.append({**interleave("train step", batch, lambda m, k: m.train_step(k)), "rss": maxrss_mib()})
        for m in models.values():
            m.teardown()
        images = [dataset.load_image(i) for i in dataset.image_ids[:batch]]
        for name, m in models.items():
            m.setup_infer() if name == "torchvision" else m.setup_infer(batch)
        dets = {name: m.infer(images) for name, m in models.items()}  # a second warm-up call each
        rows.append(
            {
                **interleave("inference", batch, lambda m, k, images=images: m.infer(images)),
                "dets": dets,
                "rss": maxrss_mib(),
            }
        )
        for m in models.values():
            m.teardown()
    return rows


def run_memory_only(which: str, batches):
    """One framework alone (child process): 2 steps per phase, maxrss after each phase, as JSON."""
    import tempfile

    dataset = prepare_data()
    out = {"baseline": maxrss_mib()}
    if which == "ours":
        model = Ours(dataset, tempfile.mkdtemp(prefix="bench_logs_"))
    else:
        model = Theirs(dataset)
    for batch in batches:
        if which == "ours":
            model.setup_train(batch, 2)
        else:
            model.setup_train([[int(i) for i in dataset.image_ids[k * batch : (k + 1) * batch]] for k in range(2)])
        model.train_step(0), model.train_step(1)
        out[f"train step/{batch}"] = maxrss_mib()
        model.teardown()
        images = [dataset.load_image(i) for i in dataset.image_ids[:batch]]
        model.setup_infer(batch) if which == "ours" else model.setup_infer()
        model.infer(images), model.infer(images)
        out[f"inference/{batch}"] = maxrss_mib()
        model.teardown()
    print("MEMORY_JSON " + json.dumps(out))


def child_memory(which: str, batches):
    cmd = [sys.executable, os.path.abspath(__file__), "--only", which, "--batches", *map(str, batches)]
    cmd += ["--bfloat16"] if PRECISION == "bfloat16" else []
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    for line in proc.stdout.splitlines():
        if line.startswith("MEMORY_JSON "):
            return json.loads(line[len("MEMORY_JSON ") :])
    print(f"memory child {which} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}", file=sys.stderr)
    return None


# ---------------------------------------------------------------------------------------- report
def machine_facts(load_start, load_end) -> str:
    import keras
    import tensorflow as tf
    import torch
    import torchvision

    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"Machine: {os.cpu_count()} CPU cores available ({cpu}), Python {platform.python_version()}, "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, torch {torch.__version__}, "
        f"torchvision {torchvision.__version__}; load average (1/5/15 min) "
        f"{' / '.join(f'{x:.2f}' for x in load_start)} at start, "
        f"{' / '.join(f'{x:.2f}' for x in load_end)} at end."
    )


def timing_cells(times: dict, ours: list[str]) -> tuple[list[str], list[str]]:
    """A row's "median (min-max)" cells (ours..., torchvision) and its bold ours / torchvision ratios."""
    med = {n: statistics.median(v) for n, v in times.items()}
    cells = [f"{med[n]:.3f} ({min(times[n]):.3f}-{max(times[n]):.3f})" for n in ours + ["torchvision"]]
    return cells, [f"**{med[n] / med['torchvision']:.2f}**" for n in ours]


def render(rows, memory, reps, warmup, load_start, load_end) -> str:
    date = _dt.date.today().isoformat()
    ours = list(VARIANTS)
    flag = " --bfloat16" if PRECISION == "bfloat16" else ""
    in_bf16 = (
        ' Both compute in bfloat16 with float32 weights: ours with `MIXED_PRECISION="mixed_bfloat16"` '
        "(box geometry and ROIAlign's boxes in float32), torchvision under "
        '`torch.autocast("cpu", dtype=torch.bfloat16)` (convs and matmuls in bfloat16, by autocast\'s op lists). '
        "Run on a CPU with bfloat16 instructions (avx512_bf16), where oneDNN computes them natively."
        if PRECISION == "bfloat16"
        else ""
    )
    lines = [
        SECTIONS[PRECISION],
        "",
        f"`bench/.venv-bench/bin/python bench/model_speed.py{flag}` ({date}): our Mask R-CNN vs torchvision "
        f"`MaskRCNN` with a ResNet-50 FPN backbone, on CPU, in one process. Per phase and batch size: "
        f"{warmup} (train) / {warmup + 1} (inference) untimed warm-up calls each (the first one traces/compiles), then {reps} timed calls "
        f"each, interleaved ({', '.join(ours)}, torchvision, {ours[0]}, ...); medians, min-max in brackets. "
        f'Ratios are ours / torchvision (below 1 = ours faster). "{ours[0]}" is Matterport\'s layout '
        f'(512-wide RPN conv); "{ours[1]}" has torchvision\'s own RPN width, so it computes what torchvision '
        f"computes (see Settings for what still differs).{in_bf16}",
        "",
        machine_facts(load_start, load_end),
        "",
        "| phase | batch | "
        + " | ".join(f"{n} s/iter" for n in ours)
        + " | torchvision s/iter | "
        + " | ".join(f"ratio {n} / tv" for n in ours)
        + " | first call "
        + " / ".join(ours + ["tv"])
        + " (s) |",
        "|---|---:|" + "---:|" * (2 * len(ours) + 2),
    ]
    for r in rows:
        cells, ratios = timing_cells(r["times"], ours)
        first = " / ".join(f"{r['first'][n]:.1f}" for n in ours + ["torchvision"])
        lines.append(f"| {r['phase']} | {r['batch']} | " + " | ".join(cells + ratios) + f" | {first} |")
    dets = [f"batch {r['batch']}: " + ", ".join(f"{n} {v}" for n, v in r["dets"].items()) for r in rows if "dets" in r]
    lines += [
        "",
        f"Detections returned per inference call (random-init weights, score threshold 0): {'; '.join(dets)}.",
    ]
    if memory and all(memory.values()):
        lines += [
            "",
            "Peak RSS (MiB, `VmHWM`, monotonic, so each column includes the phases before it), "
            "each framework alone in its own child process (2 calls per phase; the baseline is "
            "after imports and data loading; ours in Matterport's layout):",
            "",
            "| after | ours | torchvision |",
            "|---|---:|---:|",
        ]
        for key in memory["ours"]:
            lines.append(f"| {key} | {memory['ours'][key]:.0f} | {memory['torch'][key]:.0f} |")
    else:
        lines += [
            "",
            "Peak RSS of the shared timing process (all models loaded, so not separable): "
            + ", ".join(f"{r['phase']}/{r['batch']}: {r['rss']:.0f} MiB" for r in rows)
            + ".",
        ]
    lines += ["", "Settings:", "", SETTINGS_DOC, ""]
    return "\n".join(lines)


# Environment that caps each framework's kernels to an ISA (set before either is imported).
ISA_ENV = {"native": {}, "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}}
ISA_SECTION = "## Model speed by ISA"


def onednn_isa(env: dict) -> str:
    """The ISA TensorFlow's oneDNN reports under ``env`` (its verbose header, from one conv in a child)."""
    probe = "import tensorflow as tf; tf.nn.conv2d(tf.ones([1, 8, 8, 8]), tf.ones([3, 3, 8, 8]), 1, 'SAME')"
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env, "ONEDNN_VERBOSE": "1"},
    )
    for line in (proc.stdout + proc.stderr).splitlines():
        if ",isa:" in line:
            return line.split(",isa:", 1)[1].strip()
    return "unknown"


def run_isas(args) -> None:
    """One child per ISA (oneDNN and ATen capped by environment), one after the other in one sitting;
    each interleaves ours and torchvision as the plain run does. Writes ``## Model speed by ISA``."""
    import tempfile

    results = {}
    for isa in args.isas:
        env = ISA_ENV[isa]
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
            out = f.name
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--isa-child",
            out,
            "--no-memory",
            "--no-write",
            "--reps",
            str(args.reps),
            "--warmup",
            str(args.warmup),
            "--batches",
            *map(str, args.batches),
        ]
        if args.bfloat16:
            cmd.append("--bfloat16")
        print(f"== {isa}: {' '.join(f'{k}={v}' for k, v in env.items()) or '(no cap)'}", flush=True)
        subprocess.run(cmd, check=True, env={**os.environ, **env})
        with open(out, encoding="utf-8") as f:
            results[isa] = {**json.load(f), "onednn": onednn_isa(env)}
        os.unlink(out)
    text = render_isas(results, args)
    print("\n" + text)
    if not args.no_write:
        write_section(ISA_SECTION, text)
        print(f"wrote {RESULTS}")


def render_isas(results: dict, args) -> str:
    ours = list(VARIANTS)
    cpu_isa = section_facts()["isa"]
    lines = [
        ISA_SECTION,
        "",
        f"`bench/.venv-bench/bin/python bench/model_speed.py --isas {' '.join(args.isas)}` "
        f"({_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC): the `## Model speed` timing "
        f"({PRECISION}, {args.reps} timed calls each after {args.warmup} warm-up, interleaved ours / "
        "torchvision), once per ISA in its own process, one after the other on the same machine. `avx2` caps "
        "both frameworks' kernels: `ONEDNN_MAX_CPU_ISA=AVX2` (TensorFlow's oneDNN and torch's) and "
        "`ATEN_CPU_CAPABILITY=avx2` (torch's own kernels); the ISA each one ran is read back (oneDNN's verbose "
        f"header from a conv in TensorFlow; `torch.backends.cpu.get_cpu_capability()`). CPU flags: {cpu_isa}; "
        f"{os.cpu_count()} cores.",
        "",
        "| ISA | oneDNN (TF) ran | torch ran | phase | batch | "
        + " | ".join(f"{n} s/iter" for n in ours)
        + " | torchvision s/iter | "
        + " | ".join(f"ratio {n} / tv" for n in ours)
        + " | load start / end |",
        "|---|---|---|---|---:|" + "---:|" * (2 * len(ours) + 1) + "---|",
    ]
    for isa, res in results.items():
        load = " / ".join(f"{v[0]:.2f}" for v in res["load"])
        for r in res["rows"]:
            cells, ratios = timing_cells(r["times"], ours)
            lines.append(
                f"| {isa} | {res['onednn']} | {res['torch_capability']} | {r['phase']} | {r['batch']} | "
                + " | ".join(cells + ratios)
                + f" | {load} |"
            )
    native, capped = results.get("native"), results.get("avx2")
    if native and capped:
        lines += [
            "",
            "Slowdown under the AVX2 cap (avx2 median / native median, same phase and batch): "
            + "; ".join(
                f"{a['phase']} b{a['batch']}: ours {statistics.median(b['times'][ours[0]]) / statistics.median(a['times'][ours[0]]):.2f}x, "
                f"torchvision {statistics.median(b['times']['torchvision']) / statistics.median(a['times']['torchvision']):.2f}x"
                for a, b in zip(native["rows"], capped["rows"])
            )
            + ".",
        ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2, help="untimed calls per model and phase (>= 1; the first traces)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 2])
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--bfloat16", action="store_true", help="both frameworks in bfloat16 (CPUs with avx512_bf16)")
    p.add_argument("--only", choices=["ours", "torch"], help=argparse.SUPPRESS)
    p.add_argument(
        "--isas",
        nargs="+",
        choices=sorted(ISA_ENV),
        metavar="ISA",
        help="run the timing once per ISA (native, avx2), each in a child process with oneDNN and "
        "ATen capped to it; writes '## Model speed by ISA' with an ISA column",
    )
    p.add_argument("--isa-child", metavar="JSON", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    global PRECISION
    PRECISION = "bfloat16" if args.bfloat16 else "float32"
    if args.isas:
        return run_isas(args)
    # torch before TensorFlow: the other order segfaulted in torch's libtriton.so (clashing bundled LLVM)
    import torch  # noqa: F401
    import torchvision  # noqa: F401

    if args.only:
        run_memory_only(args.only, args.batches)
        return
    load_start = os.getloadavg()
    rows = run_interleaved(args.batches, args.reps, max(1, args.warmup), log=lambda s: print(s, flush=True))
    if args.isa_child:
        with open(args.isa_child, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "rows": rows,
                    "torch_capability": torch.backends.cpu.get_cpu_capability(),
                    "load": [load_start, os.getloadavg()],
                },
                f,
            )
        return
    memory = None
    if not args.no_memory:
        memory = {w: child_memory(w, args.batches) for w in ("ours", "torch")}
    text = render(rows, memory, args.reps, max(1, args.warmup), load_start, os.getloadavg())
    print("\n" + text)
    if not args.no_write:
        write_section(SECTIONS[PRECISION], text)
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
