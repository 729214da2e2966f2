"""Fit RPN anchor scales/ratios to a VIA dataset's masks and write a config snippet.

Boxes are measured at the network input size (after the model's resize), anchors are fitted with
:func:`mrcnn.ops.anchor_fit.fit_anchors`, a defaults-vs-fitted table is printed, and
``{"RPN_ANCHOR_SCALES": [...], "RPN_ANCHOR_RATIOS": [...]}`` is written (JSON, or YAML for
``.yaml``/``.yml``), ready for ``Config.apply_file`` / ``--config``.

Usage::

    python tools/fit_anchors.py --dataset datasets/facemask --subset train --image-size 512 \\
        --out anchors.json --plot anchors.png
    python -m tools.fit_anchors --dataset datasets/facemask --classes subtypes --backbone resnet18 --out a.yaml

From Python (``train.py --anchors auto``): ``run([...same arguments...])`` returns a dict with the
snippet, the :class:`~mrcnn.ops.anchor_fit.AnchorFit` and the coverage numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mrcnn.config import Config  # noqa: E402

def load_dataset(dataset_dir: str, subset: str, classes: str = "single", verbose: bool = False):
    """A prepared face-mask dataset of ``dataset_dir/subset`` (facemask's loader)."""
    import facemask

    return facemask.load_dataset(dataset_dir, subset, classes, verbose=verbose)


def build_config(args) -> Config:
    """The face-mask config of ``--profile`` (so "defaults" means the anchors that run would use),
    with ``--config``, ``--image-size`` and ``--backbone`` applied."""
    import facemask

    config = facemask.make_config(args.profile, args.classes, args.config)
    if args.image_size:
        n = int(args.image_size)
        config.apply({"IMAGE_MAX_DIM": n, "IMAGE_MIN_DIM": min(int(config.IMAGE_MIN_DIM or n), n)})
    if args.backbone and args.backbone != config.BACKBONE:
        from mrcnn.model.backbone import derive_strides

        config.apply({"BACKBONE": args.backbone})
        config.apply({"BACKBONE_STRIDES": derive_strides(config)})
    return config


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m tools.fit_anchors", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--dataset", required=True, help="dataset root holding SUBSET/via_region_data.json")
    ap.add_argument("--subset", default="train")
    ap.add_argument("--classes", choices=("single", "subtypes"), default="single")
    ap.add_argument("--profile", choices=("cpu", "gpu", "tiny"), default="gpu",
                    help="face-mask config profile whose anchors are the defaults (gpu = Matterport's)")
    ap.add_argument("--config", help="JSON/YAML overrides applied to the base config (e.g. a run's config.json)")
    ap.add_argument("--image-size", type=int, help="IMAGE_MAX_DIM (IMAGE_MIN_DIM is capped to it)")
    ap.add_argument("--backbone", help="backbone name; its strides are derived and written to the snippet")
    ap.add_argument("--out", help="write the config snippet here (.json, or .yaml/.yml)")
    ap.add_argument("--plot", help="write a PNG of box shapes vs default/fitted anchors here")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-ratios", type=int, help="number of ratios (default: as the config, keeps the RPN head shape)")
    ap.add_argument("--factors", type=float, nargs="+", help="scale-progression factors to try (e.g. 2 for FPN's)")
    ap.add_argument("--objective", choices=("auto", "positional", "shape"), default="auto")
    ap.add_argument("--quiet", action="store_true", help="no progress bar and no table")
    return ap.parse_args(argv)


def _fmt(cov) -> str:
    if cov is None:
        return f"{'-':>9} {'-':>11} {'-':>11}"
    return f"{cov['mean_iou']:9.3f} {cov['recall@0.5']:11.3f} {cov['recall@0.7']:11.3f}"


def format_table(report: dict) -> str:
    d, f = report["default"], report["fitted"]
    lines = [f"{report['n_boxes']} boxes at input size {report['image_shape'][0]}x{report['image_shape'][1]}, "
             f"strides {report['strides']}, objective: {report['objective']}",
             f"{'':22}{'mean IoU':>9} {'recall@0.5':>11} {'recall@0.7':>11}   per-level best"]
    for kind in ("shape", "positional"):
        for name, part in (("default", d), ("fitted", f)):
            cov = part[kind]
            levels = "" if cov is None else str(cov["per_level"])
            lines.append(f"{kind + '-only' if kind == 'shape' else kind:11} {name:10}{_fmt(cov)}   {levels}")
    lines.append(f"scales  default {d['scales']}  ->  fitted {f['scales']}")
    lines.append(f"ratios  default {d['ratios']}  ->  fitted {f['ratios']}")
    if report.get("kept_default"):
        lines.append("(the config's anchors already cover these boxes best; kept)")
    return "\n".join(lines)


def write_snippet(path: str, snippet: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        if path.endswith((".yaml", ".yml")):
            import yaml

            yaml.safe_dump(snippet, f, sort_keys=False)
        else:
            json.dump(snippet, f, indent=2)
            f.write("\n")
    os.replace(tmp, path)


def run(args_list=None) -> dict[str, Any]:
    """Do everything the CLI does; returns ``{"snippet", "fit", "report", "n_boxes", "config", "out", "plot"}``."""
    import numpy as np

    from mrcnn.ops.anchor_fit import anchor_shapes, boxes_at_input_size, fit_anchors, validate_fit

    args = parse_args(args_list)
    config = build_config(args)
    dataset = load_dataset(args.dataset, args.subset, args.classes, verbose=not args.quiet)
    boxes = boxes_at_input_size(dataset, config, progress=not args.quiet)
    if len(boxes) == 0:
        raise ValueError(f"{args.dataset}/{args.subset} has no annotated instances to fit anchors to")
    kwargs = {"seed": args.seed, "n_ratios": args.n_ratios, "objective": args.objective}
    if args.factors:
        kwargs["factors"] = tuple(args.factors)
    fit = fit_anchors(boxes, config, **kwargs)
    validate_fit(fit, config)

    snippet = fit.to_config()
    if args.backbone:
        snippet["BACKBONE"] = config.BACKBONE
        snippet["BACKBONE_STRIDES"] = [int(s) for s in config.BACKBONE_STRIDES]
    if not args.quiet:
        print(format_table(fit.report))
    if args.out:
        write_snippet(args.out, snippet)
        if not args.quiet:
            print(f"wrote {args.out}")
    if args.plot:
        from mrcnn.visualize import plot_anchor_fit

        hw = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1)
        d = fit.report["default"]
        plot_anchor_fit(hw, anchor_shapes(d["scales"], d["ratios"]), anchor_shapes(fit.scales, fit.ratios),
                        args.plot, title=f"{args.dataset}/{args.subset}: {len(boxes)} GT boxes at "
                                         f"{config.IMAGE_SHAPE[0]}x{config.IMAGE_SHAPE[1]} input")
        if not args.quiet:
            print(f"wrote {args.plot}")
    return {"snippet": snippet, "fit": fit, "report": fit.report, "n_boxes": int(len(boxes)),
            "config": config, "out": args.out, "plot": args.plot}


def main(argv=None) -> int:
    run(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
