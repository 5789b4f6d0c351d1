"""What will run when, at which level and why: the calendar plus the upgrade rules.

The level rules are applied per target from the catalog's history, assuming each
planned run succeeds, so a plan shows the first backup of a new target as a full
and a full forced by `max_full_interval_days`. Only runs started before the plan's
own moment count: a plan from a past `--from`, or after `run --due --now` recorded
runs at a simulated later time, sees the history as it was then.

Built for many policies (10,000 over a month: about 330,000 runs): one catalog query
per (policy, target) that has runs at all, the level rules once per kind of answer
(`decide_levels`), and the runs ordered by bucketing on the due instant rather than by
a sort of every run.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from orchestrator.catalog import GOOD_OUTCOMES
from orchestrator.engine.context import Context
from orchestrator.policies.levels import History, LevelDecision, decide_levels
from orchestrator.policies.schedule import Slot, slots_between

# A full attempt that counts for `last_full_failed`: a run refused as busy (skipped) was
# no attempt (engine/backup.py:last_full_failed).
_FULL_ATTEMPTS = ("success", "partial", "failed")


class PlannedRun(NamedTuple):
    slot: Slot
    target: str
    decision: LevelDecision


def plan(
    ctx: Context, start: datetime, days: int, only: Collection[str] | None = None
) -> list[PlannedRun]:
    """Every planned run in (start, start + days], ordered by due instant, then policy
    and target; of the policies named in `only` when given."""
    tz = ctx.config.settings.timezone
    end = start + timedelta(days=days)
    max_full = ctx.config.settings.max_full_interval_days
    with_runs = ctx.catalog.run_pairs("backup")
    # Keyed by the due datetime object itself: the calendar hands out one object per
    # nominal time, so this is a cheap int lookup; due times that are equal instants in
    # different objects are merged when ordering.
    buckets: dict[int, list[PlannedRun]] = {}
    names = sorted(ctx.config.policies if only is None else set(only))
    for name in names:  # buckets keep (policy, target) order
        policy = ctx.config.policies[name]
        slots = slots_between(policy, tz, start, end)
        if not slots:
            continue
        asked = [(s.level, s.due) for s in slots]
        for target in sorted(policy.targets):
            if (name, target) in with_runs:
                trail = ctx.catalog.run_trail(name, target, "backup")
                history = history_before(trail, start)
            else:
                history = History(None, None, False)
            decisions = decide_levels(asked, history, max_full)
            for slot, decision in zip(slots, decisions, strict=True):
                key = id(slot.due)
                bucket = buckets.get(key)
                if bucket is None:
                    bucket = buckets[key] = []
                bucket.append(PlannedRun(slot, target, decision))
    return ordered(list(buckets.values()))


def ordered(buckets: list[list[PlannedRun]]) -> list[PlannedRun]:
    """Buckets of runs due at one instant each, every bucket in (policy, target) order,
    as one list ordered by due instant, then policy and target (buckets of the same
    instant merged)."""
    keyed = sorted(((b[0].slot.due.astimezone(UTC), b) for b in buckets), key=_first)
    out: list[PlannedRun] = []
    for _, group in itertools.groupby(keyed, key=_first):
        same = [b for _, b in group]
        if len(same) == 1:
            out += same[0]
        else:
            out += sorted(itertools.chain(*same), key=lambda p: (p.slot.policy, p.target))
    return out


def _first(item: tuple[datetime, list[PlannedRun]]) -> datetime:
    return item[0]


def history_before(
    trail: Iterable[tuple[datetime, str | None, str, bool]], moment: datetime
) -> History:
    """What the catalog knew at `moment`, from one pair's runs newest first as
    (started_at, level, outcome, gone): later runs (a simulated future) are ignored.

    The same answers as three `newest_run` queries (newest good full, newest good run,
    newest full attempt) from one pass that stops once all three are found."""
    newest_full: datetime | None = None
    newest_any: datetime | None = None
    last_full: str | None = None
    for started, level, outcome, gone in trail:
        if not started < moment:
            continue
        good = outcome in GOOD_OUTCOMES and not gone
        if good and newest_any is None:
            newest_any = started
        if level == "full":
            if good and newest_full is None:
                newest_full = started
            if last_full is None and outcome in _FULL_ATTEMPTS and not gone:
                last_full = outcome
        if newest_any is not None and newest_full is not None and last_full is not None:
            break
    return History(newest_full, newest_any, last_full == "failed")
