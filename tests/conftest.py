"""Shared fixtures: a tiny synthetic face-mask dataset and tiny configs, built once per session."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def tiny_facemask_dir(tmp_path_factory) -> Path:
    """8 train / 3 val synthetic images at 128x160 (seconds to make)."""
    from facemask.synthetic import make_dataset

    out = tmp_path_factory.mktemp("facemask")
    make_dataset(out, n_train=8, n_val=3, seed=0, image_size=(128, 160))
    return out
