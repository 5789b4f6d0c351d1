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
from operator import itemgetter
from typing import NamedTuple

from orchestrator.catalog import GOOD_OUTCOMES
from orchestrator.engine.context import Context
from orchestrator.policies.levels import History, LevelDecision, decide_levels_of
from orchestrator.policies.schedule import Slot, SlotRow, rows_to_slots, slot_rows

# Of a SlotRow: its merge and its due in the zone; of a merge: the level.
_MERGE, _LOCAL, _LEVEL = itemgetter(2), itemgetter(4), itemgetter(0)

# A full attempt that counts for `last_full_failed`: a run refused as busy (skipped) was
# no attempt (engine/backup.py:last_full_failed).
_FULL_ATTEMPTS = ("success", "partial", "failed")


class PlannedRun(NamedTuple):
    slot: Slot
    target: str
    decision: LevelDecision


class PolicyPlan(NamedTuple):
    """One policy's part of a plan, before any per-run object: its slots as rows and,
    per target (sorted), the level decision of each row."""

    policy: str
    rows: list[SlotRow]
    targets: list[tuple[str, list[LevelDecision]]]


def plan_parts(
    ctx: Context, start: datetime, days: int, only: Collection[str] | None = None
) -> list[PolicyPlan]:
    """Every policy's planned runs in (start, start + days], in policy order; of the
    policies named in `only` when given. Policies with no slot in the window (or no
    target) are left out: every part has at least one run.

    A target with no backup run at all costs no catalog question; the level rules run
    once per policy and target (decide_levels answers most by lookup)."""
    tz = ctx.config.settings.timezone
    end = start + timedelta(days=days)
    max_full = ctx.config.settings.max_full_interval_days
    with_runs = ctx.catalog.run_pairs("backup")
    fresh = History(None, None, False)
    parts: list[PolicyPlan] = []
    names = sorted(ctx.config.policies if only is None else set(only))
    for name in names:
        policy = ctx.config.policies[name]
        rows = slot_rows(policy, tz, start, end) if policy.targets else []
        if not rows:
            continue
        # The due in the zone, as the slot has it (Slot.due): the level rules' ages are
        # differences of these, as they were when plan asked run by run.
        levels = list(map(_LEVEL, map(_MERGE, rows)))
        dues = list(map(_LOCAL, rows))
        targets = []
        for target in sorted(policy.targets):
            if (name, target) in with_runs:
                history = history_before(ctx.catalog.run_trail(name, target, "backup"), start)
            else:
                history = fresh
            targets.append((target, decide_levels_of(levels, dues, history, max_full)))
        parts.append(PolicyPlan(name, rows, targets))
    return parts


def plan(
    ctx: Context, start: datetime, days: int, only: Collection[str] | None = None
) -> list[PlannedRun]:
    """Every planned run in (start, start + days], ordered by due instant, then policy
    and target; of the policies named in `only` when given."""
    tz = ctx.config.settings.timezone
    # Keyed by the UTC due instant: buckets fill in (policy, target) order.
    buckets: dict[datetime, list[PlannedRun]] = {}
    for part in plan_parts(ctx, start, days, only):
        slots = rows_to_slots(part.policy, tz, part.rows)
        for target, decisions in part.targets:
            for row, slot, decision in zip(part.rows, slots, decisions, strict=True):
                bucket = buckets.get(row[0])
                if bucket is None:
                    bucket = buckets[row[0]] = []
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
