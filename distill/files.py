"""Writing outputs so that a failed run never leaves half a file over a good one.

An output location is checked before the work that fills it starts
(`check_output_file`, `check_output_dir`), a file is written to a temporary file
beside it and renamed over it (`replaced_atomically`), and a folder of outputs is
written whole into a new folder beside it and swapped in at once
(`replaced_directory`). Errors name the path the user gave, never a temporary one.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

from distill.errors import BadInputError


class OutputError(BadInputError):
    """An output location that cannot be written (exit 2, before any work where possible)."""


def _nearest_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not os.path.lexists(path):
        path = path.parent
    return path


def _check_writable_folder(path: Path, purpose: Path) -> None:
    """`path` is a folder a file can be created in (tried, so read-only mounts count too)."""
    if not path.is_dir():
        raise OutputError(f"{purpose}: {path} is not a directory")
    try:
        handle, probe = tempfile.mkstemp(dir=path, prefix=".distill-probe-")
    except OSError as error:
        raise OutputError(f"{purpose}: cannot write in {path} ({error.strerror})") from None
    os.close(handle)
    os.unlink(probe)


def check_output_file(path) -> Path:
    """Refuse an output file path that is neither absent nor a regular file, or in no writable
    folder (a missing folder is not created: a typo there is more likely than intent)."""
    path = Path(path)
    if os.path.lexists(path):
        mode = os.stat(path).st_mode if path.exists() else os.lstat(path).st_mode
        if stat.S_ISDIR(mode):
            raise OutputError(f"{path}: is a directory, expected a file to write")
        if not stat.S_ISREG(mode):
            raise OutputError(
                f"{path}: is not a regular file (a device, FIFO, socket or broken link); "
                "refusing to replace it"
            )
    parent = path.parent
    if not os.path.lexists(parent):
        raise OutputError(f"{path}: the folder {parent} does not exist")
    _check_writable_folder(parent, path)
    return path


def check_output_dir(path, owned: Collection[str]) -> Path:
    """Refuse an output folder that cannot be (re)placed whole: a path that exists and is not a
    folder, a folder holding anything but files named in `owned` (what an earlier run wrote; a
    swap would delete the rest), or a place with no writable folder above it."""
    path = Path(path)
    if os.path.lexists(path):
        if path.is_symlink() or not path.is_dir():
            raise OutputError(f"{path}: exists and is not a directory")
        here = Path.cwd().resolve()
        if path.resolve() == here or path.resolve() in here.parents:
            raise OutputError(f"{path}: is the current directory or above it; give a new one")
        strangers = sorted(entry.name for entry in path.iterdir() if entry.name not in owned)
        if strangers:
            shown = ", ".join(strangers[:3]) + (", ..." if len(strangers) > 3 else "")
            raise OutputError(
                f"{path}: holds files distill did not write ({shown}); "
                "give a new or empty directory"
            )
        _check_writable_folder(path.parent, path)
        return path
    _check_writable_folder(_nearest_existing(path), path)
    return path


@contextmanager
def replaced_atomically(path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path`, else remove it."""
    path = Path(path)
    try:
        handle, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
        )
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror}") from None
    os.close(handle)
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError) and not isinstance(
            error, FileNotFoundError | IsADirectoryError
        ):
            raise OutputError(f"cannot write {path}: {error.strerror or error}") from None
        raise


def write_text_atomically(path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`."""
    with replaced_atomically(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


@contextmanager
def replaced_directory(path) -> Iterator[Path]:
    """Yield a new empty folder beside `path` to fill; on success swap it in at once.

    The swap renames the old folder aside, renames the new one in, then removes the old
    one, so `path` holds the old outputs or the new ones, never a mix. On failure the new
    folder is removed and `path` is left as it was.
    """
    path = Path(path)
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        new = Path(tempfile.mkdtemp(dir=parent, prefix=f".{path.name}.new-"))
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from None
    old = None
    try:
        os.chmod(new, 0o777 & ~_umask())
        yield new
        if os.path.lexists(path):
            old = Path(tempfile.mkdtemp(dir=parent, prefix=f".{path.name}.old-"))
            os.replace(path, old)  # onto the empty folder just made: atomic on POSIX
        try:
            os.replace(new, path)
        except BaseException:
            if old is not None:
                os.replace(old, path)
                old = None
            raise
    except BaseException as error:
        shutil.rmtree(new, ignore_errors=True)
        if isinstance(error, OSError):
            raise OutputError(f"cannot write {path}: {error.strerror or error}") from None
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
