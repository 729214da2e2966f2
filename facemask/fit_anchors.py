"""Fit RPN anchor scales/ratios to a VIA dataset's masks and write a config snippet.

Boxes are measured at the network input size (after the model's resize), anchors are fitted with
:func:`mrcnn.anchor_fit.fit_anchors_to_dataset`, a defaults-vs-fitted table is printed, and
``{"RPN_ANCHOR_SCALES": [...], "RPN_ANCHOR_RATIOS": [...]}`` is written (JSON, or YAML for
``.yaml``/``.yml``), ready for ``Config.apply_file`` / ``--config``.

Usage::

    facemask-fit-anchors --dataset datasets/facemask --subset train --image-size 512 \\
        --out anchors.json --plot anchors.png --holdout val
    python -m facemask.fit_anchors --dataset datasets/facemask --classes subtypes --backbone resnet18 --out a.yaml

``facemask.train --anchors auto`` calls the library function with the dataset and config it holds;
``run([...same arguments...])`` returns a dict with the snippet, the
:class:`~mrcnn.anchor_fit.AnchorFit` and the coverage numbers.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from mrcnn.config import Config

from .cli import SCALE_MARGIN_HELP, add_class_args, cli_main, scale_margin
from .data import ClassSpec, load_dataset
from .profiles import PROFILES


def build_config(args) -> Config:
    """The face-mask config of ``--profile`` (so "defaults" means the anchors that run would use),
    with ``--config``, ``--image-size`` and ``--backbone`` applied."""
    from .profiles import make_config

    config = make_config(args.profile, args.spec, args.config)
    if args.image_size:
        n = int(args.image_size)
        config.apply({"IMAGE_MAX_DIM": n, "IMAGE_MIN_DIM": min(int(config.IMAGE_MIN_DIM or n), n)})
    if args.backbone and args.backbone != config.BACKBONE:
        from mrcnn.model.backbone import derive_strides

        config.apply({"BACKBONE": args.backbone})
        config.apply({"BACKBONE_STRIDES": derive_strides(config)})
    return config


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="facemask-fit-anchors",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--dataset", required=True, help="dataset root holding SUBSET/via_region_data.json")
    ap.add_argument("--subset", default="train")
    ap.add_argument(
        "--unknown",
        choices=("error", "skip"),
        default="error",
        help="regions without a usable class: stop with the list (error) or leave them out (skip)",
    )
    add_class_args(ap, "Default: single.")
    ap.add_argument(
        "--profile",
        choices=tuple(PROFILES),
        default="gpu",
        help="face-mask config profile whose anchors are the defaults (gpu = Matterport's)",
    )
    ap.add_argument("--config", help="JSON/YAML overrides applied to the base config (e.g. a run's config.json)")
    ap.add_argument("--image-size", type=int, help="IMAGE_MAX_DIM (IMAGE_MIN_DIM is capped to it)")
    ap.add_argument("--backbone", help="backbone name; its strides are derived and written to the snippet")
    ap.add_argument("--out", help="write the config snippet here (.json, or .yaml/.yml)")
    ap.add_argument("--plot", help="write a PNG of box shapes vs default/fitted anchors here")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-ratios", type=int, help="number of ratios (default: as the config, keeps the RPN head shape)")
    ap.add_argument("--factors", type=float, nargs="+", help="scale-progression factors to try (e.g. 2 for FPN's)")
    ap.add_argument("--objective", choices=("auto", "positional", "shape"), default="auto")
    ap.add_argument(
        "--scale-margin", type=scale_margin, default=2.0, metavar="M", help=SCALE_MARGIN_HELP + " (default 2)"
    )
    ap.add_argument(
        "--holdout",
        metavar="SUBSET",
        help="also check the default and fitted anchors on this subset's boxes (e.g. val): coverage, and "
        "each box that no anchor reaches at IoU 0.5, by image",
    )
    ap.add_argument("--quiet", action="store_true", help="no progress bar and no table")
    return ap.parse_args(argv)


def run(args_list=None) -> dict[str, Any]:
    """Do everything the CLI does; returns ``{"snippet", "fit", "report", "n_boxes", "config", "out", "plot",
    "holdout"}`` (``holdout``: :func:`check_holdout`'s dict, or None)."""
    from mrcnn.anchor_fit import fit_anchors_to_dataset, format_fit_report, format_holdout_report
    from mrcnn.visualize import plot_fitted_anchors

    args = parse_args(args_list)
    args.spec = ClassSpec.parse(args.classes, args.class_key)
    config = build_config(args) if args.spec.mode != "auto" else None
    dataset = load_dataset(args.dataset, args.subset, args.spec, verbose=not args.quiet, unknown=args.unknown)
    if config is None:  # auto: the class count is known now
        args.spec = dataset.class_spec(args.spec)
        config = build_config(args)
    held_out = None
    if args.holdout:  # loaded before the fit, so a wrong subset fails at once
        held_out = load_dataset(args.dataset, args.holdout, args.spec, verbose=False, unknown=args.unknown)
    kwargs = {
        "seed": args.seed,
        "n_ratios": args.n_ratios,
        "objective": args.objective,
        "scale_margin": args.scale_margin,
    }
    if args.factors:
        kwargs["factors"] = tuple(args.factors)
    try:
        fit = fit_anchors_to_dataset(dataset, config, progress=not args.quiet, **kwargs)
    except ValueError as e:
        raise ValueError(f"{args.dataset}/{args.subset}: {e}") from None
    snippet = fit.to_config()
    if args.backbone:
        snippet["BACKBONE"] = config.BACKBONE
        snippet["BACKBONE_STRIDES"] = [int(s) for s in config.BACKBONE_STRIDES]
    if not args.quiet:
        print(format_fit_report(fit.report))
    holdout = None
    if held_out is not None:
        where = f"{args.dataset}/{args.holdout}"
        holdout = check_holdout(held_out, config, fit.report, where)
        if not args.quiet:
            print(format_holdout_report(holdout, where, holdout["labels"]))
    if args.out:
        Config.write_values(snippet, args.out)  # JSON, or YAML for .yaml/.yml
        if not args.quiet:
            print(f"wrote {args.out}")
    if args.plot:
        plot_fitted_anchors(fit, args.plot, f"{args.dataset}/{args.subset}")
        if not args.quiet:
            print(f"wrote {args.plot}")
    return {
        "snippet": snippet,
        "fit": fit,
        "report": fit.report,
        "n_boxes": int(len(fit.boxes)),
        "config": config,
        "out": args.out,
        "plot": args.plot,
        "holdout": holdout,
    }


def check_holdout(dataset, config, report: dict, where: str) -> dict[str, Any]:
    """:func:`mrcnn.anchor_fit.holdout_coverage` on a held-out ``dataset``'s boxes, plus ``labels``: each
    box's image file."""
    import numpy as np

    from mrcnn.anchor_fit import boxes_at_input_size, holdout_coverage

    boxes, labels = [], []
    for image_id, info in enumerate(dataset.image_info):
        b = boxes_at_input_size(dataset, config, [image_id], progress=False)
        boxes.append(b)
        labels += [os.path.basename(str(info.get("path", info["id"])))] * len(b)
    boxes = np.concatenate(boxes) if boxes else np.zeros((0, 4))
    if len(boxes) == 0:
        raise ValueError(f"{where}: no annotated instance to check the anchors on")
    return {**holdout_coverage(boxes, report, config), "labels": labels}


def main(argv=None) -> int:
    return cli_main(run, argv)


if __name__ == "__main__":
    sys.exit(main())
