"""Audit records: one canonical JSON object per line, the bytes that become a tree leaf.

Canonical means one byte string per record (sorted keys, no spaces, UTF-8, integers and
strings only): any edit either breaks the JSON, breaks the canonical form, or changes a
leaf hash. Each record carries its number `n` and `prev`, the tree root of the n records
before it, so a deletion, swap or edit is named at the record where it happened even
without a checkpoint; the checkpoints cover the tail.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_DECODER = json.JSONDecoder()

# What every record has; everything else is optional context of the action.
REQUIRED = ("n", "prev", "time", "who", "what", "outcome")


class RecordError(ValueError):
    """A line of the log is not a well-formed canonical record."""


def _clean(value: Any) -> Any:
    """JSON values only, floats as text (their formatting is not canonical across tools)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_clean(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    return str(value)


def canonical(record: Mapping[str, Any]) -> bytes:
    """The one byte string of a record (no newline)."""
    return _ENCODER.encode(_clean(record)).encode("utf-8")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def parse(line: bytes, index: int) -> dict[str, Any]:
    """A stored line back into a record, refusing anything that is not exactly canonical."""
    try:
        record = _DECODER.decode(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise RecordError(f"record {index}: not valid JSON (edited or damaged)") from None
    if not isinstance(record, dict):
        raise RecordError(f"record {index}: not a JSON object (edited or damaged)")
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise RecordError(f"record {index}: lacks {', '.join(missing)} (edited or forged)")
    # Re-encode as read (no cleaning: a parsed record already holds only JSON values).
    if _ENCODER.encode(record).encode("utf-8") != line:
        raise RecordError(f"record {index}: not in canonical form (edited by hand?)")
    return record
