"""Private files written whole or not at all, and removed without leaving their bytes.

A secret's file is created 0600 from the start, written to a temporary name in the same
directory, fsync'ed, renamed over the old one, and the directory fsync'ed: a crash leaves
the old file or the new one, never half of one, and no temporary file survives a failure.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_private(path: Path, data: bytes, dir_mode: int = 0o700) -> None:
    """Replace `path` atomically with `data` (mode 0600); OSError on failure."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=dir_mode)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:  # mkstemp creates it 0600
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = ""
        sync_dir(path.parent)
    finally:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def destroy(path: Path) -> None:
    """Overwrite a file's bytes with zeros, then unlink it: its old content is not left in
    the blocks a plain unlink would free (on file systems that overwrite in place)."""
    with contextlib.suppress(FileNotFoundError):
        if path.is_file() and not path.is_symlink():
            size = path.stat().st_size
            with path.open("r+b") as fh:
                fh.write(b"\0" * size)
                fh.flush()
                os.fsync(fh.fileno())
        path.unlink()
        sync_dir(path.parent)


def sync_dir(directory: Path) -> None:
    """Make a rename or unlink in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
