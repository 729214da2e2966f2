"""The gpu profile (Matterport's ResNet-101 FPN at 1024 px) fine-tuned from COCO weights, measured on
this machine's CPU: train-step time and peak RSS for the heads stage and the all stage at batch 1 and 2,
the same at 512 px (the CPU recipe from COCO weights), and an on-paper estimate for a 16 GB T4.

    python bench/gpu_profile.py                 # writes "## GPU profile from COCO weights" in RESULTS.md
    python bench/gpu_profile.py --steps 3 --sizes 1024 --no-write

The COCO file is the stand-in of tools/coco_standin.py (Matterport's layout, random weights: the step
time and memory do not depend on the values; nothing can be downloaded here). Each (stage, batch, size)
runs in its own child process, so its peak RSS (VmHWM) is its own; the first two steps (tracing) are
timed apart. The train step is ``train_on_batch`` on the synthetic set's batches, as ``train.py`` runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))
from results import machine_facts, write_section  # noqa: E402  (bench/results.py)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
CACHE = os.path.join(ROOT, "bench", ".cache")
STANDIN = os.path.join(CACHE, "mask_rcnn_coco_standin.h5")
DATA_DIR = os.path.join(CACHE, "facemask")
TITLE = "## GPU profile from COCO weights"

# NVIDIA T4 (Colab's free GPU): datasheet peaks, and the share of them a detection train step reaches
# (convolutions near peak, the rest - NMS, ROIAlign, gathers, small matmuls - far below it).
T4 = {"memory_gib": 15.0, "fp32_tflops": 8.1, "fp16_tflops": 65.0, "efficiency": 0.35, "fp16_efficiency": 0.15}


def config(batch: int, size: int, profile: str = "gpu"):
    import facemask

    return facemask.make_config(
        profile, IMAGE_MIN_DIM=size, IMAGE_MAX_DIM=size, IMAGES_PER_GPU=batch, MIXED_PRECISION=False
    )


def status_mib(key: str) -> float:
    """``VmHWM`` (peak resident memory) or ``VmRSS`` (resident now) of this process, MiB."""
    with open("/proc/self/status", encoding="ascii") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":")) / 1024.0


def conv_macs(keras_model) -> dict[str, float]:
    """Multiply-accumulates of one image's forward pass, by part, from the convolutions' static output
    shapes (backbone, FPN, RPN) and the heads' per-ROI sizes."""
    import keras

    from mrcnn.model.weights import iter_layers

    parts = {"backbone": 0.0, "fpn": 0.0, "rpn": 0.0}
    for layer in iter_layers(keras_model):
        if not isinstance(layer, keras.layers.Conv2D) or isinstance(layer, keras.layers.Conv2DTranspose):
            continue
        kh, kw, cin, cout = layer.kernel.shape
        nodes = getattr(layer, "_inbound_nodes", [])  # the RPN conv is shared by 5 levels: a node each
        shapes = [node.output_tensors[0].shape for node in nodes] or [layer.output.shape]
        pixels = sum(int(s[1]) * int(s[2]) for s in shapes if s[1] is not None)
        part = "rpn" if layer.name.startswith("rpn") else "fpn" if layer.name.startswith("fpn") else "backbone"
        parts[part] += pixels * kh * kw * cin * cout
    return parts


def head_macs(cfg, rois: int, positive: int) -> dict[str, float]:
    """The box head (7x7x256 -> 1024 -> 1024, the class and box layers) on ``rois`` ROIs and the mask
    head (4 3x3 convs at 14x14, a 2x2 stride-2 deconv to 28x28, the class masks) on ``positive`` ROIs."""
    fc = cfg.FPN_CLASSIF_FC_LAYERS_SIZE
    box = rois * (7 * 7 * 256 * fc + fc * fc + fc * cfg.NUM_CLASSES * 5)
    ch = cfg.MASK_HEAD_CHANNELS
    # A stride-2 2x2 transposed conv touches each output pixel with one kernel tap per channel pair.
    mask = positive * (4 * 14 * 14 * 9 * 256 * ch + 28 * 28 * ch * ch + 28 * 28 * ch * cfg.NUM_CLASSES)
    return {"box_head": box, "mask_head": mask}


