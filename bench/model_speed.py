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
(skip the child processes), ``--no-write`` (print only).
"""
from __future__ import annotations

import argparse
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
from results import write_section  # noqa: E402  (bench/results.py)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DATA_DIR = os.path.join(ROOT, "bench", ".cache", "facemask_512")  # bench/pipeline.py caches 384x512 images in "facemask"
RESULTS = os.path.join(ROOT, "bench", "RESULTS.md")
SECTION = "## Model speed"
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
molding and numpy mask pasting); torchvision `model.eval()` forward under `torch.no_grad()` on the same \
uint8 images converted to float tensors (conversion included).
- Threads: torch.set_num_threads(2); TF intra-op threads 2."""


# ---------------------------------------------------------------------------------------- helpers
def maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def prepare_data():
    from facemask.synthetic import make_dataset
    import facemask

    make_dataset(DATA_DIR, n_train=16, n_val=4, seed=0, image_size=(SIZE, SIZE))
    return facemask.load_dataset(DATA_DIR, "train", verbose=False)


def our_config(batch: int, inference: bool):
    import facemask

    return facemask.make_config(
        "gpu", IMAGE_MIN_DIM=SIZE, IMAGE_MAX_DIM=SIZE, BACKBONE="resnet50", NUM_CLASSES=2,
        IMAGES_PER_GPU=batch, GPU_COUNT=1, TRAIN_ROIS_PER_IMAGE=512, ROI_POSITIVE_RATIO=0.25,
        POST_NMS_ROIS_TRAINING=2000, POST_NMS_ROIS_INFERENCE=1000, PRE_NMS_LIMIT=2000,
        RPN_TRAIN_ANCHORS_PER_IMAGE=256, DETECTION_MAX_INSTANCES=100, TRAIN_BN=False,
        DETECTION_MIN_CONFIDENCE=0.0 if inference else 0.9, DETECTION_NMS_THRESHOLD=0.5,
        MIXED_PRECISION=False)


# ---------------------------------------------------------------------------------------- ours
class Ours:
    def __init__(self, dataset, model_dir):
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(THREADS)
        self.dataset, self.model_dir = dataset, model_dir

    def setup_train(self, batch: int, n_batches: int):
        import keras
        from mrcnn.data.pipeline import build_dataset
        from mrcnn.model import MaskRCNN

        keras.backend.clear_session()
        cfg = our_config(batch, inference=False)
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
        self.model = MaskRCNN("inference", our_config(batch, inference=True), self.model_dir)

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

    def build(self):
        import torch
        from torchvision.models.detection import MaskRCNN
        from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
        from torchvision.ops.misc import FrozenBatchNorm2d

        backbone = resnet_fpn_backbone(backbone_name="resnet50", weights=None, norm_layer=FrozenBatchNorm2d,
                                       trainable_layers=5)
        self.model = MaskRCNN(
            backbone, num_classes=2, min_size=SIZE, max_size=SIZE,
            rpn_pre_nms_top_n_train=2000, rpn_pre_nms_top_n_test=1000,
            rpn_post_nms_top_n_train=2000, rpn_post_nms_top_n_test=1000,
            rpn_nms_thresh=0.7, rpn_batch_size_per_image=256, rpn_positive_fraction=0.5,
            box_batch_size_per_image=512, box_positive_fraction=0.25,
            box_detections_per_img=100, box_score_thresh=0.0, box_nms_thresh=0.5)
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

        with torch.no_grad():
            tensors = [torch.from_numpy(im.copy()).permute(2, 0, 1).float().div_(255.0) for im in images]
            out = self.model(tensors)
        return sum(len(o["scores"]) for o in out)

    def teardown(self):
        self.model = self.optimizer = self.params = self.batches = None


