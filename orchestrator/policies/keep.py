"""What retention must keep whatever the keep rules say: the snapshots the levels need.

Pure: the caller passes the policy's snapshots on ONE target (with their level tags) and
the ids restic's `forget --dry-run` plan would remove. restic's keep rules count
snapshots and know nothing of levels, so `last = 2` after full, incremental,
incremental, incremental would forget the only full; the next differential (whose
parent is the newest full of the policy on that target) would then be upgraded to an
unplanned full, and so would the next incremental ("no full snapshot yet"). So:

- the newest full of the policy on the target is always kept: it is the parent of the
  next differential and what keeps the next incremental an incremental;
- the newest snapshot of any level is always kept: it is the parent of the next
  incremental (restic's rules keep it anyway; this makes the promise explicit).

Everything else restic planned to remove is removed. Older fulls are not protected:
restic snapshots are complete, and a later differential never needs an older full.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime

NEWEST_FULL_FOR_DIFFERENTIAL = "newest full (needed by the next differential)"
NEWEST_FULL_FOR_LEVELS = "newest full (without it the next run is upgraded to full)"
NEWEST_ANY = "newest snapshot (parent of the next incremental)"


@dataclass(frozen=True)
class Snap:
    """A snapshot as retention sees it: its id, time and `level:` tag (None if untagged)."""

    id: str
    time: datetime
    level: str | None


@dataclass(frozen=True)
class KeepDecision:
    keep: tuple[str, ...]  # ids, oldest first
    remove: tuple[str, ...]  # ids, oldest first
    # ids restic planned to remove that the levels need, with why
    reasons: dict[str, str] = field(default_factory=dict)


def level_keeps(
    snapshots: Sequence[Snap], planned_remove: Collection[str], differential_planned: bool
) -> KeepDecision:
    """Apply the level rules on top of restic's plan (`planned_remove`, ids of
    `snapshots`); `differential_planned`: the policy schedules differentials (only
    changes the reason given for keeping the newest full)."""
    ordered = sorted(snapshots, key=lambda s: (s.time, s.id))
    needed: dict[str, str] = {}
    if ordered:
        needed[ordered[-1].id] = NEWEST_ANY
    fulls = [s for s in ordered if s.level == "full"]
    if fulls:
        needed[fulls[-1].id] = (
            NEWEST_FULL_FOR_DIFFERENTIAL if differential_planned else NEWEST_FULL_FOR_LEVELS
        )
    planned = set(planned_remove)
    reasons = {i: why for i, why in needed.items() if i in planned}
    remove = tuple(s.id for s in ordered if s.id in planned and s.id not in reasons)
    keep = tuple(s.id for s in ordered if s.id not in remove)
    return KeepDecision(keep, remove, reasons)


def _buckets(moment: datetime, nr: int) -> tuple[int, ...]:
    """The bucket of each keep rule (last, hourly, daily, weekly, monthly, yearly), read in
    the snapshot's own recorded offset as restic reads it."""
    iso_year, iso_week, _ = moment.isocalendar()
    return (
        nr,
        moment.year * 1_000_000 + moment.month * 10_000 + moment.day * 100 + moment.hour,
        moment.year * 10_000 + moment.month * 100 + moment.day,
        iso_year * 100 + iso_week,
        moment.year * 100 + moment.month,
        moment.year,
    )


KEEP_RULES = ("last", "hourly", "daily", "weekly", "monthly", "yearly")


def rule_keeps(
    snapshots: Sequence[Snap], counts: Sequence[int | None], keep_oldest: bool
) -> set[str]:
    """The ids restic's `forget --keep-*` rules keep (restic's `ApplyPolicy`), computed
    here so that one listing of a target plans the retention of every policy on it.

    `counts` in KEEP_RULES order (None: rule not set; -1: keep all). Newest first, each
    rule keeps a snapshot whose bucket differs from the last one it kept, while it has
    counts left. `keep_oldest` (restic 0.15+): a rule with counts left at the oldest
    snapshot keeps it too. Proved equal to restic's own plan on both versions by
    tests/integration/test_retention_plan.py."""
    ordered = sorted(snapshots, key=lambda s: (s.time, s.id), reverse=True)
    left = [c if c is not None else 0 for c in counts]
    last = [None] * len(left)
    kept: set[str] = set()
    for nr, snap in enumerate(ordered):
        values = _buckets(snap.time, nr)
        for i, count in enumerate(left):
            if count > 0 or count == -1:
                oldest = keep_oldest and nr == len(ordered) - 1
                if values[i] != last[i] or oldest:
                    kept.add(snap.id)
                    last[i] = values[i]  # type: ignore[call-overload]
                    if count > 0:
                        left[i] = count - 1
    return kept
