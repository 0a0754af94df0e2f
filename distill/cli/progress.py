"""Progress on the terminal: a rich status line per pipeline stage, silent when not wanted."""

from __future__ import annotations

import sys
from contextlib import contextmanager

from rich.console import Console


@contextmanager
def stage_progress(quiet: bool = False, description: str = "distilling"):
    """Yield a callback `stage(name)` that shows the current stage; no-op when quiet or piped."""
    console = Console(file=sys.stderr)
    if quiet or not console.is_terminal:
        yield lambda name: None
        return
    with console.status(f"{description}…") as status:
        yield lambda name: status.update(f"{description}: {name}…")
