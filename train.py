#!/usr/bin/env python
"""`python train.py ...` from a clone: the same as `python -m facemask.train` (see its --help)."""

import sys

from facemask.train import main

if __name__ == "__main__":
    sys.exit(main())
