"""Pretrained weights by key: the download into Keras' cache, the MD5 check, the overrides, and the
typed --weights choice, against a real HTTP server on 127.0.0.1 (no file leaves this machine)."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import os
import socket
import threading
import time

import pytest

from facemask.cli import CLIError, parse_weights
from mrcnn.model import pretrained
from mrcnn.model.pretrained import WeightsDownloadError, cache_path, download, fetch_pretrained

PAYLOAD = os.urandom(3 * (1 << 20) + 17)  # a few chunks, not a multiple of the chunk size


class _Handler(http.server.BaseHTTPRequestHandler):
    hits: dict = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        _Handler.hits[self.path] = _Handler.hits.get(self.path, 0) + 1
        if self.path.startswith("/missing"):
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        if self.path.startswith("/stall"):  # half the file, then nothing (bounded: the test's timeout is 1 s)
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.wfile.flush()
            time.sleep(4)
            return
        if self.path.startswith("/short"):  # the connection drops before the end
            self.wfile.write(PAYLOAD[:1000])
            return
        self.wfile.write(PAYLOAD)


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    home = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    for spec in pretrained.PRETRAINED.values():
        monkeypatch.delenv(spec.env, raising=False)
    monkeypatch.setenv(pretrained.DOWNLOAD_TIMEOUT_ENV, "1")
    return home


def _official_from(monkeypatch, url: str, md5: str) -> None:
    """Point the official COCO entry at the test server (the real one is 246 MB on github.com)."""
    spec = dataclasses.replace(pretrained.PRETRAINED["coco"], url=url, md5=md5)
    monkeypatch.setitem(pretrained.PRETRAINED, "coco", spec)


def test_official_file_downloads_once_into_keras_home_and_is_reused(server, keras_home, monkeypatch):
    _official_from(monkeypatch, f"{server}/ok_once.h5", hashlib.md5(PAYLOAD).hexdigest())
    path = fetch_pretrained("coco", progress=False)
    assert path == str(keras_home / "models" / "mask_rcnn_coco.h5") == cache_path("coco")
    assert open(path, "rb").read() == PAYLOAD
    assert fetch_pretrained("coco", progress=False) == path
    assert _Handler.hits["/ok_once.h5"] == 1, "the cached file was downloaded again"


def test_a_file_put_in_the_cache_by_hand_is_used_as_it_is(server, keras_home, monkeypatch, capsys):
    _official_from(monkeypatch, f"{server}/never.h5", "0" * 32)
    target = keras_home / "models" / "mask_rcnn_coco.h5"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"a stand-in")
    assert fetch_pretrained("coco", progress=False) == str(target)
    assert "not the official mask_rcnn_coco.h5" in capsys.readouterr().err
    assert "/never.h5" not in _Handler.hits


@pytest.mark.parametrize(
    "path, reason",
    [
        ("/missing.h5", "HTTP 404"),
        ("/stall.h5", "no data for 1 s"),
        ("/short.h5", "closed after 1000 of"),
        ("/bad_md5.h5", "MD5 is"),
    ],
)
def test_a_failed_download_names_url_and_cache_path_and_leaves_no_partial_file(
    server, keras_home, monkeypatch, path, reason
):
    _official_from(monkeypatch, server + path, "0" * 32)  # nothing has this MD5: /bad_md5 arrives whole but wrong
    started = time.monotonic()
    with pytest.raises(WeightsDownloadError) as err:
        fetch_pretrained("coco", progress=False)
    assert time.monotonic() - started < 30  # bounded, not a hang
    message = str(err.value)
    assert reason in message and server + path in message and cache_path("coco") in message
    assert "\n" not in message
    models = keras_home / "models"
    assert not models.exists() or not list(models.iterdir()), "a partial file was left in the cache"


def test_offline_is_one_line(keras_home):
    with socket.socket() as s:  # a port nobody listens on: connection refused, as offline
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(WeightsDownloadError, match="offline or unreachable") as err:
        download(f"http://127.0.0.1:{port}/mask_rcnn_coco.h5", str(keras_home / "x.h5"), md5=None, progress=False)
    assert err.value.url.endswith("/mask_rcnn_coco.h5")
    assert not (keras_home / "x.h5.part").exists()


def test_overrides_replace_the_official_source(server, keras_home, monkeypatch, tmp_path):
    local = tmp_path / "my_coco.h5"
    local.write_bytes(b"local")
    monkeypatch.setenv("MRCNN_COCO_WEIGHTS", str(local))
    assert fetch_pretrained("coco") == str(local)  # a path: used in place, no MD5
    monkeypatch.setenv("MRCNN_COCO_WEIGHTS", str(tmp_path / "nope.h5"))
    with pytest.raises(FileNotFoundError, match="MRCNN_COCO_WEIGHTS=.*nope.h5: no such file"):
        fetch_pretrained("coco")
    monkeypatch.setenv("MRCNN_IMAGENET_WEIGHTS", f"{server}/mirror/resnet50.h5")  # a URL: downloaded once
    path = fetch_pretrained("imagenet", progress=False)
    assert open(path, "rb").read() == PAYLOAD and fetch_pretrained("imagenet", progress=False) == path
    assert _Handler.hits["/mirror/resnet50.h5"] == 1
    assert path != cache_path("imagenet"), "a mirror's file must not pass for the official one"


def test_weights_choice_parses_keys_and_paths_once(tmp_path, keras_home, monkeypatch):
    for key in ("coco", "COCO", "imagenet"):
        choice = parse_weights(key, pretrained=True)
        assert choice.kind == "pretrained" and choice.key == key.lower() and choice.pretrained
    assert (
        parse_weights("none", pretrained=True).kind == "none" and not parse_weights("none", pretrained=True).pretrained
    )
    synthetic = parse_weights("Synthetic", pretrained=True)  # built on use (facemask.pretrain), never downloaded
    assert synthetic.kind == "synthetic" and synthetic.pretrained and synthetic.describe() == "synthetic"
    run = tmp_path / "logs" / "facemask20260101T000000"
    run.mkdir(parents=True)
    (run / "mask_rcnn_facemask_0003.h5").write_bytes(b"")
    last = parse_weights("last", str(tmp_path / "logs"), pretrained=True)
    assert last.resuming and last.path.endswith("mask_rcnn_facemask_0003.h5")
    assert parse_weights(str(run)).path == last.path
    weights = tmp_path / "w.h5"
    weights.write_bytes(b"")
    assert parse_weights(str(weights)).kind == "file"
    with pytest.raises(CLIError, match="no such file or folder .*coco, imagenet, synthetic, none, last"):
        parse_weights("coco.h5", pretrained=True)
    with pytest.raises(CLIError, match="no face-mask heads"):
        parse_weights("coco")  # evaluate/infer/export/app need a trained checkpoint
    # A failed fetch is one CLI line that says how to go on.
    monkeypatch.setenv("MRCNN_COCO_WEIGHTS", "http://127.0.0.1:9/mask_rcnn_coco.h5")
    with pytest.raises(CLIError) as err:
        parse_weights("coco", pretrained=True).local_path(progress=False)
    assert "--weights PATH" in str(err.value) and "MRCNN_COCO_WEIGHTS" in str(err.value)