def child(layers: str, batch: int, size: int, steps: int, profile: str = "gpu") -> dict:
    import tensorflow as tf

    import facemask
    from mrcnn.data.pipeline import build_dataset
    from mrcnn.model import MaskRCNN
    from mrcnn.model.weights import CLASS_SPECIFIC_HEADS

    tf.config.threading.set_intra_op_parallelism_threads(2)
    cfg = config(batch, size, profile)
    dataset = facemask.load_dataset(DATA_DIR, "train", verbose=False)
    t0 = time.perf_counter()
    model = MaskRCNN("training", cfg, os.path.join(CACHE, "logs"))
    model.load_weights(STANDIN, exclude=list(CLASS_SPECIFIC_HEADS), verbose=0)
    trained = model.set_trainable(layers)
    model.compile(0.001, 0.9)
    build_s = time.perf_counter() - t0
    ds = build_dataset(dataset, cfg, shuffle=False, augmentation=None)
    batches = [b for _, b in zip(range(4), ds)]
    rest_mib = status_mib("VmRSS")  # model, optimizer slots, batches and TensorFlow, before any step
    times = []
    for k in range(steps + 2):
        t = time.perf_counter()
        model.keras_model.train_on_batch(batches[k % len(batches)])
        times.append(time.perf_counter() - t)
    macs = conv_macs(model.keras_model)
    macs.update(head_macs(cfg, cfg.TRAIN_ROIS_PER_IMAGE, int(cfg.TRAIN_ROIS_PER_IMAGE * cfg.ROI_POSITIVE_RATIO)))
    params = sum(int(v.numpy().size) for v in model.keras_model.weights)
    return {
        "layers": layers,
        "batch": batch,
        "size": size,
        "trained_layers": len(trained),
        "build_s": build_s,
        "first_steps_s": times[:2],
        "steps_s": times[2:],
        "peak_rss_mib": status_mib("VmHWM"),
        "rest_rss_mib": rest_mib,
        "forward_gmacs_per_image": {k: v / 1e9 for k, v in macs.items()},
        "parameters": params,
    }


def run_child(layers: str, batch: int, size: int, steps: int, profile: str) -> dict:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        layers,
        str(batch),
        str(size),
        "--steps",
        str(steps),
        "--profile",
        profile,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def estimate_t4(row: dict) -> dict:
    """On paper: a T4's step time from the FLOPs, and its memory from the CPU run's peak RSS.

    A train step costs ~3x the forward FLOPs where all layers train (forward, gradients for the
    activations and for the weights) and ~1x + 2x the heads' share where only the heads do. Memory:
    float32 weights, gradients and SGD momentum (3 x 4 bytes a parameter) plus the step's activations
    (the CPU run's peak RSS above its RSS at rest before the first step) plus ~0.6 GB for CUDA.
    """
    gmacs = row["forward_gmacs_per_image"]
    forward = 2 * sum(gmacs.values())  # GFLOPs
    heads = 2 * (gmacs["fpn"] + gmacs["rpn"] + gmacs["box_head"] + gmacs["mask_head"])
    step_gflops = row["batch"] * (3 * forward if row["layers"] == "all" else forward + 2 * heads)
    fp32 = step_gflops / (T4["fp32_tflops"] * 1e3 * T4["efficiency"])
    fp16 = step_gflops / (T4["fp16_tflops"] * 1e3 * T4["fp16_efficiency"])
    state_gib = 3 * 4 * row["parameters"] / 2**30
    return {"step_gflops": step_gflops, "t4_fp32_s": fp32, "t4_fp16_s": fp16, "state_gib": state_gib}


