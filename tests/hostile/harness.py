"""Running the CLI on hostile input and asserting it was refused cleanly.

`refused` runs `distill ARGS` in-process (cheap: most cases) and `refused_capped`
in a subprocess under a memory cap (for inputs meant to blow up memory or time).
Both assert: the expected exit status, no traceback, a one-line message that
names the problem, and, where given, no change at the output path.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from distill.cli import main

MEMORY_CAP = 2 * 1024**3  # bytes of address space a capped run may use
TIME_CAP = 120  # seconds a capped run may take before it counts as a hang


@dataclass
class Outcome:
    status: int
    stdout: str
    stderr: str


def run_in_process(args: list[str], capsys) -> Outcome:
    status = main([str(a) for a in args])
    captured = capsys.readouterr()
    return Outcome(status, captured.out, captured.err)


def run_capped(args: list[str], cwd: Path | None = None, limit: str = "RLIMIT_AS") -> Outcome:
    """`python -m distill.cli ARGS` with its address space capped at MEMORY_CAP.

    `limit="RLIMIT_DATA"` caps the data segment (heap and private writable mappings) instead:
    jax/XLA reserves more than 2 GB of address space at its first compile ("LLVM ERROR:
    Unable to allocate section memory" under RLIMIT_AS), so commands that run tracr
    (`compile`) need that measure; torch (`predict`, `run`) runs under either.
    """
    code = (
        "import resource, sys; "
        f"resource.setrlimit(resource.{limit}, ({MEMORY_CAP}, {MEMORY_CAP})); "
        "from distill.cli import entry_point; sys.argv = ['distill', *sys.argv[1:]]; entry_point()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=TIME_CAP,
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return Outcome(done.returncode, done.stdout, done.stderr)


def fingerprint(path: Path):
    """What is at `path` (a file's bytes, a folder's names and bytes), to show nothing changed."""
    path = Path(path)
    if path.is_symlink() or not path.exists():
        return ("link", os.readlink(path)) if path.is_symlink() else None
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    if path.is_dir():
        return tuple(
            (str(p.relative_to(path)), fingerprint(p) if p.is_file() else "dir")
            for p in sorted(path.rglob("*"))
        )
    return ("special", path.stat().st_mode)


def assert_clean_refusal(outcome: Outcome, *mentions: str, status: int = 2) -> None:
    """Exit `status`, no traceback, one `error:` line naming the problem (each of `mentions`)."""
    text = outcome.stdout + outcome.stderr
    assert outcome.status == status, (outcome.status, text[-2000:])
    assert "Traceback" not in text, text[-2000:]
    assert "MemoryError" not in text and "RecursionError" not in text, text[-2000:]
    errors = [line for line in outcome.stderr.splitlines() if line.startswith("error:")]
    if status == 2:
        assert len(errors) == 1, outcome.stderr[-2000:]
        assert len(errors[0]) <= 500, errors[0][:600]
        for mention in mentions:
            assert mention.lower() in errors[0].lower(), (mention, errors[0])
