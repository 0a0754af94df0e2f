"""Timing a pipeline's stages: each `with stage(name)` adds its seconds to `timings[name]`."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager


def stage_timer(timings: dict[str, float], progress: Callable[[str], None] | None):
    """A `stage(name)` context manager: shows the stage (progress), then adds its time."""

    @contextmanager
    def stage(name: str):
        if progress:
            progress(name)
        start = time.perf_counter()
        yield
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start

    return stage
