"""The `distill` command line.

Each command is a module of this package that registers itself on `app`. Command
modules import only typer and the standard library at the top; what a command
needs (torch, tracr and jax, Z3) is imported when that command runs, so `--help`
answers at once. This module builds the app, keeps libraries' log noise off the
terminal, and translates errors at one boundary: bad input exits 2 with the
message and no traceback.
"""

from __future__ import annotations

import importlib
import sys

import typer
from typer.exceptions import Abort, TyperException

from distill.cli.quiet import silence_library_logs
from distill.errors import BadInputError

COMMANDS = (
    "compile",
    "train",
    "import_",
    "predict",
    "eval",
    "run",
    "verify",
    "equiv",
    "bench",
    "demo",
)

app = typer.Typer(
    help="Distill small transformers into proved RASP programs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _name in COMMANDS:
    importlib.import_module(f"{__name__}.{_name}").register(app)


def _bad_input_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "the input was bad", never "the tool is broken"."""
    # dsl is imported only once an error is being classified (it loads lark).
    import dsl

    return (dsl.DSLError, BadInputError, FileNotFoundError, IsADirectoryError)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status instead of raising SystemExit."""
    try:
        # Without standalone mode click returns the code of a typer.Exit instead of raising it.
        status = app(args=argv, standalone_mode=False)
    except typer.Exit as done:
        return done.exit_code
    except SystemExit as done:  # --help and friends may exit this way
        return int(done.code or 0)
    except TyperException as error:  # usage errors: unknown option, missing argument, ...
        error.show()
        return getattr(error, "exit_code", 2)
    except Abort:
        return 130
    except Exception as error:
        if isinstance(error, _bad_input_errors()):
            print(f"error: {error}", file=sys.stderr)
            return 2
        raise
    return status if isinstance(status, int) else 0


def entry_point() -> None:
    silence_library_logs()
    sys.exit(main())
