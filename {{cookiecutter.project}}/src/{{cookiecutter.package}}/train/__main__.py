"""`python -m {{ cookiecutter.package }}.train ...`: see train/run.py."""

from .run import main

main()
