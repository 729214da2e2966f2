"""Run folders: naming, checkpoints, ``state.json``/``history.jsonl``, best checkpoint, atomic writes.

A run folder is ``<model_dir>/<name><YYYYmmddTHHMMSS>/`` holding ``mask_rcnn_<name>_<epoch>.h5``
checkpoints, ``best.h5``, ``config.json``, ``state.json``, ``history.jsonl`` and TensorBoard logs.

Every file here is written with :func:`atomic_write`: into ``<file>.tmp-<pid>``, flushed and fsynced,
renamed over the target, then the folder is fsynced; a crash leaves either the old or the new file, never a
half-written one. A killed process can leave its ``*.tmp-<pid>`` behind: :func:`remove_stale_temp_files`
(called when training starts or resumes) deletes those whose process is gone.

Per epoch, :func:`record_epoch` appends the epoch's line to ``history.jsonl`` *before* it rewrites
``state.json``: a kill between the two keeps the epoch in the history, and the resumed run re-trains that
epoch and appends it again; :func:`read_history` keeps the last line per epoch, so it is never duplicated.
"""

from __future__ import annotations

import contextlib
import datetime
import glob
import json
import os
import re
from collections.abc import Iterator

STATE_FILE = "state.json"
HISTORY_FILE = "history.jsonl"
BEST_FILE = "best.h5"
CONFIG_FILE = "config.json"
RUN_FILE = "run.json"  # how the run was launched (stages, dataset, ...): what a resume needs
_TIMESTAMP = "%Y%m%dT%H%M%S"
_TEMP_SUFFIX = re.compile(r"\.tmp-(\d+)$")


# ------------------------------------------------------------------------------------------ atomic writes
def _fsync_folder(folder: str) -> None:
    """Make a rename in ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    if os.name == "nt":
        return
    fd = os.open(folder or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path (``<path>.tmp-<pid>``) to write and close; on success it is fsynced and
    renamed over ``path``, and the folder fsynced. On an exception the temporary file is removed.

    Works for any writer that takes a path (``open``, ``h5py.File``, ``shutil.copyfile``)::

        with atomic_write("state.json") as tmp, open(tmp, "w") as f:
            json.dump(state, f)
    """
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDWR)  # the writer has closed the file: flush its data to disk
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_folder(os.path.dirname(os.path.abspath(path)))
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


def write_json(path: str | os.PathLike, data) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(data, indent=2) + "\n")


def _process_alive(pid: int) -> bool:
    if pid == os.getpid() or os.name == "nt":  # on Windows os.kill(pid, 0) sends Ctrl-C: never probe
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # exists but not ours (or cannot tell): leave its file alone
        return True
    return True


def remove_stale_temp_files(run_dir: str | os.PathLike) -> list[str]:
    """Delete ``*.tmp-<pid>`` files in ``run_dir`` whose writing process no longer runs; returns them.
    Files of live processes (e.g. a training still writing while this one evaluates) are kept."""
    removed = []
    for path in glob.glob(os.path.join(os.fspath(run_dir), "*.tmp-*")):
        m = _TEMP_SUFFIX.search(path)
        if m and not _process_alive(int(m.group(1))):
            try:
                os.remove(path)
                removed.append(path)
            except OSError:  # read-only folder, already gone: not worth failing a run for
                pass
    return removed


# ------------------------------------------------------------------------------------------ naming
def run_dir_name(name: str, when: datetime.datetime | None = None) -> str:
    """``<name><YYYYmmddTHHMMSS>`` with ``name`` lower-cased (Matterport's folder naming)."""
    return f"{name.lower()}{(when or datetime.datetime.now()):{_TIMESTAMP}}"


def new_run_dir(model_dir: str, name: str, when: datetime.datetime | None = None) -> str:
    """Path of a new run folder under ``model_dir`` (not created)."""
    return os.path.join(model_dir, run_dir_name(name, when))


def checkpoint_path(run_dir: str, name: str, epoch: int) -> str:
    """``<run_dir>/mask_rcnn_<name>_<epoch:04d>.h5``."""
    return os.path.join(run_dir, f"mask_rcnn_{name.lower()}_{epoch:04d}.h5")


def parse_checkpoint_path(path: str, name: str) -> tuple[str, int] | None:
    """``(run_dir, epoch)`` when ``path`` is a checkpoint of a run of config ``name``
    (``.../<name>YYYYmmddTHHMM[SS]/mask_rcnn_<name>_NNNN.h5``), else None."""
    name = re.escape(name.lower())
    m = re.search(rf"[/\\]({name}\d{{8}}T\d{{4,6}})[/\\]mask_rcnn_{name}_(\d{{4}})\.h5$", path)
    return (os.path.dirname(path), int(m.group(2))) if m else None


