"""Which level a backup really runs at, and which snapshot restic compares against.

Pure: the caller passes the target's history and `now`. restic snapshots are
always complete, so a level only decides the parent (design section 5):
full -> no parent (`--force`), differential -> newest full, incremental ->
newest snapshot of any level. The upgrade rules come from Bareos: without a
trustworthy recent full on THIS target, a differential or incremental would
compare against nothing or against something too old, so it becomes a full.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Literal

from orchestrator.policies.model import LEVELS, Level

__all__ = [
    "History",
    "LevelDecision",
    "Parent",
    "decide_level",
    "decide_levels",
    "decide_levels_of",
]

Parent = Literal["none", "newest_full", "newest_any"]


@dataclass(frozen=True)
class History:
    """What the catalog knows about one policy on one target.

    A full is also a snapshot of any level, so `newest_any` is never older than
    `newest_full`; an inconsistent history is a bug upstream and fails loudly.
    """

    newest_full: datetime | None
    newest_any: datetime | None
    last_full_failed: bool = False

    def __post_init__(self) -> None:
        if self.newest_full is not None and (
            self.newest_any is None or self.newest_any < self.newest_full
        ):
            raise ValueError(
                f"inconsistent history: newest_any ({self.newest_any}) is older than "
                f"newest_full ({self.newest_full})"
            )


@dataclass(frozen=True)
class LevelDecision:
    """The level asked for, the level run, its parent and why (recorded in the catalog)."""

    asked: str
    level: Level
    parent: Parent
    reason: str


def _days(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 86400:.1f}"


def decide_level(
    asked: Level, history: History, now: datetime, max_full_interval_days: int
) -> LevelDecision:
    """Apply the upgrade rules to the asked level.

    Checked in this order, the first that applies wins: no snapshot at all, no
    full, the last full failed, the newest full older than the interval (strictly
    older: a full exactly `max_full_interval_days` old still serves).
    """
    if asked not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {asked!r}")

    def full(reason: str) -> LevelDecision:
        return LevelDecision(asked, "full", "none", reason)

    if asked == "full":
        return full("full as asked: every file is re-read and re-hashed, with no parent")
    if history.newest_any is None:
        return full("upgraded to full: no snapshot yet on this target")
    if history.newest_full is None:
        return full("upgraded to full: no full snapshot yet on this target")
    if history.last_full_failed:
        return full("upgraded to full: the last full backup failed")
    age = now - history.newest_full
    if age > timedelta(days=max_full_interval_days):
        return full(
            f"upgraded to full: the newest full is {_days(age)} days old, "
            f"older than the {max_full_interval_days}-day maximum full interval"
        )
    if asked == "differential":
        return LevelDecision(
            asked,
            "differential",
            "newest_full",
            "differential as asked: changes since the newest full snapshot",
        )
    return LevelDecision(
        asked,
        "incremental",
        "newest_any",
        "incremental as asked: changes since the newest snapshot of any level",
    )


def decide_levels(
    planned: Sequence[tuple[Level, datetime]], history: History, max_full_interval_days: int
) -> list[LevelDecision]:
    """decide_level for runs in due order, each assumed to succeed: each run sees the
    history the runs before it made (a full resets the full's age and a failed full).

    The same answers as calling decide_level run by run (a table test holds it to that),
    built once per kind of answer instead of once per run: `plan` asks this for a month
    of many policies, hundreds of thousands of runs."""
    interval = timedelta(days=max_full_interval_days)
    newest_full, newest_any = history.newest_full, history.newest_any
    failed = history.last_full_failed
    if planned and max_full_interval_days >= 0:
        asked_levels = list(map(_ASKED, planned))
        first_due, last_due = planned[0][1], planned[-1][1]
        shortcut = _all_as_asked(asked_levels, first_due, last_due, history, max_full_interval_days)
        if shortcut is not None:
            return shortcut
    same: dict[str, LevelDecision] = {}  # answers that depend on the asked level alone
    out: list[LevelDecision] = []
    for asked, due in planned:
        keeps = newest_full is not None and not failed and due - newest_full <= interval
        if asked == "full" or keeps:
            decision = same.get(asked)
            if decision is None:
                decision = same[asked] = decide_level(
                    asked, History(newest_full, newest_any, failed), due, max_full_interval_days
                )
        else:
            decision = decide_level(
                asked, History(newest_full, newest_any, failed), due, max_full_interval_days
            )
        out.append(decision)
        if decision.level == "full":
            newest_full, failed = due, False
        newest_any = due
    return out


# The answers that depend on the asked level alone (a full that serves, not failed).
_AS_ASKED: dict[str, LevelDecision] = {}


def _as_asked(asked: str) -> LevelDecision:
    found = _AS_ASKED.get(asked)
    if found is None:
        # Any history whose full serves gives the answer "as asked"; decide_level says it.
        moment = datetime(2000, 1, 1)
        found = _AS_ASKED[asked] = decide_level(asked, History(moment, moment), moment, 0)  # type: ignore[arg-type]
    return found


# The first run's answer on a target with no snapshot: the same for every such target.
_FIRST_ON_NEW: dict[str, LevelDecision] = {}


def _first_on_new(asked: str) -> LevelDecision:
    moment = datetime(2000, 1, 1)
    found = _FIRST_ON_NEW[asked] = decide_level(asked, History(None, None), moment, 0)  # type: ignore[arg-type]
    return found


def decide_levels_of(
    levels: Sequence[Level], dues: Sequence[datetime], history: History, max_full_interval_days: int
) -> list[LevelDecision]:
    """decide_levels of the runs zip(levels, dues), the two given apart: `plan` has them
    so, and most answers need the levels alone."""
    if levels and max_full_interval_days >= 0:
        shortcut = _all_as_asked(levels, dues[0], dues[-1], history, max_full_interval_days)
        if shortcut is not None:
            return shortcut
    return decide_levels(list(zip(levels, dues, strict=True)), history, max_full_interval_days)


def _all_as_asked(
    asked: Sequence[Level],
    first_due: datetime,
    last_due: datetime,
    history: History,
    max_full_interval_days: int,
) -> list[LevelDecision] | None:
    """decide_levels' answer when no run after the first can be upgraded: the full the
    history has (or the first run makes) serves up to the last run. None otherwise.

    Every run is then "as asked", so the answer is a lookup per run; a month of 10,000
    policies is mostly this."""
    kinds = set(asked)
    if not kinds <= _LEVEL_SET:
        return None  # decide_level says which level is unknown
    for kind in kinds - _AS_ASKED.keys():
        _as_asked(kind)
    as_asked = _AS_ASKED.__getitem__
    # Dues in one zone subtract as wall times, which a fall-back night takes out of order
    # by at most its repeated hours: the last run's age with that margin bounds them all.
    interval = timedelta(days=max_full_interval_days) - _FOLD_MARGIN
    full = history.newest_full
    if full is not None and not history.last_full_failed and last_due - full <= interval:
        return list(map(as_asked, asked))
    first_asked = asked[0]
    if history.newest_any is None and not history.last_full_failed:  # a new target
        first = _FIRST_ON_NEW.get(first_asked) or _first_on_new(first_asked)
    else:
        first = decide_level(first_asked, history, first_due, max_full_interval_days)
    if first.level != "full" or last_due - first_due > interval:
        return None
    out = list(map(as_asked, asked))
    out[0] = first
    return out


_LEVEL_SET = frozenset(LEVELS)
_FOLD_MARGIN = timedelta(hours=3)
_ASKED = itemgetter(0)
