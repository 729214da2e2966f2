#!/usr/bin/env python
"""Strip outputs from Jupyter notebooks before they are committed.

Removes code-cell outputs, resets ``execution_count`` to null, drops per-cell execution
metadata (``execution``, ``collapsed``, ``scrolled``) and kernel-run noise from the notebook
metadata (``widgets``), then writes the file back as nbformat v4 (validated).

Usage::

    python tools/strip_notebook.py notebooks/train_facemask.ipynb      # rewrite in place
    python tools/strip_notebook.py --check notebooks/*.ipynb           # exit 1 if any has outputs
"""

from __future__ import annotations

import argparse
import sys

CELL_METADATA_NOISE = ("execution", "collapsed", "scrolled", "ExecuteTime")
NOTEBOOK_METADATA_NOISE = ("widgets",)


def strip(nb) -> bool:
    """Strip ``nb`` (a NotebookNode) in place; returns True when anything changed."""
    changed = False
    for cell in nb.cells:
        for key in CELL_METADATA_NOISE:
            if key in cell.get("metadata", {}):
                del cell.metadata[key]
                changed = True
        if cell.cell_type != "code":
            if "outputs" in cell or "execution_count" in cell:  # invalid on markdown/raw cells
                cell.pop("outputs", None)
                cell.pop("execution_count", None)
                changed = True
            continue
        if cell.get("outputs"):
            cell.outputs = []
            changed = True
        if cell.get("execution_count") is not None:
            cell.execution_count = None
            changed = True
    for key in NOTEBOOK_METADATA_NOISE:
        if key in nb.metadata:
            del nb.metadata[key]
            changed = True
    return changed


def is_stripped(nb) -> bool:
    return all(
        cell.cell_type != "code" or (not cell.get("outputs") and cell.get("execution_count") is None)
        for cell in nb.cells
    )


def main(argv=None) -> int:
    import nbformat

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", help="notebook files")
    p.add_argument("--check", action="store_true", help="only report notebooks that are not stripped (exit 1)")
    args = p.parse_args(argv)

    status = 0
    for path in args.paths:
        nb = nbformat.read(path, as_version=4)
        if args.check:
            if not is_stripped(nb):
                print(f"{path}: has outputs or execution counts; run python tools/strip_notebook.py {path}")
                status = 1
            continue
        if strip(nb):
            nbformat.validate(nb)
            nbformat.write(nb, path)
            print(f"stripped {path}")
    return status


if __name__ == "__main__":
    sys.exit(main())
