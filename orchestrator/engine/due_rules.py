"""The pure rules of `run --due` (design section 7): what is due at `now`, given the
policies and what the catalog knows. No I/O: every function takes `now`; tested with
tables (tests/unit/test_due.py).

Rules, and why:

- A policy's calendar starts when the orchestrator first sees it, less the misfire
  grace: a slot still on time at first sight runs, older ones are not "missed".
- Each pass decides every slot in (newest recorded slot, now], so each slot is
  accounted for exactly once: run, missed (covered by a catch-up run under another
  key) or skipped (deliberately not run). A slot is claimed in the catalog before its
  run, so `run --due` twice at the same T runs nothing the second time.
- A slot whose process died mid-run is found (state started, pid gone), marked
  interrupted, and then caught up by the policy's rule like a missed slot.
- Catch-up (`catch_up`): `once` runs one slot (the on-time one if there is one,
  else the newest missed) at the highest level among them; `all` runs each missed
  slot in order; `skip` runs only the on-time slot.
- Retries: a target whose run failed with a transient kind (lock, network,
  timeout, busy) is retried with doubling backoff up to `retries` times within the
  slot; only the final attempt's events are published, so one failure files once.
- Retention runs for a policy at most once per local day, after a pass in which it
  has a good backup newer than its last retention; prune runs per target at most
  once every PRUNE_EVERY_DAYS, and only when retention removed snapshots there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from orchestrator.catalog import RunRecord, SlotRecord, VerificationRecord
from orchestrator.policies.model import LEVEL_RANK, Policy
from orchestrator.policies.schedule import Slot, catch_up_plan, slots_between
from orchestrator.service.ticket import Ticket

PRUNE_EVERY_DAYS = 7
# Failure kinds worth another attempt within the same slot.
RETRY_KINDS = frozenset({"locked", "network", "timeout", "busy"})


@dataclass(frozen=True)
class PolicyState:
    """What the catalog knows about one policy's calendar."""

    first_seen: datetime | None = None  # None: seen for the first time now
    newest_due: datetime | None = None  # due time of the newest recorded slot
    reopen: tuple[Slot, ...] = ()  # interrupted slots, caught up by the policy's rule


@dataclass(frozen=True)
class Job:
    """`run` a slot now, or `record` it as missed or skipped without running it."""

    action: Literal["run", "record"]
    slot: Slot
    state: str  # started (run) | missed | skipped
    note: str


def _utc(slot: Slot) -> datetime:
    return slot.due.astimezone(UTC)


def due_work(
    policies: Sequence[Policy],
    state: Mapping[str, PolicyState],
    now: datetime,
    tz: str,
    grace: timedelta,
) -> list[Job]:
    """Every job due at `now`: records first, then runs in due order per policy."""
    jobs: list[Job] = []
    for policy in sorted(policies, key=lambda p: p.name):
        jobs += _policy_work(policy, state.get(policy.name, PolicyState()), now, tz, grace)
    return [j for j in jobs if j.action == "record"] + [j for j in jobs if j.action == "run"]


def _policy_work(
    policy: Policy, ps: PolicyState, now: datetime, tz: str, grace: timedelta
) -> list[Job]:
    start = (ps.first_seen or now) - grace
    if ps.newest_due is not None:
        start = max(start, ps.newest_due)
    fresh = slots_between(policy, tz, start, now) if start < now else []
    known = {s.key for s in ps.reopen}
    candidates = sorted([*ps.reopen, *(s for s in fresh if s.key not in known)], key=_utc)
    if not candidates:
        return []
    # Same split as schedule.missed_slots: the newest slot within grace is on time.
    current = candidates[-1] if now.astimezone(UTC) - _utc(candidates[-1]) <= grace else None
    missed = candidates[:-1] if current else candidates

    def late(s: Slot) -> str:
        return f"due {s.due:%Y-%m-%d %H:%M %Z}, not run within the misfire grace"

    mode = policy.catch_up
    if mode == "skip":
        jobs = [Job("record", s, "skipped", f"{late(s)}; catch_up = skip") for s in missed]
        return jobs + ([Job("run", current, "started", current.reason)] if current else [])
    if mode == "all":
        jobs = [Job("run", s, "started", f"catch-up all: {s.reason}") for s in missed]
        return jobs + ([Job("run", current, "started", current.reason)] if current else [])
    # once
    if not missed:
        return [Job("run", current, "started", current.reason)] if current else []
    if current is not None:
        top = max([current, *missed], key=lambda s: LEVEL_RANK[s.level]).level
        level = top if LEVEL_RANK[top] > LEVEL_RANK[current.level] else current.level
        reason = f"{current.reason}; catch-up once: {len(missed)} missed slot(s) merged"
        if level != current.level:
            reason += f", run at the highest level missed ({level})"
        chosen = dataclasses.replace(current, level=level, reason=reason)
    else:
        chosen = catch_up_plan("once", missed)[0]
    jobs = [
        Job("record", s, "missed", f"{late(s)}; caught up by {chosen.key}")
        for s in missed
        if s.key != chosen.key
    ]
    return [*jobs, Job("run", chosen, "started", chosen.reason)]


