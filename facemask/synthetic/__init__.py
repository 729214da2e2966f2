"""Deterministic synthetic face-mask dataset generator.

Real face-mask photographs cannot be shipped with the project, so this module
draws its own: procedurally rendered people (skin tones from light to dark,
hair styles, eyes, brows, nose, ears, neck and shoulders, head roll and some
yaw) on cluttered backgrounds, some of them wearing a face mask of one of four
kinds (``surgical``, ``n95``, ``cloth``, ``fashion``).

The output uses the Matterport "balloon" layout::

    out_dir/train/*.jpg
    out_dir/train/via_region_data.json      # VIA 2.x export
    out_dir/val/*.jpg
    out_dir/val/via_region_data.json

Only the visible face coverings are annotated (one polygon region each, with
``region_attributes.mask_type``).  Unmasked faces are left unannotated on
purpose: they are the negatives the model has to learn to ignore.

Every annotation polygon is the exact outline the mask was filled with
(``skimage.draw.polygon`` of the annotated vertices gives back the drawn mask
pixels), and heads never overlap (placement rejection), so annotations always
describe the visible mask.

Everything is deterministic: image ``index`` of split ``split`` is drawn from
``numpy.random.default_rng([seed, split_id, index])`` alone, so the same seed
gives byte-identical JPEGs and JSON, and images do not depend on each other
(generating 12 images yields the first 12 of a 200-image run).

Usage::

    python -m facemask.synthetic --out datasets/facemask --train 200 --val 50
    facemask-synthetic --out datasets/facemask --size 384x512 --overwrite

The package's parts: ``palette`` (colours), ``geometry`` (the face-local frame, polygon helpers),
``masks`` (the four kinds of covering), ``faces`` (people), ``scene`` (:func:`draw_sample`),
``dataset`` (files and VIA JSON), ``cli``.
"""

from __future__ import annotations

from .cli import main
from .dataset import (
    ANNOTATION_FILE,
    JPEG_QUALITY,
    image_sizes,
    is_negative_index,
    make_dataset,
    render_item,
    summarize_dataset,
)
from .masks import MASK_TYPES
from .scene import draw_sample

__all__ = [
    "MASK_TYPES",
    "JPEG_QUALITY",
    "ANNOTATION_FILE",
    "draw_sample",
    "render_item",
    "image_sizes",
    "is_negative_index",
    "make_dataset",
    "summarize_dataset",
    "main",
]
