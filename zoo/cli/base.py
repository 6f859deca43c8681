"""What every `zoo` command shares: the typer app and its conventions (`-h`, the whole first paragraph of each
command in `zoo --help`, plain click help that is never cut), the consoles, `new_table` (cells wrap, never an
ellipsis; each table has a `--json` form), the progress bar, shared option groups (`with_options`), and `main`: a
ZooError or a failure of the machine is one line and exit code 2."""

from __future__ import annotations

import functools
import inspect
import json
import sys
import warnings
from typing import Optional

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from typer.core import TyperGroup

from .. import __version__
from ..devices import tune_cpu_allocator
from ..environment import epilog
from ..errors import ZooError, environment_problem
from ..plugins import register_commands


class CommandsInFull(TyperGroup):
    """`zoo --help` lists each command with its whole first paragraph, wrapped (click cuts it to one line with '...')."""

    def format_commands(self, ctx, formatter) -> None:
        commands = [(name, self.get_command(ctx, name)) for name in self.list_commands(ctx)]
        rows = [(name, inspect.cleandoc(command.help or "").split("\n\n")[0].replace("\n", " "))
                for name, command in commands if command is not None and not command.hidden]  # fmt: skip
        with formatter.section("Commands"):
            formatter.write_dl(rows)


app = typer.Typer(
    name="zoo",
    cls=CommandsInFull,
    help="A multi-domain StyleGAN2 model zoo for unsupervised image-to-image translation.",
    epilog=epilog(),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: wrapped to the width, never an option name cut short
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
console = Console(soft_wrap=True)  # lines longer than the terminal are not broken: paths stay whole in a pipe
error_console = Console(stderr=True, soft_wrap=True)
DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps."


def new_table(*columns: str, right: tuple[str, ...] = (), **options) -> Table:
    """A table whose cells wrap and fold words longer than their column, so nothing is cut with an ellipsis at any
    width or in a pipe (`--json` gives the same rows unwrapped); `right` names right-aligned columns. Lines only under
    the header and no outer edge: the most room for the cells."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0), **options)
    for column in columns:
        table.add_column(column, overflow="fold", justify="right" if column in right else "left")
    return table


def print_json(data) -> None:
    console.print_json(json.dumps(data))


def progress_bar() -> Progress:
    """Progress on stderr, shown only on a terminal (logs and pipes get no bar residue)."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=error_console, disable=not error_console.is_terminal,
    )


def version_callback(value: bool):
    if value:
        console.print(f"zoo {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Optional[bool] = typer.Option(None, "--version", callback=version_callback, is_eager=True, help="Print the version."),
):
    """Run `zoo COMMAND --help` for a command's options."""


def show_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings as one plain line on stderr, like errors."""
    error_console.print(f"zoo: warning: {message}", markup=False, highlight=False, soft_wrap=True)


def with_options(options: dict, parameter: str, collect):
    """A decorator giving a command a shared group of options (name -> (type, typer option)); the command receives
    them as `collect(values)` in its `parameter` argument, so commands that share options declare them once."""

    def decorate(command):
        signature = inspect.signature(command)
        own = [value for name, value in signature.parameters.items() if name != parameter]
        added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)
                 for name, (annotation, option) in options.items()]  # fmt: skip

        @functools.wraps(command)
        def run(**values):
            return command(**{parameter: collect({name: values.pop(name) for name in options})}, **values)

        run.__signature__ = signature.replace(parameters=own + added)
        return run

    return decorate


def main() -> None:
    """Run the CLI. A ZooError (a user's mistake) and a failure of the machine (read-only or full disk, a name too long,
    out of memory: `environment_problem`) are one line and exit code 2; anything else is a bug and keeps its traceback.
    Typer turns Ctrl-C into exit code 130."""
    warnings.showwarning = show_warning
    tune_cpu_allocator()
    try:
        register_commands(app)  # third-party plugins' commands (the register_commands hook)
        app()
    except ZooError as error:
        exit_with_error(str(error))
    except Exception as error:
        problem = environment_problem(error)
        if problem is None:
            raise
        exit_with_error(problem)


def exit_with_error(message: str) -> None:
    error_console.print(f"zoo: error: {message}", markup=False, highlight=False, soft_wrap=True)
    sys.exit(2)
