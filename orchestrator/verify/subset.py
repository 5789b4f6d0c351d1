"""Tier `subset`: `restic check --read-data-subset i/N`, rotating i so N runs read every pack.

Which part comes next is a pure function of when each part was last read, so the
rotation survives restarts and never depends on a counter that could drift.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

DEFAULT_PARTS = 8  # design example: read_data_fraction = "1/8"

_FRACTION = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")
_PERCENT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*%\s*")


def subset_total(fraction: str | None, default: int = DEFAULT_PARTS) -> int:
    """N from the policy's `read_data_fraction`: '1/8' -> 8, '10%' -> 10, '30%' -> 4."""
    if not fraction:
        return default
    if m := _FRACTION.fullmatch(fraction):
        return max(1, int(m[2]))
    if m := _PERCENT.fullmatch(fraction):
        return max(1, math.ceil(100 / float(m[1])))
    raise ValueError(f"'{fraction}' is not a fraction like '1/8' or a percentage like '10%'")


def next_part(total: int, read: Mapping[int, datetime]) -> int:
    """The lowest part never read; once all were read, the one read longest ago."""
    unread = [i for i in range(1, total + 1) if i not in read]
    if unread:
        return unread[0]
    return min(range(1, total + 1), key=lambda i: (read[i], i))


@dataclass(frozen=True)
class SubsetCoverage:
    total: int
    parts_read: int
    oldest_read: datetime | None  # among the parts read: the age of the coverage
    days: float | None

    @property
    def percent(self) -> float:
        return 100.0 * self.parts_read / self.total if self.total else 0.0

    @property
    def complete(self) -> bool:
        return self.parts_read >= self.total

    def describe(self, runs: int | None = None) -> str:
        if not self.parts_read:
            return f"0% of data read (0 of {self.total} parts)"
        days = self.days or 0.0
        span = f"{days:.0f} days" if days >= 1 else f"{days * 24:.0f} hours"
        within = f"{runs} run{'s' if runs != 1 else ''} / " if runs is not None else ""
        return (
            f"{self.percent:.0f}% of data read within the last {within}{span} "
            f"({self.parts_read} of {self.total} parts)"
        )


def subset_coverage(total: int, read: Mapping[int, datetime], now: datetime) -> SubsetCoverage:
    parts = {i: t for i, t in read.items() if 1 <= i <= total}
    oldest = min(parts.values()) if parts else None
    days = (now - oldest).total_seconds() / 86400 if oldest else None
    return SubsetCoverage(total, len(parts), oldest, days)
