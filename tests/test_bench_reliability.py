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
