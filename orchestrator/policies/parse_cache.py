"""The parsed policies.toml, kept as JSON in the state directory and keyed by the file's
SHA-256, so a command over 10,000 policies does not re-read TOML it already read
(pure-Python tomllib: about 0.8 s for such a file; json: about 0.15 s).

Safe by construction: JSON only (never pickle); used only when the digest of the bytes
just read matches, the document's own `state_dir` names the folder the cache was found
in, and every value is one JSON gives back unchanged; anything else (no state directory
yet, a damaged or foreign cache file, TOML dates, a read-only folder) parses the TOML
as before. The cache is a copy of the file's content, which holds no secret values.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

CACHE_NAME = "config-cache.json"
VERSION = 1
# `[orchestrator]` up to the next table header, and a plain `state_dir = "..."` in it.
_SECTION = re.compile(r"^\s*\[\s*orchestrator\s*\]\s*(?:#.*)?$(.*?)(?=^\s*\[|\Z)", re.M | re.S)
_STATE_DIR = re.compile(r'^\s*state_dir\s*=\s*"([^"\\]*)"\s*(?:#.*)?$', re.M)


def state_dir_hint(text: str, base: Path) -> Path | None:
    """Where the document's state directory probably is, read without a TOML parser
    (None: not plainly written). Only a hint: the cached document must agree."""
    section = _SECTION.search(text)
    if section is None:
        return None if "state_dir" in text else base / "var"
    found = _STATE_DIR.findall(section.group(1))
    if len(found) > 1 or "~" in "".join(found):
        return None
    if not found:
        return None if "state_dir" in section.group(1) else base / "var"
    return base / found[0]


def document_state_dir(doc: dict[str, Any], base: Path) -> Path | None:
    """The state directory a parsed document names, as the loader reads it (None: not
    a plain string, which the loader will report)."""
    section = doc.get("orchestrator", {})
    if not isinstance(section, dict):
        return None
    value = section.get("state_dir", "var")
    if not isinstance(value, str) or not value or value.startswith("~") or "\x00" in value:
        return None
    return base / value


def json_exact(value: Any) -> bool:
    """Whether JSON gives the value back unchanged (no TOML dates or times)."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and json_exact(v) for k, v in value.items())
    if isinstance(value, list):
        return all(json_exact(v) for v in value)
    return value is None or isinstance(value, str | int | float | bool)


def load(
    text: str, digest: str, base: Path, parse: Callable[[str], dict[str, Any]]
) -> dict[str, Any]:
    """The parsed document: from the cache when it holds this digest, else `parse(text)`
    (whose exceptions pass through), then cached for the next command."""
    hint = state_dir_hint(text, base)
    if hint is None:
        return parse(text)
    cache = hint / CACHE_NAME
    doc = _read(cache, digest)
    if doc is not None and document_state_dir(doc, base) == hint:
        return doc
    doc = parse(text)
    if document_state_dir(doc, base) == hint and hint.is_dir() and json_exact(doc):
        _write(cache, digest, doc)
    return doc


def _read(cache: Path, digest: str) -> dict[str, Any] | None:
    try:
        with open(cache, encoding="utf-8") as fh:
            held = json.load(fh)
    except (OSError, ValueError, RecursionError):
        return None
    if (
        not isinstance(held, dict)
        or held.get("version") != VERSION
        or held.get("sha256") != digest
        or not isinstance(held.get("document"), dict)
    ):
        return None
    return held["document"]


def _write(cache: Path, digest: str, doc: dict[str, Any]) -> None:
    """Atomically (a reader sees the old file or the new one), owner-only; a failure
    only means the next command parses the TOML again."""
    tmp = cache.with_name(f"{CACHE_NAME}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"version": VERSION, "sha256": digest, "document": doc}, fh)
        os.replace(tmp, cache)
    except (OSError, ValueError, RecursionError):
        with contextlib.suppress(OSError):
            tmp.unlink()
