"""Pretrained weights files by key (``coco``, ``imagenet``): download once into Keras' cache.

    path = fetch_pretrained("coco")    # ~/.keras/models/mask_rcnn_coco.h5 (or $KERAS_HOME/models/...)

The official file is downloaded once with a progress bar, MD5-checked, and reused afterwards; a
copy put at :func:`cache_path` by hand is used as it is (with a note when it is not the official file). A download that
fails, stalls (no byte for ``MRCNN_DOWNLOAD_TIMEOUT`` seconds, default 60) or arrives corrupt leaves
nothing in the cache and raises :class:`WeightsDownloadError`, which names the URL and that path.

Air-gapped machines and tests: ``MRCNN_COCO_WEIGHTS`` / ``MRCNN_IMAGENET_WEIGHTS`` set to a local
path (used in place) or a URL (downloaded once into the cache, beside the official file) replace the
official source for that key. The MD5 check applies to the official file only.
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

DOWNLOAD_TIMEOUT_ENV = "MRCNN_DOWNLOAD_TIMEOUT"
DEFAULT_TIMEOUT_S = 60.0
_CHUNK = 1 << 20


@dataclass(frozen=True)
class PretrainedFile:
    """One official pretrained weights file and what it fits."""

    key: str
    filename: str
    url: str
    md5: str
    env: str  # the variable that replaces the official source with a path or URL
    description: str
    backbones: tuple[str, ...]  # the BACKBONE values its layers load into by name


PRETRAINED = {
    "coco": PretrainedFile(
        "coco",
        "mask_rcnn_coco.h5",
        "https://github.com/matterport/Mask_RCNN/releases/download/v2.0/mask_rcnn_coco.h5",
        "e98aaff6f99e307b5e2a8a3ff741a518",
        "MRCNN_COCO_WEIGHTS",
        "Matterport's COCO-trained Mask R-CNN (ResNet-101 FPN, 81 classes, 246 MB)",
        # By name, a ResNet-50 takes ResNet-101's stages 2-3, 5 and the first blocks of stage 4.
        ("resnet101", "resnet50"),
    ),
    "imagenet": PretrainedFile(
        "imagenet",
        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        # keras-applications v0.2: the layer names (conv1, res2a_branch2a, bn2a_branch2a...) are ours.
        "https://github.com/fchollet/deep-learning-models/releases/download/v0.2/"
        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "a268eb855778b3df3c7506639542a6af",
        "MRCNN_IMAGENET_WEIGHTS",
        "the ImageNet-trained ResNet-50 of keras-applications v0.2 (backbone only, 94 MB)",
        ("resnet50",),
    ),
}


class WeightsDownloadError(OSError):
    """A pretrained file could not be had: its message is one line naming the URL and the cache path."""

    def __init__(self, message: str, *, key: str, url: str, cache_path: str):
        super().__init__(message)
        self.key, self.url, self.cache_path = key, url, cache_path


def keras_cache_dir() -> str:
    """Keras' cache folder: ``$KERAS_HOME``, else ``~/.keras`` (``/tmp/.keras`` when that is not writable)."""
    if os.environ.get("KERAS_HOME"):
        return os.environ["KERAS_HOME"]
    home = os.path.join(os.path.expanduser("~"), ".keras")
    if os.access(os.path.dirname(home), os.W_OK) or os.path.isdir(home):
        return home
    return os.path.join("/tmp", ".keras")


def cache_path(key: str, cache_dir: str | None = None) -> str:
    """Where the official file of ``key`` is cached (and where a hand-downloaded copy goes)."""
    return os.path.join(cache_dir or keras_cache_dir(), "models", _spec(key).filename)


def fetch_pretrained(key: str, cache_dir: str | None = None, progress: bool = True) -> str:
    """A local path to the weights file of ``key``: the override's, the cached one, or a new download."""
    spec = _spec(key)
    override = os.environ.get(spec.env, "").strip()
    if override and not _is_url(override):
        if not os.path.isfile(override):
            raise FileNotFoundError(
                f"{spec.env}={override}: no such file (set it to a local {spec.filename} "
                "or a URL, or unset it to download the official file)"
            )
        return override
    if override:  # a mirror: cached under its own name, so it never passes for the official file
        name = (
            hashlib.sha1(override.encode()).hexdigest()[:10]
            + "_"
            + (os.path.basename(urllib.parse.urlparse(override).path) or spec.filename)
        )
        target = os.path.join(cache_dir or keras_cache_dir(), "models", "mirrors", name)
        if not os.path.isfile(target):
            download(override, target, md5=None, key=key, progress=progress)
        return target
    target = cache_path(key, cache_dir)
    if os.path.isfile(target):  # downloaded before (checked then), or put there by hand: used as it is
        if file_md5(target) != spec.md5:
            print(
                f"note: {target} is not the official {spec.filename} (its MD5 differs); using it as it is",
                file=sys.stderr,
            )
        return target
    return download(spec.url, target, md5=spec.md5, key=key, progress=progress)


def download(
    url: str, target: str, md5: str | None, key: str = "", progress: bool = True, timeout: float | None = None
) -> str:
    """Stream ``url`` into ``target`` atomically (``target.part``, then rename), checking ``md5`` when
    given. Any failure removes the partial file and raises :class:`WeightsDownloadError`."""
    timeout = timeout or float(os.environ.get(DOWNLOAD_TIMEOUT_ENV) or DEFAULT_TIMEOUT_S)
    os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
    part = target + ".part"
    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with _progress_bar(total, os.path.basename(target), progress) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
            if total is not None and out.tell() != total:
                raise OSError(f"the connection closed after {out.tell()} of {total} bytes")
        if md5 and digest.hexdigest() != md5:
            raise OSError(f"the download's MD5 is {digest.hexdigest()}, not the official {md5}")
        os.replace(part, target)
    except BaseException as error:  # also Ctrl-C: never leave a partial file in the cache
        if os.path.exists(part):
            os.remove(part)
        if not isinstance(error, (OSError, ValueError)):
            raise
        reason = _reason(error, timeout)
        raise WeightsDownloadError(
            f"could not download {key or 'the'} weights from {url} ({reason}); download the file yourself and "
            f"put it at {target}, or load a local copy instead",
            key=key,
            url=url,
            cache_path=target,
        ) from None
    return target


def file_md5(path: str) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _spec(key: str) -> PretrainedFile:
    if key not in PRETRAINED:
        raise ValueError(f"no pretrained weights called {key!r}; known: {', '.join(PRETRAINED)}")
    return PRETRAINED[key]


def _is_url(text: str) -> bool:
    return urllib.parse.urlparse(text).scheme in ("http", "https", "file", "ftp")


def _reason(error: BaseException, timeout: float) -> str:
    if isinstance(error, TimeoutError) or "timed out" in str(error):
        return f"no data for {timeout:g} s; {DOWNLOAD_TIMEOUT_ENV} sets the limit"
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return f"offline or unreachable: {error.reason}"
    return str(error).splitlines()[0] if str(error) else type(error).__name__


class _progress_bar:
    """tqdm when ``enabled``, else a no-op with the same ``update``."""

    def __init__(self, total, name, enabled):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=f"Downloading {name}")

    def __enter__(self):
        return self

    def update(self, n):
        if self.bar is not None:
            self.bar.update(n)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
