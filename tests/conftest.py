"""Shared fixtures: a tiny synthetic face-mask dataset and tiny configs, built once per session.

Tests that need something a clean clone lacks are marked ``@pytest.mark.needs("via_corpus")`` (the real VIA
files in ``../shared/via_corpus``, or ``$FACEMASK_VIA_CORPUS``) or ``@pytest.mark.needs("chromium")``
(``/usr/bin/chromium`` or ``$FACEMASK_CHROMIUM``, and the playwright package). They skip with the reason
when it is missing, and FAIL instead when ``FACEMASK_REQUIRE_ALL=1`` (set by ``.ci/run``), so CI runs them.
``FACEMASK_NO_BROWSER=1`` skips the browser test on purpose.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REQUIRE_ALL = os.environ.get("FACEMASK_REQUIRE_ALL") == "1"
VIA_CORPUS = Path(os.environ.get("FACEMASK_VIA_CORPUS") or ROOT.parent / "shared" / "via_corpus")
CHROMIUM = os.environ.get("FACEMASK_CHROMIUM", "/usr/bin/chromium")


def _missing(resource: str) -> str | None:
    """Why ``resource`` cannot be used here, or None when it can."""
    if resource == "via_corpus":
        return None if VIA_CORPUS.is_dir() else f"no VIA corpus at {VIA_CORPUS} (set FACEMASK_VIA_CORPUS)"
    if resource == "chromium":
        if os.environ.get("FACEMASK_NO_BROWSER") == "1":
            return "FACEMASK_NO_BROWSER=1"
        if not os.path.exists(CHROMIUM):
            return f"no browser at {CHROMIUM} (apt-get install chromium, or set FACEMASK_CHROMIUM)"
        try:
            import playwright  # noqa: F401
        except ImportError:
            return "the playwright package is missing (pip install playwright)"
        return None
    raise ValueError(f"unknown test resource {resource!r}")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "needs(resource): skip unless via_corpus/chromium is available (fail instead under FACEMASK_REQUIRE_ALL=1)",
    )


def pytest_runtest_setup(item):
    for mark in item.iter_markers("needs"):
        for resource in mark.args:
            reason = _missing(resource)
            if reason and REQUIRE_ALL:
                pytest.fail(f"{reason}; FACEMASK_REQUIRE_ALL=1 requires it", pytrace=False)
            if reason:
                pytest.skip(f"{reason} (FACEMASK_REQUIRE_ALL=1 would fail here)")


@pytest.fixture(scope="session")
def tiny_facemask_dir(tmp_path_factory) -> Path:
    """8 train / 3 val synthetic images at 128x160 (seconds to make)."""
    from facemask.synthetic import make_dataset

    out = tmp_path_factory.mktemp("facemask")
    make_dataset(out, n_train=8, n_val=3, seed=0, image_size=(128, 160))
    return out


@pytest.fixture(scope="session")
def coco_standin(tmp_path_factory) -> Path:
    """A stand-in for Matterport's ``mask_rcnn_coco.h5`` (ResNet-101, 81 classes, nested rpn_model,
    the head names of its TimeDistributed wrappers; 257 MB of random weights), written once."""
    from tools.coco_standin import write_coco_standin

    path = tmp_path_factory.mktemp("coco") / "mask_rcnn_coco.h5"
    info = write_coco_standin(str(path))
    assert info["parameters"] == 64_158_584  # Matterport's model summary for the COCO model
    return path


@pytest.fixture(scope="session")
def gpu_profile_small(tmp_path_factory) -> Path:
    """``--config`` overrides that shrink the gpu profile (ResNet-101, Matterport's heads) to 128 px
    and a few ROIs, so its recipe runs on CPU in seconds a step; the weights' shapes stay the same."""
    import json

    path = tmp_path_factory.mktemp("gpu_small") / "gpu_small.json"
    path.write_text(
        json.dumps(
            {
                "IMAGE_MIN_DIM": 128,
                "IMAGE_MAX_DIM": 128,
                "IMAGES_PER_GPU": 1,
                "STEPS_PER_EPOCH": 2,
                "VALIDATION_STEPS": 1,
                "RPN_ANCHOR_SCALES": [8, 16, 32, 64, 128],
                "PRE_NMS_LIMIT": 500,
                "POST_NMS_ROIS_TRAINING": 100,
                "POST_NMS_ROIS_INFERENCE": 50,
                "TRAIN_ROIS_PER_IMAGE": 32,
                "MAX_GT_INSTANCES": 20,
                "DETECTION_MAX_INSTANCES": 20,
            }
        )
    )
    return path
