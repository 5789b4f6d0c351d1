"""Verification tiers (check, subset, media) and restore drills.

Each tier returns a `TierResult` naming every damaged thing precisely; the engine
records it, publishes it and turns it into exit code 4. Pure rules (rotation,
budgets, samples, RTO) are plain functions next to the I/O that uses them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# Stable damage kinds: in the catalog, in events and in `--json` output.
HASH_MISMATCH = "hash_mismatch"  # a repository file's SHA-256 differs from its name
MISSING = "missing"  # a repository file vanished since the last listing
UNREADABLE = "unreadable"  # the storage could not deliver a file's bytes
CHECK_ERROR = "check_error"  # `restic check` reported an error
SIZE_MISMATCH = "size_mismatch"  # a restored file's size differs from the snapshot's record
CONTENT_MISMATCH = "content_mismatch"  # a restored file's SHA-256 differs from the reference
NOT_RESTORED = "not_restored"  # a sampled file is absent after the restore
RESTORE_ERROR = "restore_error"  # restic restore or dump reported an error
RTO_EXCEEDED = "rto_exceeded"  # the extrapolated full restore exceeds rto_minutes

TIERS = ("check", "subset", "media")


@dataclass(frozen=True)
class Damage:
    """One damaged thing, named so that a person can find it."""

    kind: str
    path: str | None
    message: str
    expected: str | None = None
    actual: str | None = None

    def line(self) -> str:
        hashes = ""
        if self.expected is not None or self.actual is not None:
            hashes = f" (expected {self.expected}, actual {self.actual})"
        where = f"{self.path}: " if self.path else ""
        return f"{self.kind}: {where}{self.message}{hashes}"


@dataclass
class TierResult:
    """What one tier found on one target."""

    tier: str
    damage: list[Damage] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    message: str = ""
    part: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGTP]?)(i?)(B?)\s*", re.IGNORECASE)
_POWERS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5}


def parse_size(text: str) -> int:
    """'20GiB' -> 20*2**30, '500MB' -> 500*10**6, '20G' -> 20*2**30 (restic's reading)."""
    match = _SIZE.fullmatch(text)
    if not match:
        raise ValueError(f"'{text}' is not a size like '20GiB' or '500MB'")
    number, prefix, binary, byte = match.groups()
    power = _POWERS[prefix.upper()]
    decimal = bool(byte) and not binary and power > 0
    base = 1000 if decimal else 1024
    return int(float(number) * base**power)
