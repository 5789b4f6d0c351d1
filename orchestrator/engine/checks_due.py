"""Which verification tiers and restore drills are due: a pure function of (policies,
the catalog's last check times, now). `run_due` runs what it returns after the backups.

Rules, and why:

- A policy's `verify` entry schedules its tiers on every target holding its snapshots
  (targets, then copy_to): `check` always, `subset` when `read_data_fraction` is set,
  `media` when `media = true`. Its `drill` entry schedules a drill per target. Each
  (policy, target, tier) is judged on its own, so a tier added later runs at once.
- `daily`, `weekly`, `monthly` count LOCAL calendar days from the last completed check:
  due on the next day, 7 days later, the same day next month (the last day of a shorter
  month). Counting days rather than hours keeps a check from drifting later each day
  when a pass runs a little after the previous one. A cron `every` is due when a cron
  time fell due since the last completed check. A check never completed is due now.
- Completed means `ok` or `damaged`: damage is reported once per period, not every
  pass. A check that could not run (`failed`: target unreachable, busy) is due again
  at the next pass, but never twice at the same `now` (so `run --due` stays idempotent).
- `status` calls a configured check overdue when it fell due more than OVERDUE_GRACE
  ago and has not completed since (never completed: counted from the first good backup).
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from orchestrator.policies.model import Policy
from orchestrator.policies.schedule import cron_fired

PERIODS = ("daily", "weekly", "monthly")
DONE_OUTCOMES = ("ok", "damaged")
# `status` calls a check overdue when it is still not done this long after it fell due:
# a pass (the daemon's or a cron `run --due`) may come hours after midnight.
OVERDUE_GRACE = timedelta(days=1)


@dataclass(frozen=True)
class LastCheck:
    """What the catalog knows about one (policy, target, tier)."""

    done: datetime | None = None  # start of the newest completed (ok or damaged) one
    attempt: datetime | None = None  # start of the newest one, whatever its outcome


@dataclass(frozen=True)
class CheckJob:
    policy: str
    target: str
    tier: str  # check | subset | media | drill
    reason: str


def verify_tiers(policy: Policy) -> tuple[str, ...]:
    if policy.verify is None:
        return ()
    tiers = ["check"]
    if policy.verify.read_data_fraction:
        tiers.append("subset")
    if policy.verify.media:
        tiers.append("media")
    return tuple(tiers)


def _add_month(day: date) -> date:
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def is_due(every: str, last: LastCheck, now: datetime, tz: str) -> str | None:
    """Why the check is due at `now`, or None when it is not."""
    if last.attempt is not None and now <= last.attempt:
        return None  # already tried at this time (or later): never twice in one pass
    if last.done is None:
        return "never completed"
    if every in PERIODS:
        zone = ZoneInfo(tz)
        then, today = last.done.astimezone(zone).date(), now.astimezone(zone).date()
        next_day = {
            "daily": then + timedelta(days=1),
            "weekly": then + timedelta(days=7),
            "monthly": _add_month(then),
        }[every]
        return f"{every}: last completed {then.isoformat()}" if today >= next_day else None
    if cron_fired(every, tz, last.done, now):
        return f"cron '{every}' fell due since {last.done.isoformat(timespec='minutes')}"
    return None


def overdue(
    every: str,
    last_done: datetime | None,
    expected_since: datetime | None,
    now: datetime,
    tz: str,
    grace: timedelta = OVERDUE_GRACE,
) -> str | None:
    """Why a configured check is overdue at `now` (for `status`), or None.

    Overdue: it was already due `grace` ago (by `is_due`, from the last completed one)
    and has not completed since. Never completed: due from `expected_since` (the first
    good backup on the target; None: nothing to check yet), overdue `grace` after it."""
    if last_done is None:
        if expected_since is None or now - expected_since <= grace:
            return None
        return (
            f"never completed ({every}); backups since "
            f"{expected_since.astimezone(ZoneInfo(tz)):%Y-%m-%d %H:%M %Z}"
        )
    if is_due(every, LastCheck(done=last_done), now - grace, tz) is None:
        return None
    return (
        f"{every}: last completed {last_done.astimezone(ZoneInfo(tz)):%Y-%m-%d %H:%M %Z}, "
        f"not done again within its interval and {_span(grace)} of grace"
    )


def _span(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:g} day{'s' if hours != 24 else ''}" if hours >= 24 else f"{hours:g} h"


def checks_due(
    policies: Sequence[Policy],
    holders: Mapping[str, Sequence[str]],
    last: Mapping[tuple[str, str, str], LastCheck],
    now: datetime,
    tz: str,
) -> list[CheckJob]:
    """Every check due at `now`: per policy (by name), per target in `holders[policy]`,
    verify tiers first, then the drill."""
    jobs = []
    for policy in sorted(policies, key=lambda p: p.name):
        verify_every = policy.verify.every if policy.verify else ""
        wanted = [(t, verify_every) for t in verify_tiers(policy)]
        if policy.drill is not None:
            wanted.append(("drill", policy.drill.every))
        for target in holders.get(policy.name, ()):
            for tier, every in wanted:
                key = (policy.name, target, tier)
                reason = is_due(every, last.get(key, LastCheck()), now, tz)
                if reason is not None:
                    jobs.append(CheckJob(policy.name, target, tier, reason))
    return jobs
