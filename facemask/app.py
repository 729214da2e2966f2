"""Face-mask segmentation web app: upload a photo, get the masks drawn on it and a results table.

    facemask-app --weights last                      # newest checkpoint under logs/
    facemask-app --weights logs/.../mask_rcnn_facemask_0010.h5 --host 0.0.0.0 --port 8000

Then open http://127.0.0.1:8000/ . Endpoints:

* ``GET /``: the HTML page (upload form; the page's script posts to ``/api/predict``);
* ``POST /api/predict`` (multipart, field ``file``): JSON ``{counts: {class name: n}, detections: [{class_id, class_name,
  score, box [y1, x1, y2, x2], mask_area_pct}], mask_area_pct, masked_face_pct, overlay_png_base64 (at most
  ``--overlay-side`` px on its long side; overlay_width, overlay_height),
  width, height, original_width, original_height, downscaled, timing_ms}``;
* ``GET /healthz``: ``{"status": "ok", "model": ..., "classes": [...]}``.

Upload limits: more than ``--max-size-mb`` (default 10) bytes -> 413; more than ``--max-pixels``
(default 50 MP, read from the header before decoding) -> 413; a long side above ``--max-side``
(default 4096 px) is downscaled (keeping aspect) before detection, and the JSON's box
coordinates, ``width`` and ``height`` then refer to the downscaled image (``downscaled: true``).
A file that is not an image -> 415, an empty upload or a request without a ``file`` field -> 400,
a decompression bomb -> 413; errors are JSON ``{"detail": message}`` and never show server paths.

Memory is bounded whatever the number of concurrent uploads: reading, decoding and detecting run
in ``--slots`` slots. Waiting uploads stay spooled on disk by the server (not in memory) and get 503
after ``--queue-timeout`` seconds. A slot's memory was measured (``bench/reliability.py``: peak RSS
over idle while one 48-megapixel upload is answered with ``DETECTION_MAX_INSTANCES`` detections):
:data:`SLOT_MB` at the default limits. ``--slots`` defaults to what the machine's memory (the
smaller of the physical memory and the cgroup limit) holds beside the loaded model, at most one
per CPU. The answer's overlay is at most ``--overlay-side`` pixels on its long side.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from fastapi import FastAPI, File, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse

from .cli import add_checkpoint_args, cli_main, load_checkpoint, positive_float, positive_int, probability
from .predictor import DEFAULT_MAX_PIXELS, DEFAULT_MAX_SIDE, DEFAULT_OVERLAY_SIDE, Predictor, UploadError

DEFAULT_MAX_SIZE_MB = 10.0
DEFAULT_QUEUE_TIMEOUT = 120.0
#: One slot's memory, MB, measured (bench/reliability.py, 2026-12-07, cpu profile, default limits): the
#: server's peak RSS over idle is 655 MB for one 48-megapixel upload alone (at 20 and at 100 detections
#: alike) and 707 MB a slot with 2 slots under 6 concurrent clients (answers encoded outside the slots
#: included); rounded up. Scaled by the pixel limit when --max-pixels is raised.
SLOT_MB = 720
#: The share of the machine's memory the slots may plan to use beside the model.
MEMORY_SHARE = 0.75


def memory_limit_bytes() -> int:
    """The machine's memory for this process: physical memory, or the cgroup (v2 or v1) limit if smaller."""
    import os

    limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit():
            limit = min(limit, int(text))
    return limit


