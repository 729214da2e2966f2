"""Mask R-CNN on TensorFlow 2 + Keras 3 (Matterport-compatible API)."""

import os as _os

# TensorFlow's C++ info/warning chatter (oneDNN notices, grappler cost-model warnings) hides the
# messages users need; keep errors. Set TF_CPP_MIN_LOG_LEVEL yourself to override.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
