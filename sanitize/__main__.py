"""`python -m sanitize` runs the command line."""

import sys

from sanitize.cli import main

sys.exit(main())
