#!/usr/bin/env python
"""`python evaluate.py ...` from a clone: the same as `python -m facemask.evaluate` (see its --help)."""

import sys

from facemask.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
