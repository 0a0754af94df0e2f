"""The command line starts fast and speaks only for itself.

Each command runs as a whole process, as a user runs it: `--help` must not load
jax or torch (measured with `-X importtime`), and no command's stderr carries a
line from a library's logger (absl, jax, torch) or a Python warning.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "reverse.rasp"
HEAVY = ("jax", "torch", "tracr", "z3", "networkx", "sympy", "ray")


def distill(*args, extra=()) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DISTILL_LIBRARY_LOGS"}
    return subprocess.run(
        [sys.executable, *extra, "-m", "distill.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def imported_modules(importtime_log: str) -> set[str]:
    """Top-level package names from `-X importtime` lines: `import time: self | total | name`."""
    names = set()
    for line in importtime_log.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def test_help_loads_nothing_heavy():
    done = distill("--help", extra=("-X", "importtime"))
    assert done.returncode == 0
    assert "compile" in done.stdout and "run" in done.stdout
    loaded = imported_modules(done.stderr)
    assert "distill" in loaded  # the log is read correctly
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


@pytest.mark.parametrize(
    "command",
    [
        "compile",
        "run",
        "eval",
        "equiv",
        "verify",
        "bench",
        "predict",
        "train",
        "import hf",
        "import tl",
    ],
)
def test_command_help_loads_nothing_heavy(command):
    done = distill(*command.split(), "--help", extra=("-X", "importtime"))
    assert done.returncode == 0, done.stdout
    loaded = imported_modules(done.stderr)
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_no_library_log_line_reaches_stderr(tmp_path):
    """compile (tracr, jax), predict and run (torch, z3) and eval: stdout only, stderr empty."""
    model = tmp_path / "reverse.safetensors"
    steps = [
        ("compile", EXAMPLE, "--vocab", "a,b,c,d", "--max-len", "4", "--rotate", "0", "-o", model),
        ("predict", model, "a", "b", "c"),
        ("run", model, "-o", tmp_path / "out", "--quiet"),
        ("eval", EXAMPLE, "--vocab", "a,b,c,d", "--max-len", "5", "a", "b", "c"),
    ]
    for step in steps:
        done = distill(*step)
        assert done.returncode == 0, (step, done.stderr)
        assert done.stderr == "", (step[0], done.stderr)
    assert distill("predict", model, "a", "b", "c").stdout == "c b a\n"
