"""The house's layering, read from the source: every import (lazy ones inside functions included)
goes to a lower layer, the library never imports the application or a top-level script, and no
two modules import each other at load time."""

from __future__ import annotations

import ast
import collections
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Lowest first. A module may import its own part and the parts of lower layers only.
LAYERS = [
    {"mrcnn.runs", "mrcnn.ops"},
    {"mrcnn.config", "mrcnn.data", "mrcnn.metrics"},
    {"mrcnn.anchor_fit", "mrcnn.model"},
    {"mrcnn.visualize"},
    {"mrcnn.evaluation", "mrcnn.serve"},
    {"facemask"},
]
SCRIPTS = {"train", "evaluate", "inference", "app"}


def _modules() -> dict[str, Path]:
    mods = {}
    for package in ("mrcnn", "facemask"):
        for f in (ROOT / package).rglob("*.py"):
            parts = f.relative_to(ROOT).with_suffix("").parts
            mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return mods


def _imports(mods: dict[str, Path], top_level_only: bool = False) -> dict[str, set[str]]:
    """module -> the modules of this repo it imports (a name imported from a package resolves to
    its submodule when it is one)."""
    edges: dict[str, set[str]] = collections.defaultdict(set)
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        nodes = tree.body if top_level_only else ast.walk(tree)
        package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        for node in nodes:
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            else:
                continue
            for target in targets:
                if target.split(".")[0] in SCRIPTS and target not in mods:
                    edges[mod].add(f"<script {target}>")
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                if target and target != mod:
                    edges[mod].add(target)
    return edges


def _part(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "mrcnn" else parts[0]


def _layer(module: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if _part(module) in layer)


def test_every_part_has_a_layer():
    parts = {_part(m) for m in _modules()} - {"mrcnn"}
    unplaced = parts - set().union(*LAYERS)
    assert not unplaced, f"add these to LAYERS (and the README's layout): {sorted(unplaced)}"


def test_imports_go_down_the_layers_only():
    mods = _modules()
    wrong = []
    for mod, targets in _imports(mods).items():
        if mod == "mrcnn":
            continue
        for target in targets:
            if target.startswith("<script"):
                wrong.append(f"{mod} imports the top-level script {target}")
            elif target != "mrcnn" and _part(target) != _part(mod) and _layer(target) >= _layer(mod):
                wrong.append(f"{mod} (layer {_layer(mod)}) imports {target} (layer {_layer(target)})")
    assert not wrong, "\n".join(sorted(wrong))


def test_the_library_never_imports_the_application():
    edges = _imports(_modules())
    wrong = sorted(
        f"{m} -> {t}"
        for m, ts in edges.items()
        if m.startswith("mrcnn")
        for t in ts
        if t.startswith(("facemask", "<script"))
    )
    assert not wrong, wrong


def test_no_import_cycle_at_load_time():
    """Module-level imports only (lazy imports inside functions cannot deadlock an import)."""
    edges = _imports(_modules(), top_level_only=True)
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if nxt.startswith("<"):
                continue
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(nxt) :] + [nxt]))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])


def test_the_checker_sees_lazy_and_relative_imports():
    """The rules above are only as good as the import reader: it must see a lazy relative import."""
    edges = _imports(_modules())
    assert "mrcnn.model.maskrcnn" in edges["mrcnn.evaluation"]  # lazy, inside PeriodicEvaluation
    assert "facemask.cli" in edges["facemask.train"]  # from .cli import ...
    assert "mrcnn.ops.anchors" in edges["mrcnn.data.pipeline"]


def test_the_heads_are_siblings():
    """The RPN, box and mask heads each keep their layers, losses and post-processing; what they share
    (ROI sampling with its box and mask targets, ROIAlign, losses) sits below them, so none imports another."""
    heads = {"mrcnn.model.rpn", "mrcnn.model.box_head", "mrcnn.model.mask_head"}
    edges = _imports(_modules())
    wrong = sorted(f"{h} -> {t}" for h in heads for t in edges.get(h, ()) if t in heads)
    assert not wrong, wrong
    assert "mrcnn.model.roi_targets" in edges["mrcnn.model.graph"]