def last_checkpoint_in(run_dir: str) -> str | None:
    """The newest ``mask_rcnn_<name>_<epoch>.h5`` of one run folder, or None."""
    checkpoints = sorted(glob.glob(os.path.join(run_dir, "mask_rcnn_*_[0-9][0-9][0-9][0-9].h5")))
    return checkpoints[-1] if checkpoints else None


def find_last_checkpoint(model_dir: str, name: str | None = None) -> str:
    """Newest checkpoint of the newest run folder (of config ``name`` when given)."""
    pattern = f"{name.lower()}*" if name else "*"
    runs = sorted(
        (d for d in glob.glob(os.path.join(model_dir, pattern)) if os.path.isdir(d)),
        key=lambda d: os.path.basename(d)[-15:],
    )
    for run in reversed(runs):
        checkpoint = last_checkpoint_in(run)
        if checkpoint:
            return checkpoint
    what = f"of '{name}' " if name else ""
    raise FileNotFoundError(
        f"no checkpoint {what}found under {model_dir} (looked for "
        f"{model_dir}/{pattern}/mask_rcnn_*_NNNN.h5); train first or pass --weights PATH"
    )


def best_checkpoint(run_dir: str) -> str | None:
    """The run's ``best.h5`` (lowest monitored loss so far), if written."""
    path = os.path.join(run_dir, BEST_FILE)
    return path if os.path.isfile(path) else None


def run_config_path(weights_path: str) -> str | None:
    """The ``config.json`` saved beside a checkpoint, if any."""
    path = os.path.join(os.path.dirname(os.path.abspath(weights_path)), CONFIG_FILE)
    return path if os.path.isfile(path) else None


# ------------------------------------------------------------------------------------------ state and history
def read_json(path: str) -> dict:
    """A JSON file of the run folder as a dict; {} when absent."""
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_state(run_dir: str) -> dict:
    """``state.json``: last finished epoch, best value, monitor, last checkpoint, the epoch's logs."""
    return read_json(os.path.join(run_dir, STATE_FILE))


def write_state(run_dir: str, state: dict) -> None:
    write_json(os.path.join(run_dir, STATE_FILE), state)


def read_history(run_dir: str) -> list[dict]:
    """Per-epoch logs (loss and val_loss per head) of a run, one per epoch in epoch order: the last
    line of an epoch wins (a resume re-trains an epoch whose state was lost), and a line cut by a kill
    is ignored."""
    path = os.path.join(run_dir, HISTORY_FILE)
    if not os.path.isfile(path):
        return []
    by_epoch: dict = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                by_epoch[record.get("epoch")] = record
    return sorted(by_epoch.values(), key=lambda r: (r.get("epoch") is None, r.get("epoch") or 0))


def append_history(run_dir: str, record: dict) -> None:
    """Append one JSON line to ``history.jsonl`` and fsync it (on a fresh line if a kill cut the last)."""
    path = os.path.join(run_dir, HISTORY_FILE)
    with open(path, "ab") as f:
        prefix = b""
        if f.tell() > 0:
            with open(path, "rb") as r:
                r.seek(-1, os.SEEK_END)
                prefix = b"" if r.read(1) == b"\n" else b"\n"
        f.write(prefix + (json.dumps(record) + "\n").encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())


def record_epoch(run_dir: str, epoch: int, logs: dict, **state) -> dict:
    """After epoch ``epoch`` (1-based): append its logs to the history, THEN write ``state.json``
    (``{"epoch", "logs", **state}``), so a kill between the two never loses the epoch's history line."""
    logs = {k: float(v) for k, v in (logs or {}).items()}
    append_history(run_dir, {"epoch": epoch, **logs})
    full = {"epoch": epoch, **state, "logs": logs}
    write_state(run_dir, full)
    return full


def read_run_record(run_dir: str) -> dict:
    """The run's ``run.json`` (how it was launched); {} when absent (runs from older versions)."""
    return read_json(os.path.join(run_dir, RUN_FILE))


def write_run_record(run_dir: str, record: dict) -> None:
    """Write the run's ``run.json`` atomically."""
    os.makedirs(run_dir, exist_ok=True)
    write_json(os.path.join(run_dir, RUN_FILE), record)
