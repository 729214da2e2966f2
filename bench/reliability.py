#!/usr/bin/env python
"""Reliability in figures: bad inputs through every command that reads them, SIGKILL faults during a
training and the resume after them, and the web app's memory and behaviour under load. Writes
``## Reliability`` in bench/RESULTS.md.

1. **Bad inputs x commands**: each broken input kind (images, VIA json, weights, arguments) through
   each command that reads it, run as a user runs it (a subprocess of the command line, a bounded
   time): the exit code, whether the error was one line or a traceback (or a hang), and what was
   left behind: ``complete`` outputs (the bad file skipped and named), ``nothing``, or ``partial``
   (half-written or temporary files, or files from a run that failed).
2. **Faults**: a tiny training killed with SIGKILL at a random moment, ``--kills`` times, each time
   resumed with ``--weights last``: whether the run resumed in the same folder, how many epochs were
   lost (at most the partial one), whether every checkpoint loads, whether each epoch is in the
   history once, and whether temporary files were left.
3. **App memory and load**: the app (uvicorn, the cpu profile with its class logits biased so every
   answer has DETECTION_MAX_INSTANCES detections: the worst case) on 127.0.0.1; one slot's memory is
   the server's peak RSS over idle (``/proc/PID/clear_refs`` resets the peak) while one 48-megapixel
   upload is answered, at two detection counts (the slot is a fixed part plus a part per detection,
   which ``facemask.app.SLOT_MB`` holds); then C concurrent clients for T seconds with normal,
   huge and bad uploads: answers by status code, p50/p99 latency per kind, the server's peak RSS
   against the bound (idle + slots x slot).

    python bench/reliability.py                    # everything (about 20 min on 2 cores)
    python bench/reliability.py --parts app --no-write
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from results import machine_facts, publish, write_section  # noqa: E402

SECTION = "## Reliability"
PY = sys.executable
ENV = {**os.environ, "CI": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
TRACEBACK = "Traceback (most recent call last)"


# ------------------------------------------------------------------------------------------ helpers
def run(cmd: list[str], timeout: float = 300, cwd=ROOT) -> dict:
    """A command line as a user runs it: exit code, seconds, and how it failed."""
    started = time.perf_counter()
    try:
        proc = subprocess.run([PY, *cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=ENV)
    except subprocess.TimeoutExpired:
        return {"rc": None, "verdict": "hang", "s": timeout, "stderr": ""}
    err = proc.stderr
    if TRACEBACK in err or TRACEBACK in proc.stdout:
        verdict = "traceback"
    elif proc.returncode == 0:
        verdict = "ok"
    else:
        lines = [ln for ln in err.strip().splitlines() if ln.startswith(("error:", "usage:")) or "error" in ln.lower()]
        verdict = "one line" if lines else "no message"
    return {"rc": proc.returncode, "verdict": verdict, "s": time.perf_counter() - started, "stderr": last_line(err)}


def last_line(text: str) -> str:
    """The last message line of a stderr (progress bars' carriage returns and TF's C++ log lines aside)."""
    lines = [ln.strip() for ln in text.replace("\r", "\n").splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith(("E0000", "W0000", "I0000", "WARNING: All log"))] or lines
    return lines[-1][:200] if lines else ""


def leftovers(*folders: Path) -> list[str]:
    """Temporary or half-written files under ``folders``."""
    out = []
    for folder in folders:
        if folder.exists():
            out += [
                str(p.relative_to(folder))
                for p in folder.rglob("*")
                if p.is_file() and (".tmp" in p.name or p.name.endswith((".partial", ".part")))
            ]
    return out


def jpeg(image, quality=90) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def smooth_image(h: int, w: int, seed: int = 0):
    """A photo-like image of any size (a synthetic scene scaled up): compresses as photos do."""
    import cv2
    import numpy as np

    from facemask.synthetic import draw_sample

    small, _ = draw_sample(np.random.default_rng(seed), 300, 400, negative=False)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


# ------------------------------------------------------------------------------------------ fixtures
def tiny_run(work: Path) -> tuple[Path, Path]:
    """(the tiny synthetic dataset, a trained tiny run folder): what evaluate/inference/export read."""
    from facemask.synthetic import make_dataset

    data = work / "data"
    make_dataset(data, n_train=6, n_val=3, seed=0, image_size=(128, 160))
    logs = work / "logs"
    r = run(
        [
            "train.py",
            "--dataset",
            str(data),
            "--profile",
            "tiny",
            "--logs",
            str(logs),
            "--augment",
            "none",
            "--stages",
            "all:0.01:1",
            "--steps-per-epoch",
            "2",
            "--no-eval",
        ],
        timeout=600,
    )
    if r["rc"] != 0:
        raise SystemExit(f"the tiny training failed: {r}")
    return data, next(logs.glob("facemask*"))


def bad_images(folder: Path) -> dict[str, Path]:
    """One file of each broken image kind, written into ``folder``."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    good = smooth_image(120, 160)
    kinds = {}

    def put(name, data):
        (folder / name).write_bytes(data)
        kinds[name.rsplit(".", 1)[0]] = folder / name

    full = jpeg(good)
    put("truncated.jpg", full[: len(full) // 2])
    put("zero_byte.jpg", b"")
    put("text.jpg", b"this is not an image\n" * 20)
    buf = io.BytesIO()
    Image.fromarray(good).convert("CMYK").save(buf, format="JPEG")
    put("cmyk.jpg", buf.getvalue())
    buf = io.BytesIO()
    Image.fromarray(good[..., 0].astype(np.uint16) * 257).save(buf, format="PNG")  # 16-bit grey
    put("sixteen_bit.png", buf.getvalue())
    img = Image.fromarray(good)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 on display
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    put("exif_rotated.jpg", buf.getvalue())
    put("huge_48mp.jpg", jpeg(smooth_image(6000, 8000), quality=70))
    buf = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buf, format="PNG")  # 400 MP of zeros in a small file
    put("decompression_bomb.png", buf.getvalue())
    return kinds


def via_json(images: list[str], region_class: str = "surgical") -> dict:
    poly = {"name": "polygon", "all_points_x": [20, 60, 60, 20], "all_points_y": [20, 20, 60, 60]}
    return {
        f"{n}0": {
            "filename": n,
            "size": 0,
            "file_attributes": {},
            "regions": [{"shape_attributes": poly, "region_attributes": {"mask_type": region_class}}],
        }
        for n in images
    }


# ------------------------------------------------------------------------------------------ part 1
def part_bad_inputs(work: Path, data: Path, run_dir: Path, log) -> list[dict]:
    rows = []
    checkpoint = sorted(run_dir.glob("mask_rcnn_facemask_*.h5"))[-1]
    kinds = bad_images(work / "bad_images")

    def record(kind, command, r, written):
        rows.append(
            {
                "kind": kind,
                "command": command,
                "rc": r["rc"],
                "verdict": r["verdict"],
                "written": written,
                "s": round(r["s"], 1),
                "message": r["stderr"],
            }
        )
        log(
            f"  {kind:24s} {command:12s} rc={r['rc']} {r['verdict']:10s} {written:9s} {r['s']:5.1f}s  "
            f"{r['stderr'][:110]}"
        )

    def fit_anchors_row(kind, folder, classes):
        out = folder / "anchors.json"
        cmd = ["-m", "facemask.fit_anchors", "--dataset", str(folder), "--profile", "tiny", "--quiet", *classes]
        r = run([*cmd, "--out", str(out)])
        record(kind, "fit-anchors", r, _written(r, [folder], [out], out.is_file()))

    # Images: one broken file beside a good one, through each command that reads images.
    good = jpeg(smooth_image(120, 160, seed=1))
    for kind, path in kinds.items():
        folder = work / "img" / kind
        for split in ("train", "val"):
            (folder / split).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, folder / split / path.name)
            (folder / split / "good.jpg").write_bytes(good)
            (folder / split / "via_region_data.json").write_text(json.dumps(via_json([path.name, "good.jpg"])))
        out = folder / "out"
        r = run(
            [
                "inference.py",
                "--weights",
                str(checkpoint),
                "--input",
                str(folder / "val"),
                "--output",
                str(out),
                "--no-progress",
            ]
        )
        pred = out / "predictions.json"
        complete = r["rc"] == 0 and pred.is_file() and json.loads(pred.read_text())["images"]
        record(kind, "inference", r, _written(r, [out], [pred], complete))
        ev_out = folder / "eval"
        r = run(
            [
                "evaluate.py",
                "--weights",
                str(checkpoint),
                "--dataset",
                str(folder),
                "--out",
                str(ev_out),
                "--no-progress",
            ]
        )
        record(kind, "evaluate", r, _written(r, [ev_out], [ev_out / "report.json"], (ev_out / "report.json").is_file()))
        logs = folder / "logs"
        r = run(
            [
                "train.py",
                "--dataset",
                str(folder),
                "--profile",
                "tiny",
                "--logs",
                str(logs),
                "--augment",
                "none",
                "--stages",
                "all:0.01:1",
                "--steps-per-epoch",
                "2",
                "--no-eval",
                "--anchors",
                "default",
            ],
            timeout=600,
        )
        checkpoints = list(logs.glob("*/mask_rcnn_*.h5"))
        record(kind, "train", r, _written(r, [logs], checkpoints, bool(checkpoints)))
        fit_anchors_row(kind, folder, [])

    # VIA json kinds, through the commands that read annotations.
    corpus = ROOT.parent / "shared" / "via_corpus" / "16_vital-ultrasound_echo_via3_project.json"
    for kind, text in {
        "invalid json": '{"a.jpg0": {"filename": "a.jpg", "regions": [',
        "VIA 3 project": corpus.read_text() if corpus.is_file() else '{"project": {}, "config": {}}',
        "no filename": json.dumps({"x": {"size": 1, "regions": []}}),
        "unknown class": json.dumps(via_json(["good.jpg"], "bandana")),
        "missing image": json.dumps(via_json(["absent.jpg"])),
    }.items():
        folder = work / "json" / kind.replace(" ", "_")
        for split in ("train", "val"):
            (folder / split).mkdir(parents=True, exist_ok=True)
            (folder / split / "good.jpg").write_bytes(good)
            (folder / split / "via_region_data.json").write_text(text)
        classes = ["--classes", "subtypes"] if kind == "unknown class" else []
        logs = folder / "logs"
        r = run(
            [
                "train.py",
                "--dataset",
                str(folder),
                "--profile",
                "tiny",
                "--logs",
                str(logs),
                *classes,
                "--stages",
                "all:0.01:1",
                "--steps-per-epoch",
                "1",
                "--no-eval",
            ],
            timeout=600,
        )
        made = list(logs.glob("*/mask_rcnn_*.h5"))
        record(kind, "train", r, _written(r, [logs], made, bool(made)))
        r = run(["evaluate.py", "--weights", str(checkpoint), "--dataset", str(folder), "--out", str(folder / "eval")])
        report = folder / "eval" / "report.json"
        record(kind, "evaluate", r, _written(r, [folder / "eval"], [report], report.is_file()))
        fit_anchors_row(kind, folder, classes)

    # Weights kinds, through the commands that load a checkpoint.
    weights_dir = work / "weights"
    weights_dir.mkdir(exist_ok=True)
    (weights_dir / "not_hdf5.h5").write_text("not an HDF5 file\n")
    bare = weights_dir / "tiny_bare.h5"
    shutil.copy(checkpoint, bare)  # no config.json beside it: the profile flag decides the model
    for kind, args in {
        "non-HDF5 weights": ["--weights", str(weights_dir / "not_hdf5.h5")],
        "wrong profile": ["--weights", str(bare), "--profile", "cpu"],
        "wrong classes": ["--weights", str(bare), "--profile", "tiny", "--classes", "subtypes"],
    }.items():
        out = work / "wout" / kind.replace(" ", "_")
        commands = {
            "inference": ["inference.py", *args, "--input", str(data / "val"), "--output", str(out / "infer")],
            "evaluate": ["evaluate.py", *args, "--dataset", str(data), "--out", str(out / "eval")],
            "export": ["-m", "facemask.export", *args, "--out", str(out / "export")],
            "train": [
                "train.py",
                "--dataset",
                str(data),
                *args,
                "--logs",
                str(out / "logs"),
                "--stages",
                "heads:0.01:1",
                "--steps-per-epoch",
                "1",
                "--no-eval",
            ],
            # the app loads its weights before it listens: a bad file must stop it with one line (a good one
            # would serve until the timeout, which reads as a hang)
            "app": ["app.py", *args, "--host", "127.0.0.1", "--port", str(free_port())],
        }
        own = {"inference": "infer", "evaluate": "eval", "export": "export", "train": "logs", "app": "app"}
        for command, cmd in commands.items():
            r = run(cmd, timeout=120 if command == "app" else 600)
            mine = out / own[command]  # this command's outputs only (train's run folder is not the app's)
            made = [p for p in mine.rglob("*") if p.is_file()]
            record(kind, command, r, _written(r, [out], made, bool(made)))

    # The broken images as uploads to the app's /api/predict: an answer (200) or one JSON error line.
    server = Server(["--weights", str(checkpoint), "--slots", "1"])
    try:
        for kind, path in kinds.items():
            record(kind, "app", *_upload(server, path))
    finally:
        served = server.stop()
    if TRACEBACK in served:  # a handler's exception the client saw only as a 500
        for row in rows:
            if row["command"] == "app" and row["rc"] == 500:
                row["verdict"] = "traceback"

    # Nonsense arguments.
    for kind, cmd in {
        "--stages heads:fast:3": ["train.py", "--stages", "heads:fast:3"],
        "--min-confidence 2": [
            "inference.py",
            "--weights",
            str(checkpoint),
            "--input",
            str(data),
            "--output",
            str(work / "args_out"),
            "--min-confidence",
            "2",
        ],
        "--batch-size 0": ["evaluate.py", "--weights", str(checkpoint), "--batch-size", "0"],
        "--dataset missing": ["train.py", "--dataset", str(work / "nowhere")],
        "--weights missing": ["evaluate.py", "--weights", str(work / "nowhere.h5")],
        "--format bmp": [
            "-m",
            "facemask.export",
            "--weights",
            str(checkpoint),
            "--format",
            "bmp",
            "--out",
            str(work / "x"),
        ],
    }.items():
        r = run(cmd, timeout=300)
        command = cmd[1].split(".")[-1].replace("_", "-") if cmd[0] == "-m" else cmd[0].replace(".py", "")
        made = [p for d in (work / "args_out", work / "x") if d.exists() for p in d.rglob("*") if p.is_file()]
        record(kind, command, r, _written(r, [work / "args_out", work / "x"], made, False))
    return rows


