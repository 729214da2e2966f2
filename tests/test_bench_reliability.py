"""bench/reliability.py's verdicts: what counts as a partial output, and the message line it keeps."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import reliability  # noqa: E402


def test_written_verdicts(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    ok, failed = {"rc": 0}, {"rc": 1}
    assert reliability._written(ok, [out], [out / "p.json"], complete=True) == "complete"
    assert reliability._written(failed, [out], [out / "p.json"], complete=False) == "nothing"
    (out / "p.json").write_text("{}")
    assert reliability._written(failed, [out], [out / "p.json"], complete=False) == "partial"  # a failed run's file
    (out / "p.json").unlink()
    (out / "model.h5.tmp").write_bytes(b"x")
    assert reliability._written(ok, [out], [], complete=True) == "partial"  # a temporary file left behind


def test_last_line_skips_progress_bars_and_tf_logs():
    err = (
        "evaluate:  50%|#####     | 1/2\revaluate: 100%|##########| 2/2\n"
        "error: data/val/a.jpg: not a recognised image format\n"
        "E0000 00:00:1.0 1 util.cc:131] oneDNN supports DT_UINT8 only on platforms with AVX-512\n"
    )
    assert reliability.last_line(err) == "error: data/val/a.jpg: not a recognised image format"
    assert reliability.last_line("") == ""


def test_upload_verdicts(tmp_path, monkeypatch):
    """An upload's row: 200 with an overlay is an answer; a 4xx with one JSON detail line is one line; a 500
    or a detail spread over lines is not."""
    import httpx

    image = tmp_path / "a.jpg"
    image.write_bytes(b"x")
    server = type("S", (), {"base": "http://127.0.0.1:1"})()

    def answer(status, body):
        monkeypatch.setattr(httpx, "post", lambda *a, **k: httpx.Response(status, json=body))
        r, written = reliability._upload(server, image)
        return r["rc"], r["verdict"], written

    assert answer(200, {"detections": [], "overlay_png_base64": "AA==", "overlay_width": 4, "overlay_height": 3}) == (
        200,
        "ok",
        "complete",
    )
    assert answer(415, {"detail": "a.jpg: not a recognised image format"}) == (415, "one line", "nothing")
    assert answer(500, {"detail": "Internal Server Error"})[1] == "no message"
    assert answer(413, {"detail": "line one\nline two"})[1] == "no message"
