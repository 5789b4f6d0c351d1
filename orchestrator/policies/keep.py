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
