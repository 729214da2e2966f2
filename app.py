"""Face-mask segmentation web app: upload a photo, get the masks drawn on it and a results table.

    python app.py --weights last                      # newest checkpoint under logs/
    python app.py --weights logs/.../mask_rcnn_facemask_0010.h5 --host 0.0.0.0 --port 8000

Then open http://127.0.0.1:8000/ . Endpoints:

* ``GET /``: the HTML page (upload form; the page's script posts to ``/api/predict``);
* ``POST /api/predict`` (multipart, field ``file``): JSON ``{detections: [{class_id, class_name,
  score, box [y1, x1, y2, x2], mask_area_pct}], mask_area_pct, masked_face_pct, overlay_png_base64,
  width, height, original_width, original_height, downscaled, timing_ms}``;
* ``GET /healthz``: ``{"status": "ok", "model": ..., "classes": [...]}``.

Upload limits: more than ``--max-size-mb`` (default 10) bytes -> 413; more than ``--max-pixels``
(default 50 MP, read from the header before decoding) -> 413; a long side above ``--max-side``
(default 4096 px) is downscaled (keeping aspect) before detection, and the JSON's box
coordinates, ``width`` and ``height`` then refer to the downscaled image (``downscaled: true``).
A file that is not an image -> 415, an empty upload -> 400; errors are JSON ``{"detail": message}``.
The model is loaded once at start-up; requests are served one detection at a time.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from fastapi import FastAPI, File, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse

from mrcnn.serve.predictor import DEFAULT_MAX_PIXELS, DEFAULT_MAX_SIDE, Predictor, UploadError

DEFAULT_MAX_SIZE_MB = 10.0

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
    document.getElementById("summary").textContent =
      body.detections.length + " detection(s) in " + body.width + "x" + body.height +
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


def create_app(predictor: Predictor | None = None, *, model_factory: Callable[[], Predictor] | None = None,
               max_size_mb: float = DEFAULT_MAX_SIZE_MB):
    """The FastAPI app. Give a ready ``predictor`` or a ``model_factory`` returning one (called
    once, at start-up)."""
    import html

    if (predictor is None) == (model_factory is None):
        raise ValueError("give exactly one of predictor or model_factory")
    state = {"predictor": predictor if predictor is not None else model_factory()}
    max_bytes = int(max_size_mb * 1024 * 1024)
    too_big = f"the upload is larger than the {max_size_mb:g} MB limit"

    app = FastAPI(title="Face-mask segmentation", docs_url="/docs")

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
        return PAGE.replace("__MODEL__", html.escape(p.description or "loaded")).replace("__MAXMB__", f"{max_size_mb:g}")

    @app.get("/healthz")
    def healthz():
        p = state["predictor"]
        return {"status": "ok", "model": p.description, "classes": p.class_names[1:]}

    @app.post("/api/predict")
    def predict(file: UploadFile = File(..., description="an image file")):
        data = file.file.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise HTTPException(413, too_big)
        try:
            return state["predictor"].predict_bytes(data, file.filename)
        except UploadError as e:
            raise HTTPException(e.status, str(e)) from None

    return app


def load_predictor(weights: str, *, logs: str = "logs", profile: str = "cpu", classes: str | None = None,
                   config_file: str | None = None, min_confidence: float | None = None,
                   max_side: int = DEFAULT_MAX_SIDE, max_pixels: int = DEFAULT_MAX_PIXELS) -> Predictor:
    """A :class:`Predictor` for a checkpoint (``last`` = newest under ``logs``), configured as
    ``inference.py`` does (the run's config.json when present)."""
    from evaluate import (build_model, class_names_for, config_line, inference_config, resolve_checkpoint,
                          resolve_classes, saved_run_config)

    weights_path = resolve_checkpoint(weights, logs)
    saved_path, saved = saved_run_config(weights_path)
    classes = resolve_classes(classes, saved, saved_path)
    config, source = inference_config(weights_path, profile, classes, config_file,
                                      DETECTION_MIN_CONFIDENCE=min_confidence, IMAGES_PER_GPU=1)
    print(config_line(config, source))
    model = build_model(config, weights_path, logs)
    names = class_names_for(classes, int(config.NUM_CLASSES))
    return Predictor(model, names, max_side=max_side, max_pixels=max_pixels, description=weights_path)


def build_parser() -> argparse.ArgumentParser:
    from evaluate import add_checkpoint_args

    p = argparse.ArgumentParser(prog="app.py", description="Face-mask segmentation web app (FastAPI).")
    add_checkpoint_args(p)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--min-confidence", type=float, default=None,
                   help="DETECTION_MIN_CONFIDENCE (default: the checkpoint's config)")
    p.add_argument("--max-size-mb", type=float, default=DEFAULT_MAX_SIZE_MB,
                   help=f"largest accepted upload in MB (default {DEFAULT_MAX_SIZE_MB:g}); larger -> 413")
    p.add_argument("--max-side", type=int, default=DEFAULT_MAX_SIDE,
                   help=f"downscale images whose long side exceeds this (default {DEFAULT_MAX_SIDE})")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help=f"refuse images with more pixels than this (default {DEFAULT_MAX_PIXELS}) -> 413")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from evaluate import user_errors

    a = build_parser().parse_args(argv)
    try:
        predictor = load_predictor(a.weights, logs=a.logs, profile=a.profile, classes=a.classes,
                                   config_file=a.config, min_confidence=a.min_confidence,
                                   max_side=a.max_side, max_pixels=a.max_pixels)
    except user_errors() as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    import uvicorn

    app = create_app(predictor, max_size_mb=a.max_size_mb)
    print(f"serving on http://{a.host}:{a.port}/")
    uvicorn.run(app, host=a.host, port=a.port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
