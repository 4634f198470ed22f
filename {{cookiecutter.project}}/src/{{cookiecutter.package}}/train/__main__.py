"""`python -m {{ cookiecutter.package }}.train ...`: see train/run.py."""

import sys

from ..config import OverrideError, check_overrides
from .run import main

try:
    check_overrides(sys.argv[1:])  # before Hydra: its own messages for these suggest the `+` form
except OverrideError as err:
    print(f"error: {err}", file=sys.stderr)
    sys.exit(2)
main()
