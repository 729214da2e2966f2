"""notebooks/train_facemask.ipynb: committed stripped, and runs top to bottom in its tiny mode.

The execution test starts a "python3" kernel through nbclient. jupyter_client resolves the native
"python3" kernelspec (argv ``python -m ipykernel_launcher``) to ``sys.executable``, so the kernel
runs in the same interpreter/virtualenv as pytest; the notebook prints its ``sys.executable`` and
the test checks it. FACEMASK_TINY=1 picks the tiny config; FACEMASK_WORKDIR=tmp_path keeps its data
and run folders out of the repo. Any failing cell raises CellExecutionError, failing the test.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "train_facemask.ipynb"

import nbformat  # noqa: E402  (a dev requirement: a missing one must fail, not skip)


def read_notebook():
    return nbformat.read(str(NOTEBOOK), as_version=4)


def cell_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def test_notebook_is_valid_and_stripped():
    nb = read_notebook()
    assert nb.nbformat == 4
    nbformat.validate(nb)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert code_cells
    for cell in code_cells:
        assert cell.outputs == [], f"cell {cell.get('id')} has outputs; run python tools/strip_notebook.py {NOTEBOOK}"
        assert cell.execution_count is None, f"cell {cell.get('id')} has an execution_count"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    source = "\n".join(c.source for c in nb.cells)
    for needle in (
        'os.environ.get("FACEMASK_TINY", "0") == "1"',
        "FACEMASK_WORKDIR",
        "REPO_URL",
        "REPO_ZIP",
        "FACEMASK_FORCE_GPU_RECIPE",
        "Restart needed",
        "unfinished_run",
        "SAVE_TO_DRIVE",
        "Runtime > Change runtime type > GPU",
        "drive.mount",
        "fit_anchors.run",
        "evaluate.evaluate_checkpoint",
        "read_history",
        "CalledProcessError",
    ):
        assert needle in source, needle


def test_strip_tool_roundtrip(tmp_path):
    sys.path.insert(0, str(ROOT))
    from tools.strip_notebook import is_stripped, main

    nb = read_notebook()
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.execution_count = 3
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, str(path))
    assert main(["--check", str(path)]) == 1
    assert main([str(path)]) == 0
    assert is_stripped(nbformat.read(str(path), as_version=4))
    assert main(["--check", str(path)]) == 0


def test_notebook_runs_its_gpu_branch_in_tiny_mode(tmp_path, monkeypatch, coco_standin):
    """Top to bottom through the branch a Colab GPU takes (the gpu profile from COCO weights, heads then
    all), forced on this CPU by FACEMASK_FORCE_GPU_RECIPE=1, shrunk to 128 px, from the stand-in file."""
    import nbclient

    monkeypatch.setenv("FACEMASK_TINY", "1")
    monkeypatch.setenv("FACEMASK_FORCE_GPU_RECIPE", "1")
    monkeypatch.setenv("MRCNN_COCO_WEIGHTS", str(coco_standin))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("FACEMASK_WORKDIR", str(tmp_path))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)

    nb = read_notebook()
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    )
    try:
        client.execute()
    finally:  # keep the executed notebook for debugging
        nbformat.write(nb, str(tmp_path / "executed.ipynb"))

    cells = {c.get("id"): c for c in nb.cells}
    setup = cell_text(cells["setup"])
    exe_line = next((ln for ln in setup.splitlines() if ln.startswith("Python executable:")), None)
    assert exe_line is not None, setup
    kernel_exe = exe_line.split(":", 1)[1].strip()
    assert os.path.realpath(kernel_exe) == os.path.realpath(sys.executable), (kernel_exe, sys.executable)
    assert "on Colab: False" in setup
    assert "profile=gpu weights=coco stages=heads:0.001:1,all:0.0001:2" in cell_text(cells["runtime"])
    trained = cell_text(cells["train"])
    assert "--profile gpu --weights coco" in trained and "--config" in trained
    assert "excluding mrcnn_class_logits, mrcnn_bbox_fc, mrcnn_bbox, mrcnn_mask (trained anew)" in trained
    assert "=== Stage 2/2: layers=all" in trained

    # Data and runs went under the workdir, not the repo.
    assert (tmp_path / "datasets" / "facemask_tiny" / "train" / "via_region_data.json").is_file()
    runs = [d for d in (tmp_path / "logs").iterdir() if d.is_dir()]
    assert len(runs) == 1, runs
    run = runs[0]
    assert (run / "history.jsonl").is_file()
    assert (run / "predictions_val" / "predictions.json").is_file()
    assert (run / "eval_val" / "report.json").is_file()
    assert "val mask mAP@0.5 =" in cell_text(cells["eval"])
    assert json.loads((run / "config.json").read_text())["BACKBONE"] == "resnet101"

    # Figures were shown inline: GT samples, anchors, losses, predictions.
    for cid in ("data-show", "anchors", "losses", "infer"):
        assert any(o.output_type == "display_data" and "image/png" in o.get("data", {}) for o in cells[cid].outputs), (
            f"cell {cid} showed no figure"
        )
