"""The restic version, remembered by binary path, size and modification time.

`restic version` is a process of its own (a few tens of milliseconds, more on a loaded
host) before every command; the answer is a property of the binary, so it is kept in a
small JSON file and asked again only when the binary changes (an upgrade replaces the
file: new mtime, size or inode). A cache that cannot be read or written is ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

FILE_NAME = "restic-versions.json"


def binary_key(binary: str) -> str | None:
    """Path, inode, size and mtime of the binary `binary` names (None: not found)."""
    found = shutil.which(binary)
    if found is None:
        return None
    real = os.path.realpath(found)
    try:
        st = os.stat(real)
    except OSError:
        return None
    return f"{real}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def cached(cache_dir: Path | None, key: str | None) -> str | None:
    """The `restic version` output recorded for `key`, if any."""
    if cache_dir is None or key is None:
        return None
    try:
        data = json.loads((cache_dir / FILE_NAME).read_text())
    except (OSError, ValueError):
        return None
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def remember(cache_dir: Path | None, key: str | None, output: str) -> None:
    """Record `output` for `key` (only this binary's entry: old binaries are forgotten)."""
    if cache_dir is None or key is None or "restic " not in output:
        return
    with contextlib.suppress(OSError):
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".restic-versions-")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump({key: output}, fh)
            os.replace(tmp, cache_dir / FILE_NAME)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
