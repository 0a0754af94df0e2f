"""The `distill` command line.

Each command lives in its own module under `distill/commands/` and registers
itself on `app`; this module only builds the app and translates errors at one
boundary: bad input exits 2 with the message and no traceback.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer
from typer.exceptions import Abort, TyperException

import dsl
from distill import commands
from distill.errors import BadInputError

app = typer.Typer(
    help="Distill small transformers into proved RASP programs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Errors that mean "the input was bad", never "the tool is broken".
BAD_INPUT_ERRORS = (dsl.DSLError, BadInputError, FileNotFoundError, IsADirectoryError)


def _register_commands() -> None:
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(app)


_register_commands()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status instead of raising SystemExit."""
    try:
        # Without standalone mode click returns the code of a typer.Exit instead of raising it.
        status = app(args=argv, standalone_mode=False)
    except BAD_INPUT_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except typer.Exit as done:
        return done.exit_code
    except SystemExit as done:  # --help and friends may exit this way
        return int(done.code or 0)
    except TyperException as error:  # usage errors: unknown option, missing argument, ...
        error.show()
        return getattr(error, "exit_code", 2)
    except Abort:
        return 130
    return status if isinstance(status, int) else 0


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
