"""The restic version is remembered per binary and asked again when the binary changes."""

from __future__ import annotations

import os
from pathlib import Path

from orchestrator.restic import version_cache


def test_remembered_until_the_binary_changes(tmp_path: Path) -> None:
    binary = tmp_path / "bin" / "restic"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\necho restic 0.14.0\n")
    binary.chmod(0o755)
    cache = tmp_path / "cache"
    key = version_cache.binary_key(str(binary))
    assert key is not None and version_cache.cached(cache, key) is None
    version_cache.remember(cache, key, "restic 0.14.0 compiled with go1.19.8")
    assert version_cache.cached(cache, key) == "restic 0.14.0 compiled with go1.19.8"
    assert not [p for p in cache.iterdir() if p.name != version_cache.FILE_NAME]  # no temp
    # an upgrade replaces the file: another size and mtime, so another key
    binary.write_text("#!/bin/sh\necho restic 0.18.0 compiled\n")
    os.utime(binary, ns=(1, 1))
    changed = version_cache.binary_key(str(binary))
    assert changed != key and version_cache.cached(cache, changed) is None


def test_what_is_not_a_version_or_not_readable_is_ignored(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    version_cache.remember(cache, "k", "no such command")  # not restic's answer
    assert version_cache.cached(cache, "k") is None
    cache.mkdir(exist_ok=True)
    (cache / version_cache.FILE_NAME).write_text("{not json")
    assert version_cache.cached(cache, "k") is None
    assert version_cache.binary_key("no-such-restic-binary-here") is None
