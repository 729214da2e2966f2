#!/usr/bin/env python
"""`python inference.py ...` from a clone: the same as `python -m facemask.inference` (see its --help)."""

import sys

from facemask.inference import main

if __name__ == "__main__":
    sys.exit(main())