def resident_bytes() -> int:
    """This process's resident memory now (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            import os

            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def default_slots(
    max_pixels: int = DEFAULT_MAX_PIXELS, *, limit: int | None = None, used: int | None = None, cpus: int | None = None
) -> tuple[int, str]:
    """(slots, why): as many measured slots as fit in ``MEMORY_SHARE`` of the memory limit beside what
    the process already uses (the model), at least 1 and at most one per CPU."""
    import os

    limit = memory_limit_bytes() if limit is None else limit
    used = resident_bytes() if used is None else used
    cpus = cpus or os.cpu_count() or 1
    slot = SLOT_MB * 2**20 * max(1.0, max_pixels / DEFAULT_MAX_PIXELS)
    fit = int((limit * MEMORY_SHARE - used) // slot)
    slots = max(1, min(fit, cpus))
    why = (
        f"{slots} slot(s): {limit / 2**30:.1f} GB memory, {used / 2**30:.2f} GB in use, {slot / 2**30:.1f} GB "
        f"a slot (measured), {cpus} CPU(s)"
    )
    return slots, why


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Face-mask segmentation</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 960px; padding: 0 1rem; color: #222; }
  h1 { font-size: 1.5rem; }
  form { display: flex; gap: .75rem; align-items: center; padding: 1rem; background: #f3f5f8; border-radius: 8px; }
  button { padding: .45rem 1.1rem; font-size: 1rem; cursor: pointer; }
  #status { margin: 1rem 0; min-height: 1.4em; }
  #status.error { color: #b00020; font-weight: 600; }
  #overlay { width: 100%; max-width: 640px; border: 1px solid #ccc; display: none; margin-bottom: 1rem; }
  table { border-collapse: collapse; width: 100%; }
  th, td { border: 1px solid #ccc; padding: .35rem .6rem; text-align: left; }
  th { background: #e8ecf2; }
  #summary { margin: .5rem 0 1rem; }
</style>
</head>
<body>
<h1>Face-mask segmentation</h1>
<p>Model: <code id="model-name">__MODEL__</code>. Upload a photo (JPEG, PNG, ...; at most __MAXMB__ MB).</p>
<form id="upload-form">
  <input type="file" id="file" name="file" accept="image/*" required>
  <button type="submit" id="submit">Detect</button>
</form>
<div id="status" role="status"></div>
<img id="overlay" alt="detections drawn on the uploaded image">
<div id="summary"></div>
<div id="results"></div>
<script>
const form = document.getElementById("upload-form");
const statusEl = document.getElementById("status");
function setStatus(text, isError) { statusEl.textContent = text; statusEl.className = isError ? "error" : ""; }
function cell(row, text, tag) { const c = document.createElement(tag || "td"); c.textContent = text; row.appendChild(c); }
function fmt(v, d) { return (v === null || v === undefined) ? "n/a" : Number(v).toFixed(d); }
form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const file = document.getElementById("file").files[0];
  if (!file) { setStatus("Choose an image first.", true); return; }
  const data = new FormData(); data.append("file", file);
  setStatus("Detecting in " + file.name + " ...", false);
  document.getElementById("submit").disabled = true;
  try {
    const resp = await fetch("api/predict", { method: "POST", body: data });
    const body = await resp.json().catch(() => ({ detail: "the server answered " + resp.status }));
    if (!resp.ok) { setStatus("Error " + resp.status + ": " + (body.detail || JSON.stringify(body)), true); return; }
    const img = document.getElementById("overlay");
    img.src = "data:image/png;base64," + body.overlay_png_base64;
    img.style.display = "block";
    const counts = Object.entries(body.counts).map(([name, n]) => name + " " + n).join(", ");
    document.getElementById("summary").textContent =
      body.detections.length + " detection(s) (" + counts + ") in " + body.width + "x" + body.height +
      (body.downscaled ? " (downscaled from " + body.original_width + "x" + body.original_height + ")" : "") +
      "; mask area " + fmt(body.mask_area_pct, 2) + " %" +
      (body.masked_face_pct === null ? "" : "; masked face " + fmt(body.masked_face_pct, 2) + " %") +
      "; " + fmt(body.timing_ms.total, 0) + " ms";
    const table = document.createElement("table"); table.id = "results-table";
    const head = table.createTHead().insertRow();
    ["#", "class", "score", "box (y1, x1, y2, x2)", "mask area %"].forEach(t => cell(head, t, "th"));
    const tbody = table.createTBody();
    body.detections.forEach((d, i) => {
      const r = tbody.insertRow();
      cell(r, i + 1); cell(r, d.class_name); cell(r, fmt(d.score, 3)); cell(r, d.box.join(", ")); cell(r, fmt(d.mask_area_pct, 2));
    });
    const results = document.getElementById("results"); results.replaceChildren(table);
    setStatus("Done: " + file.name, false);
  } catch (e) {
    setStatus("Request failed: " + e, true);
  } finally {
    document.getElementById("submit").disabled = false;
  }
});
</script>
</body>
</html>
"""


