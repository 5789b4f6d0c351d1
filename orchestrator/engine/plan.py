"""What will run when, at which level and why: the calendar plus the upgrade rules.

The level rules are applied per target from the catalog's history, assuming each
planned run succeeds, so a plan shows the first backup of a new target as a full
and a full forced by `max_full_interval_days`. Only runs started before the plan's
own moment count: a plan from a past `--from`, or after `run --due --now` recorded
runs at a simulated later time, sees the history as it was then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from orchestrator.engine.backup import last_full_failed
from orchestrator.engine.context import Context
from orchestrator.policies.levels import History, LevelDecision, decide_level
from orchestrator.policies.schedule import Slot, slots_between


@dataclass(frozen=True)
class PlannedRun:
    slot: Slot
    target: str
    decision: LevelDecision


def plan(ctx: Context, start: datetime, days: int) -> list[PlannedRun]:
    tz = ctx.config.settings.timezone
    end = start + timedelta(days=days)
    max_full = ctx.config.settings.max_full_interval_days
    planned: list[PlannedRun] = []
    for policy in ctx.config.policies.values():
        slots = slots_between(policy, tz, start, end)
        for target in policy.targets:
            history = _history(ctx, policy.name, target, start)
            for slot in slots:
                decision = decide_level(slot.level, history, slot.due, max_full)
                planned.append(PlannedRun(slot, target, decision))
                # History(...) rather than dataclasses.replace: this runs once per
                # planned run, hundreds of thousands of times for a month of many policies.
                if decision.level == "full":
                    history = History(slot.due, slot.due, False)
                else:
                    history = History(history.newest_full, slot.due, history.last_full_failed)
    return sorted(planned, key=lambda p: (p.slot.due, p.slot.policy, p.target))


def _history(ctx: Context, policy: str, target: str, moment: datetime) -> History:
    """What the catalog knew at `moment`: later runs (a simulated future) are ignored."""
    full = ctx.catalog.newest_run(policy, target, level="full", before=moment)
    anyl = ctx.catalog.newest_run(policy, target, before=moment)
    return History(
        newest_full=full.started_at if full else None,
        newest_any=anyl.started_at if anyl else None,
        last_full_failed=last_full_failed(ctx.catalog, policy, target, before=moment),
    )
