#!/usr/bin/env python
"""`python app.py ...` from a clone: the same as `python -m facemask.app` (see its --help)."""

import sys

from facemask.app import main

if __name__ == "__main__":
    sys.exit(main())