def release_freed_memory_promptly() -> bool:
    """glibc only: large buffers (decoded uploads, masks) get their own mappings, returned to the system
    when freed, and few malloc arenas, so the server's memory follows the uploads in its slots instead of
    keeping every thread's high-water mark (measured: 2 slots peaked at 3.5 GB without this, see
    bench/reliability.py). Returns whether it applied."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = libc.mallopt if libc is not None else None
    except (OSError, AttributeError):
        return False
    if mallopt is None:
        return False
    M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8
    return bool(mallopt(M_MMAP_THRESHOLD, 1 << 20)) and bool(mallopt(M_ARENA_MAX, 2))


def trim_heap() -> None:
    """Hand freed heap memory back to the system (glibc ``malloc_trim``; nothing elsewhere)."""
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)
    except (OSError, AttributeError, TypeError):
        pass


def create_app(
    predictor: Predictor | None = None,
    *,
    model_factory: Callable[[], Predictor] | None = None,
    max_size_mb: float = DEFAULT_MAX_SIZE_MB,
    slots: int = 1,
    queue_timeout: float = DEFAULT_QUEUE_TIMEOUT,
):
    """The FastAPI app. Give a ready ``predictor`` or a ``model_factory`` returning one (called
    once, at start-up). ``slots`` uploads are read, decoded and detected at a time; the others
    wait up to ``queue_timeout`` seconds (then 503)."""
    import html
    import threading

    from fastapi.exceptions import RequestValidationError

    if (predictor is None) == (model_factory is None):
        raise ValueError("give exactly one of predictor or model_factory")
    state = {"predictor": predictor if predictor is not None else model_factory()}
    max_bytes = int(max_size_mb * 1024 * 1024)
    too_big = f"the upload is larger than the {max_size_mb:g} MB limit"

    busy = threading.BoundedSemaphore(int(slots))
    app = FastAPI(title="Face-mask segmentation", docs_url="/docs")

    @app.exception_handler(RequestValidationError)
    async def missing_file(request: Request, exc: RequestValidationError):
        return JSONResponse(
            {"detail": "no image in the request: POST multipart/form-data with the image in a field named 'file'"},
            status_code=400,
        )

    @app.middleware("http")
    async def reject_large_bodies(request: Request, call_next):
        # Early refusal from the header; the body is also counted while reading (no header / chunked).
        length = request.headers.get("content-length")
        if request.url.path == "/api/predict" and length and length.isdigit() and int(length) > max_bytes + 65536:
            return JSONResponse({"detail": too_big}, status_code=413)
        return await call_next(request)

    @app.get("/", response_class=HTMLResponse)
    def index():
        p = state["predictor"]
        return PAGE.replace("__MODEL__", html.escape(p.description or "loaded")).replace(
            "__MAXMB__", f"{max_size_mb:g}"
        )

    @app.get("/healthz")
    def healthz():
        p = state["predictor"]
        return {"status": "ok", "model": p.description, "classes": p.class_names[1:]}

    @app.post("/api/predict")
    def predict(file: UploadFile = File(..., description="an image file")):
        # The slot bounds memory: only its holder has the upload's bytes and pixels in RAM.
        if not busy.acquire(timeout=queue_timeout):
            raise HTTPException(503, f"the server is busy (more than {queue_timeout:g} s in the queue); retry later")
        data = None
        try:
            data = file.file.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise HTTPException(413, too_big)
            return state["predictor"].predict_bytes(data, file.filename)
        except UploadError as e:
            raise HTTPException(e.status, str(e)) from None
        finally:
            del data  # the upload's bytes, then the pixels the predictor freed: back to the system
            trim_heap()
            busy.release()

    return app


def load_predictor(args: argparse.Namespace) -> Predictor:
    """A :class:`Predictor` for the parsed checkpoint options (``--weights last`` = newest under
    ``--logs``), configured as every command is (the run's config.json when present)."""
    model, ckpt = load_checkpoint(args, DETECTION_MIN_CONFIDENCE=args.min_confidence)
    return Predictor(
        model,
        ckpt.class_names,
        max_side=args.max_side,
        max_pixels=args.max_pixels,
        overlay_side=args.overlay_side,
        description=ckpt.weights,
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="facemask-app", description="Face-mask segmentation web app (FastAPI).")
    add_checkpoint_args(p)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=positive_int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--min-confidence",
        type=probability,
        default=None,
        help="DETECTION_MIN_CONFIDENCE (default: the checkpoint's config)",
    )
    p.add_argument(
        "--max-size-mb",
        type=positive_float,
        default=DEFAULT_MAX_SIZE_MB,
        help=f"largest accepted upload in MB (default {DEFAULT_MAX_SIZE_MB:g}); larger -> 413",
    )
    p.add_argument(
        "--max-side",
        type=positive_int,
        default=DEFAULT_MAX_SIDE,
        help=f"downscale images whose long side exceeds this (default {DEFAULT_MAX_SIDE})",
    )
    p.add_argument(
        "--max-pixels",
        type=positive_int,
        default=DEFAULT_MAX_PIXELS,
        help=f"refuse images with more pixels than this (default {DEFAULT_MAX_PIXELS}) -> 413",
    )
    p.add_argument(
        "--slots",
        type=positive_int,
        default=None,
        help=f"uploads decoded and detected at a time; bounds memory (default: as many {SLOT_MB / 1024:.1f} GB "
        "slots as fit in 3/4 of the machine's memory beside the model, at most one per CPU)",
    )
    p.add_argument(
        "--overlay-side",
        type=positive_int,
        default=DEFAULT_OVERLAY_SIDE,
        help=f"long side of the overlay image in the answer (default {DEFAULT_OVERLAY_SIDE}); the "
        "boxes keep the detection image's coordinates",
    )
    p.add_argument(
        "--queue-timeout",
        type=positive_float,
        default=DEFAULT_QUEUE_TIMEOUT,
        help=f"seconds an upload may wait for a slot before 503 (default {DEFAULT_QUEUE_TIMEOUT:g})",
    )
    return p


def run(argv: Sequence[str] | None = None) -> None:
    """Parse ``argv``, load the model, serve until stopped."""
    import uvicorn

    a = build_parser().parse_args(argv)
    release_freed_memory_promptly()  # before the model and the first upload allocate
    predictor = load_predictor(a)
    slots = a.slots
    if slots is None:  # measured after the model is loaded: what is left is for the slots
        slots, why = default_slots(a.max_pixels)
        print(f"--slots {why}")
    app = create_app(predictor, max_size_mb=a.max_size_mb, slots=slots, queue_timeout=a.queue_timeout)
    print(f"serving on http://{a.host}:{a.port}/")
    uvicorn.run(app, host=a.host, port=a.port, log_level="info")


def main(argv: Sequence[str] | None = None) -> int:
    return cli_main(run, argv)


if __name__ == "__main__":
    sys.exit(main())