# ---------------------------------------------------------------------------------------- runs
def run_interleaved(batches, reps, warmup, log=print):
    """Timings of both, interleaved; returns rows and maxrss after each phase (process-wide)."""
    import tempfile

    dataset = prepare_data()
    ours, theirs = Ours(dataset, tempfile.mkdtemp(prefix="bench_logs_")), Theirs(dataset)
    rows = []
    for batch in batches:
        n_batches = max(1, min(len(dataset.image_ids) // batch, warmup + reps))
        # ---- train
        t0 = time.perf_counter()
        ids = ours.setup_train(batch, n_batches)
        theirs.setup_train(ids)
        log(f"[b={batch}] built training models in {time.perf_counter() - t0:.1f}s; image ids {ids}")
        first = {"ours": timed(lambda: ours.train_step(0)), "torchvision": timed(lambda: theirs.train_step(0))}
        for k in range(1, warmup):
            ours.train_step(k), theirs.train_step(k)
        t = {"ours": [], "torchvision": []}
        for k in range(reps):
            t["ours"].append(timed(lambda: ours.train_step(warmup + k)))
            t["torchvision"].append(timed(lambda: theirs.train_step(warmup + k)))
            log(f"[b={batch}] train rep {k}: ours {t['ours'][-1]:.3f}s  torchvision {t['torchvision'][-1]:.3f}s")
        rows.append(dict(phase="train step", batch=batch, ours=t["ours"], theirs=t["torchvision"],
                         first=first, rss=maxrss_mib()))
        ours.teardown(), theirs.teardown()
        # ---- inference
        images = [dataset.load_image(i) for i in dataset.image_ids[:batch]]
        ours.setup_infer(batch)
        theirs.setup_infer()
        first = {"ours": timed(lambda: ours.infer(images)), "torchvision": timed(lambda: theirs.infer(images))}
        dets = {"ours": ours.infer(images), "torchvision": theirs.infer(images)}
        for _ in range(2, warmup):  # the first call and the detection count are two warm-up calls
            ours.infer(images), theirs.infer(images)
        t = {"ours": [], "torchvision": []}
        for k in range(reps):
            t["ours"].append(timed(lambda: ours.infer(images)))
            t["torchvision"].append(timed(lambda: theirs.infer(images)))
            log(f"[b={batch}] infer rep {k}: ours {t['ours'][-1]:.3f}s  torchvision {t['torchvision'][-1]:.3f}s")
        rows.append(dict(phase="inference", batch=batch, ours=t["ours"], theirs=t["torchvision"],
                         first=first, dets=dets, rss=maxrss_mib()))
        ours.teardown(), theirs.teardown()
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
            model.setup_train([[int(i) for i in dataset.image_ids[k * batch:(k + 1) * batch]] for k in range(2)])
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
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    for line in proc.stdout.splitlines():
        if line.startswith("MEMORY_JSON "):
            return json.loads(line[len("MEMORY_JSON "):])
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
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"Machine: {os.cpu_count()} CPU cores available ({cpu}), Python {platform.python_version()}, "
            f"TensorFlow {tf.__version__}, Keras {keras.__version__}, torch {torch.__version__}, "
            f"torchvision {torchvision.__version__}; load average (1/5/15 min) "
            f"{' / '.join(f'{x:.2f}' for x in load_start)} at start, "
            f"{' / '.join(f'{x:.2f}' for x in load_end)} at end.")


def render(rows, memory, reps, warmup, load_start, load_end) -> str:
    date = _dt.date.today().isoformat()
    lines = [SECTION, "",
             f"`bench/.venv-bench/bin/python bench/model_speed.py` ({date}): our Mask R-CNN vs torchvision "
             f"`MaskRCNN` with a ResNet-50 FPN backbone, on CPU, in one process. Per phase and batch size: "
             f"{warmup} (train) / {max(2, warmup)} (inference) untimed warm-up calls each (the first one traces/compiles), then {reps} timed calls "
             f"each, interleaved (ours, torchvision, ours, ...); medians, min-max in brackets. The ratio is "
             f"ours / torchvision (below 1 = ours faster).", "",
             machine_facts(load_start, load_end), "",
             "| phase | batch | ours s/iter | torchvision s/iter | ratio ours/tv | ours per image | first call ours / tv (s) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        o, t = statistics.median(r["ours"]), statistics.median(r["theirs"])
        lines.append(
            f"| {r['phase']} | {r['batch']} | {o:.3f} ({min(r['ours']):.3f}-{max(r['ours']):.3f}) | "
            f"{t:.3f} ({min(r['theirs']):.3f}-{max(r['theirs']):.3f}) | **{o / t:.2f}** | {o / r['batch']:.3f} | "
            f"{r['first']['ours']:.1f} / {r['first']['torchvision']:.1f} |")
    dets = [f"batch {r['batch']}: ours {r['dets']['ours']}, torchvision {r['dets']['torchvision']}"
            for r in rows if "dets" in r]
    lines += ["", f"Detections returned per inference call (random-init weights, score threshold 0): {'; '.join(dets)}."]
    if memory and all(memory.values()):
        lines += ["", "Peak RSS (MiB, `ru_maxrss`, monotonic, so each column includes the phases before it), "
                  "each framework alone in its own child process (2 calls per phase; the baseline is "
                  "after imports and data loading):", "",
                  "| after | ours | torchvision |", "|---|---:|---:|"]
        for key in memory["ours"]:
            lines.append(f"| {key} | {memory['ours'][key]:.0f} | {memory['torch'][key]:.0f} |")
    else:
        lines += ["", "Peak RSS of the shared timing process (both frameworks loaded, so not separable): " +
                  ", ".join(f"{r['phase']}/{r['batch']}: {r['rss']:.0f} MiB" for r in rows) + "."]
    lines += ["", "Settings:", "", SETTINGS_DOC, ""]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2, help="untimed calls per model and phase (>= 1; the first traces)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 2])
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--only", choices=["ours", "torch"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    # torch before TensorFlow: the other order segfaulted in torch's libtriton.so (clashing bundled LLVM)
    import torch  # noqa: F401
    import torchvision  # noqa: F401
    if args.only:
        run_memory_only(args.only, args.batches)
        return
    load_start = os.getloadavg()
    rows = run_interleaved(args.batches, args.reps, max(1, args.warmup), log=lambda s: print(s, flush=True))
    memory = None
    if not args.no_memory:
        memory = {w: child_memory(w, args.batches) for w in ("ours", "torch")}
    text = render(rows, memory, args.reps, max(1, args.warmup), load_start, os.getloadavg())
    print("\n" + text)
    if not args.no_write:
        write_section(SECTION, text)
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