def render(
    rows: list[dict], facts: dict, steps: int, started: str, load_end: str, title: str = TITLE, profile: str = "gpu"
) -> str:
    model = (
        "The gpu profile (ResNet-101 FPN, Matterport's sizes: 512-wide RPN conv, 200 ROIs a image, "
        "1024-wide box head, 256-channel mask head, frozen BatchNorm)"
        if profile == "gpu"
        else "The r50 profile (ResNet-50 FPN at 512 px with Matterport's head sizes, 128 ROIs a image, frozen "
        "BatchNorm; COCO's ResNet-101 file loads into it by name)"
    )
    lines = [
        title,
        "",
        f"`python bench/gpu_profile.py{'' if profile == 'gpu' else ' --profile r50 --sizes 512'}` ({started}; {facts['cpu']} ({facts['isa']}), {facts['nproc']} cores, load "
        f"{facts['load']} at the start and {load_end} at the end; TensorFlow {facts.get('tensorflow', '?')}). "
        f"{model}, float32, from the COCO stand-in "
        "(tools/coco_standin.py: Matterport's layout, so the same load and the same model), "
        f"class heads excluded; `train_on_batch` steps, median of {steps} after 2 tracing steps; "
        "peak RSS of a child process per row (model, optimizer, TensorFlow and the step's activations).",
        "",
        "| size | stage | batch | layers trained | build + load | first 2 steps | step (median, min-max) | peak RSS |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = r["steps_s"]
        lines.append(
            f"| {r['size']} | {r['layers']} | {r['batch']} | {r['trained_layers']} | {r['build_s']:.0f} s | "
            f"{r['first_steps_s'][0]:.0f} s, {r['first_steps_s'][1]:.1f} s | {statistics.median(s):.2f} s "
            f"({min(s):.2f}-{max(s):.2f}) | {r['peak_rss_mib'] / 1024:.2f} GiB |"
        )
    big = [r for r in rows if r["size"] == max(x["size"] for x in rows)]
    if big:
        g = big[0]["forward_gmacs_per_image"]
        lines += [
            "",
            f"Forward pass at {big[0]['size']} px, per image (multiply-accumulates counted from the layer "
            "shapes): " + ", ".join(f"{k} {v:.1f} G" for k, v in g.items()) + f"; {big[0]['parameters']:,} parameters.",
        ]
    lines += [
        "",
        "**On paper, not measured: a 16 GB T4 (Colab).** Step time = the step's FLOPs (3x the forward "
        "pass where all layers train, the forward pass plus 2x the FPN/RPN/heads' share in the heads stage) / "
        f"({T4['fp32_tflops']} TFLOPS float32 x {T4['efficiency']:.0%}, or {T4['fp16_tflops']} TFLOPS float16 "
        f"tensor cores x {T4['fp16_efficiency']:.0%}: detection steps reach a fraction of the peak). Memory = "
        "float32 weights + gradients + SGD momentum, plus the step's activations (the CPU run's peak RSS above "
        "its RSS at rest before the first step; tracing's own peak is in there too, so this errs high), plus "
        "~0.6 GB of CUDA context.",
        "",
        "| size | stage | batch | step GFLOPs | T4 float32 | T4 float16 (`MIXED_PRECISION=True`) | GPU memory | fits 15 GiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        e = estimate_t4(r)
        activations = max(0.0, r["peak_rss_mib"] - r["rest_rss_mib"]) / 1024
        memory = e["state_gib"] + activations + 0.6
        lines.append(
            f"| {r['size']} | {r['layers']} | {r['batch']} | {e['step_gflops']:.0f} | ~{e['t4_fp32_s']:.2f} s | "
            f"~{e['t4_fp16_s']:.2f} s | ~{memory:.1f} GiB | {'yes' if memory < T4['memory_gib'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--child", nargs=3, metavar=("LAYERS", "BATCH", "SIZE"), help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, default=3, help="timed steps per row (after 2 tracing steps)")
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 512])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 2])
    p.add_argument(
        "--profile",
        choices=("gpu", "r50"),
        default="gpu",
        help="gpu (ResNet-101, the default) or r50 (ResNet-50 at 512 px: the CPU recipe from COCO "
        "weights; its own section)",
    )
    p.add_argument("--no-write", action="store_true")
    a = p.parse_args(argv)
    if a.child:
        layers, batch, size = a.child
        print(json.dumps(child(layers, int(batch), int(size), a.steps, a.profile)))
        return 0
    title = TITLE if a.profile == "gpu" else "## r50 profile from COCO weights (a CPU recipe)"
    os.makedirs(CACHE, exist_ok=True)
    if not os.path.isfile(STANDIN):
        from tools.coco_standin import write_coco_standin

        write_coco_standin(STANDIN)
    if not os.path.isfile(os.path.join(DATA_DIR, "train", "via_region_data.json")):
        from facemask.synthetic import make_dataset

        make_dataset(DATA_DIR, n_train=8, n_val=2, seed=0, image_size=(384, 512))
    facts = machine_facts()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows = []
    for size in a.sizes:
        for layers in ("heads", "all"):
            for batch in a.batches:
                if size < 1024 and batch > 1:
                    continue  # the CPU recipe: batch 1
                row = run_child(layers, batch, size, a.steps, a.profile)
                print(
                    f"{size} px {layers:5s} batch {batch}: step {statistics.median(row['steps_s']):.2f} s, "
                    f"peak RSS {row['peak_rss_mib'] / 1024:.2f} GiB",
                    flush=True,
                )
                rows.append(row)
    load_end = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    text = render(rows, facts, a.steps, started, load_end, title, a.profile)
    print(text)
    if not a.no_write:
        write_section(title, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