def _written(r: dict, folders: list[Path], outputs: list[Path], complete: bool) -> str:
    """``partial`` (temporary files left, or a failed command left its outputs), ``complete`` (it succeeded
    and wrote them) or ``nothing``."""
    if leftovers(*folders) or (r["rc"] != 0 and any(o.exists() for o in outputs)):
        return "partial"
    return "complete" if r["rc"] == 0 and complete else "nothing"


# ------------------------------------------------------------------------------------------ part 2
def part_faults(work: Path, kills: int, log, seed: int = 0) -> dict:
    """SIGKILL a tiny training at random moments (a random point of the epoch after the one it just
    finished: mid-step, mid-checkpoint or mid-history alike); resume with --weights last after each."""
    import h5py

    from facemask.synthetic import make_dataset

    data = work / "fault_data"
    make_dataset(data, n_train=6, n_val=3, seed=0, image_size=(128, 160))
    logs = work / "fault_logs"
    epochs = 4 * kills + 4
    base = [
        "train.py",
        "--dataset",
        str(data),
        "--profile",
        "tiny",
        "--logs",
        str(logs),
        "--augment",
        "none",
        "--steps-per-epoch",
        "4",
        "--no-eval",
    ]
    rng = random.Random(seed)
    events = []
    for k in range(kills):
        cmd = base + (
            ["--weights", "last"] if list(logs.glob("facemask*/*.h5")) else ["--stages", f"all:0.01:{epochs}"]
        )
        before = _epochs_done(logs)
        proc = subprocess.Popen([PY, *cmd], cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 600
        while _epochs_done(logs) <= before and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        t_epoch = time.time()
        while _epochs_done(logs) <= before + 1 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)  # one more epoch: how long an epoch takes here
        epoch_s = time.time() - t_epoch
        delay = rng.uniform(0.0, epoch_s)
        time.sleep(delay)
        at_kill = _epochs_done(logs)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        after = _epochs_done(logs)
        events.append(
            {
                "kill": k + 1,
                "epoch_s": round(epoch_s, 2),
                "into_epoch_s": round(delay, 2),
                "epochs_at_kill": at_kill,
                "epochs_after": after,
            }
        )
        log(
            f"  kill {k + 1}: {delay:.2f} s into an epoch of {epoch_s:.2f} s; epochs {at_kill} at the kill, "
            f"{after} after"
        )
    final = run(base + ["--weights", "last"], timeout=900)
    runs = list(logs.glob("facemask*"))
    run_dir = runs[0] if runs else None
    checkpoints = sorted(run_dir.glob("mask_rcnn_facemask_*.h5")) if run_dir else []
    loadable = 0
    for ckpt in checkpoints:
        try:
            with h5py.File(ckpt, "r") as f:
                loadable += int(len(f.keys()) > 0)
        except OSError:
            pass
    from mrcnn import runs as run_files

    epochs_seen = [int(r["epoch"]) for r in run_files.read_history(str(run_dir))] if run_dir else []
    return {
        "kills": kills,
        "events": events,
        "final_rc": final["rc"],
        "final_verdict": final["verdict"],
        "run_folders": len(runs),
        "epochs_planned": epochs,
        "epochs_done": _epochs_done(logs),
        "checkpoints": len(checkpoints),
        "loadable": loadable,
        "history_epochs": epochs_seen,
        "history_once": len(epochs_seen) == len(set(epochs_seen)) and epochs_seen == list(range(1, epochs + 1)),
        "leftovers": leftovers(logs),
    }


