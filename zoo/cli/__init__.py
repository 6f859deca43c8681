"""The `zoo` command line: a thin layer over the Python API (each command calls one or two public functions).

Conventions every command follows: `-h` and `--help`; options with fixed choices typed with the enums of
zoo/choices.py; tables made by `new_table` (cells wrap, nothing is cut at any width or in a pipe) and each with a
`--json` form; plain help text laid out by click (wrapped, never cut). `base` holds the app and what commands share;
the commands live in `models`, `train`, `translate` and `measure`, registered in that order (the order of
`zoo --help`); plugins add theirs through the `register_commands` hook when `main` runs.
"""

# isort: off
# Importing a command module registers its commands, in this order (the order of `zoo --help`).
from . import models, train, translate, measure  # noqa: F401
# isort: on
from .base import app, exit_with_error, main
from .train import setting_flag, without_option

__all__ = ["app", "exit_with_error", "main", "setting_flag", "without_option"]