def forget_due(
    policy: Policy,
    newest_good: datetime | None,
    last_forget: datetime | None,
    now: datetime,
    tz: str,
) -> bool:
    """Retention is due once per local day, when a good backup is newer than the last one.

    restic's keep rules count back from the newest snapshot, so without a new backup
    a second forget would change nothing."""
    if policy.retention.is_empty() or newest_good is None:
        return False
    if last_forget is None:
        return True
    zone = ZoneInfo(tz)
    return (
        newest_good > last_forget
        and now.astimezone(zone).date() > last_forget.astimezone(zone).date()
    )


def prune_due(removed_since_prune: int, last_prune: datetime | None, now: datetime) -> bool:
    """Prune only reclaims space that forget freed; it takes an exclusive lock, so rarely."""
    if removed_since_prune <= 0:
        return False
    return last_prune is None or now - last_prune >= timedelta(days=PRUNE_EVERY_DAYS)


@dataclass(frozen=True)
class Breach:
    policy: str
    target: str
    age_hours: float
    rpo_hours: float
    newest_good: datetime | None


def rpo_breaches(
    policies: Sequence[Policy],
    newest_good: Mapping[tuple[str, str], datetime | None],
    first_seen: Mapping[str, datetime],
    now: datetime,
) -> list[Breach]:
    """Targets whose newest good backup is older than the policy's `rpo_hours`.

    With no good backup at all the clock starts when the policy was first seen, so a
    new policy is not in breach before it has had a chance to run."""
    found = []
    for policy in policies:
        if policy.rpo_hours is None:
            continue
        for target in policy.targets:
            good = newest_good.get((policy.name, target))
            since = good or first_seen.get(policy.name, now)
            age = (now - since).total_seconds() / 3600
            if age > policy.rpo_hours:
                found.append(Breach(policy.name, target, age, policy.rpo_hours, good))
    return found


def share_refusal(total: int, remove: int, max_share: float) -> str | None:
    """Why a retention plan must not run (None: it may). Pure, so it is table-tested."""
    if total and remove >= total:
        return f"the plan would remove all {total} snapshots"
    if total and remove / total > max_share:
        return (
            f"the plan would remove {remove} of {total} snapshots "
            f"({remove / total:.0%}), more than forget_max_share ({max_share:.0%})"
        )
    return None


@dataclass
class PassReport:
    """What one pass did; `runs` are the final attempt of every target of every slot."""

    now: datetime
    runs: list[RunRecord] = field(default_factory=list)
    recorded: list[SlotRecord] = field(default_factory=list)
    interrupted: list[SlotRecord] = field(default_factory=list)
    retention: list[object] = field(default_factory=list)  # retention.ForgetResult
    prunes: list[tuple[str, str | None]] = field(default_factory=list)  # (target, error)
    breaches: list[Breach] = field(default_factory=list)
    checks: list[VerificationRecord] = field(default_factory=list)  # verify tiers, drills
    escalated: list[Ticket] = field(default_factory=list)  # tickets breached in this pass
    notified: Any = None  # notify.outbox.Delivery: what the outbox sent in this pass
    requests: list[Ticket] = field(default_factory=list)  # restore requests carried out
    cancelled: bool = False