def _epochs_done(logs: Path) -> int:
    state = next(logs.glob("facemask*/state.json"), None) if logs.exists() else None
    return int(json.loads(state.read_text()).get("epoch", 0)) if state else 0


# ------------------------------------------------------------------------------------------ part 3
def _upload(server, path: Path) -> tuple[dict, str]:
    """(a run()-like result, what was left behind) for one upload: the HTTP status stands for the exit code;
    ``one line``: a 4xx whose JSON ``detail`` is one line; the app writes no files, so ``complete`` means an
    answer with its overlay."""
    import httpx

    t0 = time.perf_counter()
    try:
        r = httpx.post(server.base + "/api/predict", files={"file": (path.name, path.read_bytes())}, timeout=300)
    except httpx.HTTPError as e:
        return {"rc": None, "verdict": "hang", "s": time.perf_counter() - t0, "stderr": str(e)}, "nothing"
    s = time.perf_counter() - t0
    try:
        body = r.json()
    except ValueError:
        body = {}
    if r.status_code == 200:
        return (
            {
                "rc": 200,
                "verdict": "ok",
                "s": s,
                "stderr": f"{len(body.get('detections', []))} detections, "
                f"overlay {body.get('overlay_width')}x{body.get('overlay_height')}, {len(r.content)} bytes",
            },
            "complete" if body.get("overlay_png_base64") else "partial",
        )
    detail = body.get("detail") if isinstance(body, dict) else None
    one = isinstance(detail, str) and "\n" not in detail and 400 <= r.status_code < 500
    return (
        {
            "rc": r.status_code,
            "verdict": "one line" if one else "no message",
            "s": s,
            "stderr": detail if isinstance(detail, str) else r.text[:200],
        },
        "nothing",
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``app.py`` on 127.0.0.1 in a child process; its RSS and peak RSS from /proc."""

    def __init__(self, args: list[str]):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [PY, "app.py", *args, "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        import httpx

        deadline = time.time() + 300
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"app.py exited: {self.proc.stdout.read()[-2000:]}")
            try:
                if httpx.get(self.base + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(1)
        raise SystemExit("app.py did not start in 300 s")

    def _status(self, key: str) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))

    def rss(self) -> int:
        return self._status("VmRSS:")

    def peak(self) -> int:
        return self._status("VmHWM:")

    def reset_peak(self) -> None:
        with open(f"/proc/{self.proc.pid}/clear_refs", "w") as f:
            f.write("5")

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGINT)
        try:
            out, _ = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out


def post(base: str, data: bytes, name: str, timeout: float = 600) -> tuple[int, float, int]:
    import httpx

    t0 = time.perf_counter()
    try:
        r = httpx.post(base + "/api/predict", files={"file": (name, data)}, timeout=timeout)
        return r.status_code, time.perf_counter() - t0, len(r.content)
    except httpx.HTTPError:
        return 0, time.perf_counter() - t0, 0


def worst_case_checkpoint(work: Path) -> Path:
    """The cpu profile, random init, class logits biased to the mask class: every answer carries
    DETECTION_MAX_INSTANCES detections (the slot's worst case)."""
    import keras

    import facemask
    from mrcnn.model.maskrcnn import MaskRCNN
    from mrcnn.model.weights import save_weights_by_name

    keras.utils.set_random_seed(0)
    model = MaskRCNN("inference", facemask.make_config("cpu"), str(work / "unused"))
    logits = model.keras_model.get_layer("mrcnn_class_logits")
    kernel, bias = logits.get_weights()
    bias[1:] += 20.0
    logits.set_weights([kernel, bias])
    path = work / "worst_case_cpu.h5"
    save_weights_by_name(model.keras_model, str(path))
    return path


def part_app(work: Path, clients: int, seconds: float, log) -> dict:
    ckpt = worst_case_checkpoint(work)
    huge = jpeg(smooth_image(6000, 8000), quality=70)  # 48 MP
    normal = jpeg(smooth_image(480, 640))
    bad = b"not an image at all\n" * 50
    result = {"huge_bytes": len(huge), "slots": {}}
    for n in (20, 100):
        cfg = work / f"dets_{n}.json"
        cfg.write_text(json.dumps({"DETECTION_MAX_INSTANCES": n}))
        server = Server(
            ["--weights", str(ckpt), "--profile", "cpu", "--config", str(cfg), "--min-confidence", "0", "--slots", "1"]
        )
        try:
            post(server.base, normal, "warm.jpg")  # traces the graph: part of the model, not of a slot
            time.sleep(1)
            idle = server.rss()
            server.reset_peak()
            status, s, size = post(server.base, huge, "huge.jpg")
            peak = server.peak()
            import httpx

            body = httpx.post(server.base + "/api/predict", files={"file": ("h.jpg", huge)}, timeout=600).json()
            result["slots"][n] = {
                "idle_mb": idle / 2**20,
                "peak_mb": peak / 2**20,
                "slot_mb": (peak - idle) / 2**20,
                "status": status,
                "seconds": s,
                "answer_bytes": size,
                "detections": len(body.get("detections", [])),
                "overlay": [body.get("overlay_width"), body.get("overlay_height")],
                "detect_size": [body.get("width"), body.get("height")],
            }
            log(
                f"  {n} detections max: idle {idle / 2**20:.0f} MB, peak {peak / 2**20:.0f} MB -> slot "
                f"{(peak - idle) / 2**20:.0f} MB; answer {size / 1e6:.2f} MB, {result['slots'][n]['detections']} "
                f"detections, {s:.1f} s"
            )
        finally:
            server.stop()
    a, b = result["slots"][20], result["slots"][100]
    per_detection = (b["slot_mb"] - a["slot_mb"]) / 80.0
    result["slot_fixed_mb"] = a["slot_mb"] - 20 * per_detection
    result["slot_per_detection_mb"] = per_detection

    # Load: C clients for T seconds, a mix of normal, huge and bad uploads, the default slots.
    slots = 2
    server = Server(
        [
            "--weights",
            str(ckpt),
            "--profile",
            "cpu",
            "--min-confidence",
            "0",
            "--slots",
            str(slots),
            "--queue-timeout",
            "60",
        ]
    )
    try:
        post(server.base, normal, "warm.jpg")
        time.sleep(1)
        idle = server.rss()
        server.reset_peak()
        mix = [("normal", normal, "n.jpg")] * 6 + [("huge", huge, "h.jpg")] * 2 + [("bad", bad, "b.jpg")] * 2
        stop_at = time.time() + seconds
        answers = []

        def client(i):
            rng = random.Random(i)
            while time.time() < stop_at:
                kind, data, name = rng.choice(mix)
                status, s, size = post(server.base, data, name, timeout=300)
                answers.append((kind, status, s, size))

        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            list(pool.map(client, range(clients)))
        peak = server.peak()
    finally:
        server.stop()
    from facemask.app import SLOT_MB

    slot_mb = SLOT_MB  # the documented figure the bound is made of
    by_kind = collections.defaultdict(list)
    for kind, status, s, _ in answers:
        by_kind[kind].append((status, s))
    result["load"] = {
        "clients": clients,
        "seconds": seconds,
        "slots": slots,
        "requests": len(answers),
        "codes": dict(collections.Counter(str(st) for _, st, _, _ in answers)),
        "latency": {
            k: {
                "n": len(v),
                "p50": _pct([s for _, s in v], 50),
                "p99": _pct([s for _, s in v], 99),
                "codes": dict(collections.Counter(str(st) for st, _ in v)),
            }
            for k, v in by_kind.items()
        },
        "idle_mb": idle / 2**20,
        "peak_mb": peak / 2**20,
        "bound_mb": idle / 2**20 + slots * slot_mb,
    }
    log(
        f"  load: {len(answers)} requests, codes {result['load']['codes']}, peak {peak / 2**20:.0f} MB, bound "
        f"{result['load']['bound_mb']:.0f} MB"
    )
    return result


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


# ------------------------------------------------------------------------------------------ report
def render(bad: list[dict] | None, faults: dict | None, app: dict | None, args, load_start, load_end) -> str:
    from facemask.app import SLOT_MB

    facts = machine_facts()
    lines = [
        SECTION,
        "",
        f"`python bench/reliability.py` ({time.strftime('%Y-%m-%d')}); commands run as "
        "subprocesses of their command lines, each within a bounded time.",
        "",
    ]
    if bad is not None:
        tracebacks = [r for r in bad if r["verdict"] in ("traceback", "hang", "no message")]
        partial = [r for r in bad if r["written"] == "partial"]
        lines += [
            "### Bad inputs x commands",
            "",
            f"{len(bad)} runs: **{len(tracebacks)} tracebacks/hangs/silent failures, {len(partial)} partial "
            "outputs**. `complete`: the command succeeded, skipped and named the bad file; `nothing`: it "
            "stopped before writing anything. For `app`, the exit is the HTTP status of the upload (a bad weights file: "
            "the server's exit code before it listens).",
            "",
            "| input | command | exit | error | left behind | message (last line) |",
            "|---|---|---|---|---|---|",
        ]
        for r in bad:
            msg = r["message"].replace("|", "/")[:120]
            if msg.startswith(("E0000", "W0000", "I0000")):  # a run with no message of its own: TF's log only
                msg = ""
            lines.append(f"| {r['kind']} | {r['command']} | {r['rc']} | {r['verdict']} | {r['written']} | {msg} |")
        lines.append("")
    if faults is not None:
        f = faults
        lost = sum(max(0, e["epochs_at_kill"] - e["epochs_after"]) for e in f["events"])
        lines += [
            "### SIGKILL during training, then `--weights last`",
            "",
            f"A tiny training ({f['epochs_planned']} epochs of 4 steps) killed {f['kills']} times, each at a "
            "random point of an epoch (seconds into an epoch of that many seconds: "
            + ", ".join(f"{e['into_epoch_s']} of {e['epoch_s']}" for e in f["events"])
            + "), resumed with `--weights last` after each kill, then once more to the end:",
            "",
            f"- finished: exit {f['final_rc']} ({f['final_verdict']}), {f['epochs_done']} of "
            f"{f['epochs_planned']} epochs, in {f['run_folders']} run folder(s);",
            "- epochs done at each kill -> after it: "
            + ", ".join(f"{e['epochs_at_kill']} -> {e['epochs_after']}" for e in f["events"])
            + f" (finished epochs lost: {lost}; the epoch a kill hits is trained again);",
            f"- checkpoints loadable: {f['loadable']} of {f['checkpoints']}; history: epochs "
            f"{f['history_epochs']} ({'each once' if f['history_once'] else 'DUPLICATES'}); temporary files "
            f"left: {f['leftovers'] or 'none'}.",
            "",
        ]
    if app is not None:
        s20, s100 = app["slots"][20], app["slots"][100]
        ld = app["load"]
        lines += [
            "### The web app's memory and load",
            "",
            f"Worst case: the cpu profile with every answer at its detection cap; one {app['huge_bytes'] / 1e6:.1f} MB "
            f"JPEG of 8000x6000 (48 MP), detected at {s20['detect_size'][0]}x{s20['detect_size'][1]} "
            f"(`--max-side`), overlay {s20['overlay'][0]}x{s20['overlay'][1]} (`--overlay-side`).",
            "",
            "| DETECTION_MAX_INSTANCES | idle RSS | peak RSS | one slot (peak - idle) | answer | detections | seconds |",
            "|---|---|---|---|---|---|---|",
        ]
        for n, s in ((20, s20), (100, s100)):
            lines.append(
                f"| {n} | {s['idle_mb']:.0f} MB | {s['peak_mb']:.0f} MB | **{s['slot_mb']:.0f} MB** | "
                f"{s['answer_bytes'] / 1e6:.2f} MB | {s['detections']} | {s['seconds']:.1f} |"
            )
        lines += [
            "",
            f"So a slot is about {max(s20['slot_mb'], s100['slot_mb']):.0f} MB at the default limits "
            f"({app['slot_per_detection_mb']:+.1f} MB a detection between the two caps: the decoded upload and "
            f"its downscaled copy dominate); `facemask.app.SLOT_MB` = {SLOT_MB} MB is this figure with room for "
            "what concurrent answers hold outside the slots (707 MB a slot was the most seen under load), and "
            "`--slots` defaults to what fits in 3/4 of the machine's memory beside the model, at most one per CPU.",
            "",
            f"Load: {ld['clients']} clients for {ld['seconds']:g} s, `--slots {ld['slots']}`, uploads 60% "
            f"normal (640x480), 20% huge (48 MP), 20% not an image: {ld['requests']} answers, codes "
            f"{ld['codes']}; server peak RSS {ld['peak_mb']:.0f} MB against the documented bound "
            f"{ld['bound_mb']:.0f} MB (idle {ld['idle_mb']:.0f} + {ld['slots']} x `SLOT_MB`), so "
            f"{(ld['peak_mb'] - ld['idle_mb']) / ld['slots']:.0f} MB a slot under load.",
            "",
            "| upload | answers | codes | p50 s | p99 s |",
            "|---|---|---|---|---|",
        ]
        for kind, v in sorted(ld["latency"].items()):
            lines.append(f"| {kind} | {v['n']} | {v['codes']} | {v['p50']:.2f} | {v['p99']:.2f} |")
        lines.append("")
    lines.append(
        f"Machine: {facts['nproc']} cores ({facts['cpu']}; {facts.get('isa', '?')}), load {load_start} at "
        f"the start and {load_end} at the end, TensorFlow {facts.get('tensorflow', '?')}."
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", nargs="+", choices=("bad", "faults", "app"), default=["bad", "faults", "app"])
    p.add_argument("--kills", type=int, default=5)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--from-json", metavar="FILE", help="render (and write) the section from a run's results.json")
    args = p.parse_args(argv)
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        for row in saved.get("bad") or []:
            row["message"] = last_line(row["message"])
        if saved.get("app"):
            saved["app"]["slots"] = {int(k): v for k, v in saved["app"]["slots"].items()}
        text = render(
            saved.get("bad"),
            saved.get("faults"),
            saved.get("app"),
            args,
            saved.get("load_start", "?"),
            saved.get("load_end", "?"),
        )
        print(text)
        if not args.no_write:
            write_section(SECTION, text)
        return 0
    work = Path(tempfile.mkdtemp(prefix="reliability-"))
    load_start = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    bad = faults = app = None
    try:
        if "bad" in args.parts:
            print("== bad inputs", flush=True)
            data, run_dir = tiny_run(work)
            bad = part_bad_inputs(work, data, run_dir, lambda m: print(m, flush=True))
        if "faults" in args.parts:
            print("== faults", flush=True)
            faults = part_faults(work, args.kills, lambda m: print(m, flush=True))
        if "app" in args.parts:
            print("== app memory and load", flush=True)
            app = part_app(work, args.clients, args.seconds, lambda m: print(m, flush=True))
    finally:
        (work / "results.json").write_text(
            json.dumps(
                {
                    "bad": bad,
                    "faults": faults,
                    "app": app,
                    "load_start": load_start,
                    "load_end": ", ".join(f"{v:.2f}" for v in os.getloadavg()),
                },
                default=str,
            )
        )
        print(f"raw results: {work / 'results.json'}")
        if not args.keep:
            shutil.copy(work / "results.json", ROOT / "bench" / ".cache" / "reliability.json") if (
                ROOT / "bench" / ".cache"
            ).is_dir() else None
            shutil.rmtree(work, ignore_errors=True)
    load_end = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    publish(SECTION, render(bad, faults, app, args, load_start, load_end), write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
