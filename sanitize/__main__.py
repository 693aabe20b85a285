"""`python -m sanitize` runs the command line."""

import sys

from sanitize.cli import entry

sys.exit(entry())
