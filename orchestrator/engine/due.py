"""What is due now, and one idempotent pass that runs it (`run --due`, each daemon wake).

`run_due` is the thin I/O edge: it reads the catalog state, asks the pure rules
(`due_rules`: `due_work`, `forget_due`, `prune_due`, `rpo_breaches`, tested with
tables), records every slot BEFORE it runs and its outcome after, runs the backups and
their copies (`due_slots`), then the verification tiers and drills due, retention and
prune, and the RPO watch (`due_stages`).
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from orchestrator.catalog import SlotRecord
from orchestrator.engine.due_rules import Job, PassReport, PolicyState, due_work
from orchestrator.engine.due_slots import run_chains
from orchestrator.engine.due_stages import (
    audit_stage,
    checks_stage,
    notify_stage,
    requests_stage,
    retention_stage,
    rpo_stage,
    tickets_stage,
)
from orchestrator.policies.schedule import Slot

if TYPE_CHECKING:
    from orchestrator.engine.context import Context
    from orchestrator.events import Event

log = logging.getLogger("orchestrator.daemon")


def _slot_of(rec: SlotRecord) -> Slot:
    return Slot(
        policy=rec.policy,
        key=rec.key,
        due=rec.due,
        level=rec.level or "incremental",  # type: ignore[arg-type]
        schedules=(),
        reason=f"interrupted earlier ({rec.note})" if rec.note else "interrupted earlier",
    )


def _find_interrupted(ctx: Context, now: datetime) -> list[SlotRecord]:
    """Slots left `started` by a process of this host that is gone: mark them interrupted."""
    from orchestrator.engine.context import _pid_alive

    found = []
    for rec in ctx.catalog.slots(states=("started",)):
        if rec.host != ctx.host or rec.pid == ctx.pid or _pid_alive(rec.pid):
            continue
        rec.state, rec.finished_at = "interrupted", now
        rec.note = f"the process running it (pid {rec.pid}) stopped before it finished"
        ctx.catalog.record_slot(rec)
        found.append(rec)
    return found


def catalog_state(ctx: Context, now: datetime) -> dict[str, PolicyState]:
    """The pure core's view of the catalog; records first sightings as it reads.

    A few grouped queries for every policy at once, not a few per policy: an idle pass
    over 10,000 policies is this and the calendar."""
    names = list(ctx.config.policies)
    reopen: dict[str, list[Slot]] = {}
    for rec in ctx.catalog.slots(kind="backup", states=("interrupted",), limit=1_000_000):
        if rec.policy in ctx.config.policies and len(reopen.get(rec.policy, ())) < 1000:
            reopen.setdefault(rec.policy, []).append(_slot_of(rec))
    seen = ctx.catalog.first_seen_all(names, now)
    newest = ctx.catalog.newest_slot_dues("backup", names)
    return {
        name: PolicyState(
            first_seen=seen[name],
            newest_due=newest.get(name),
            reopen=tuple(sorted(reopen.get(name, ()), key=lambda s: s.due.astimezone(UTC))),
        )
        for name in names
    }


def run_due(ctx: Context, now: datetime | None = None) -> PassReport:
    """One idempotent pass. KeyboardInterrupt (SIGINT/SIGTERM) stops restic cleanly,
    records the slots as interrupted and is re-raised once the workers have stopped."""
    from orchestrator.events import SLOT_INTERRUPTED, SLOT_MISSED, Event

    now = now or ctx.clock.now()
    settings = ctx.config.settings
    report = PassReport(now=now)
    report.interrupted = _find_interrupted(ctx, now)
    for rec in report.interrupted:
        _publish(
            ctx,
            Event(
                SLOT_INTERRUPTED,
                now,
                "warning",
                f"slot {rec.key}: {rec.note}; caught up by catch_up = "
                f"{_catch_up_of(ctx, rec.policy)}",
                policy=rec.policy,
                details={"slot_key": rec.key},
            ),
        )
    if report.interrupted:
        _unlock_stale(ctx, {r.policy for r in report.interrupted}, now, "after a crash")
    jobs = due_work(
        list(ctx.config.policies.values()),
        catalog_state(ctx, now),
        now,
        settings.timezone,
        timedelta(minutes=settings.misfire_grace_minutes),
    )
    for job in (j for j in jobs if j.action == "record"):
        rec = _slot_record(ctx, job, now)
        ctx.catalog.record_slot(rec)
        report.recorded.append(rec)
        _publish(
            ctx,
            Event(
                SLOT_MISSED,
                now,
                "warning",
                f"slot {job.slot.key} {job.state}: {job.note}",
                policy=job.slot.policy,
                details={"slot_key": job.slot.key, "state": job.state},
            ),
        )
    chains: dict[str, list[tuple[Job, SlotRecord]]] = {}
    for job in (j for j in jobs if j.action == "run"):
        rec = _slot_record(ctx, job, now)
        if ctx.catalog.claim_slot(rec):  # recorded BEFORE the run: never run twice
            chains.setdefault(job.slot.policy, []).append((job, rec))
            report.recorded.append(rec)
    stop = threading.Event()
    try:
        run_chains(ctx, chains, stop, report)
    except KeyboardInterrupt:
        report.cancelled = True
        stopped = {r.policy for r in report.runs if r.outcome == "cancelled"}
        _unlock_stale(ctx, stopped, now, "after the stop")  # every restic has exited by now
        raise
    if not stop.is_set():
        checks_stage(ctx, now, report)
        retention_stage(ctx, now, report)
        rpo_stage(ctx, now, report)
        requests_stage(ctx, now, report)
        tickets_stage(ctx, now, report)
        notify_stage(ctx, now, report)
        audit_stage(ctx, now)
    return report


def _unlock_stale(ctx: Context, policies: set[str], now: datetime, after: str) -> None:
    """A crashed run may have left its restic lock behind (SIGKILL races the kernel's
    SIGINT), and so may a restic 0.14 stopped while it took its lock: remove stale locks
    on the targets those policies use, and say so."""
    from orchestrator.errors import OrchestratorError
    from orchestrator.events import Event
    from orchestrator.restic import commands

    targets = sorted(
        {t for name in policies if (p := ctx.config.policies.get(name)) for t in p.targets}
    )
    for name in targets:
        try:
            _, repo = ctx.open_repository(ctx.config.targets[name])
            removed = commands.unlock_stale(ctx.runner, repo)
            text, severity = f"{removed} stale restic lock(s) removed {after}", "info"
        except OrchestratorError as exc:
            text, severity = f"could not remove stale locks: {exc.message}", "warning"
        ctx.events.publish(
            Event("locks.unlocked", now, severity, f"target '{name}': {text}", target=name)  # type: ignore[arg-type]
        )


def _catch_up_of(ctx: Context, policy: str) -> str:
    pol = ctx.config.policies.get(policy)
    return pol.catch_up if pol else "?"


def _slot_record(ctx: Context, job: Job, now: datetime) -> SlotRecord:
    running = job.action == "run"
    return SlotRecord(
        key=job.slot.key,
        kind="backup",
        policy=job.slot.policy,
        due=job.slot.due,
        level=job.slot.level,
        state=job.state,
        note=job.note,
        host=ctx.host,
        pid=ctx.pid,
        recorded_at=now,
        started_at=now if running else None,
        finished_at=None if running else now,
        attempts=1 if running else 0,
    )


def _publish(ctx: Context, event: Event) -> None:
    ctx.events.publish(event)


def next_wake(ctx: Context, now: datetime, cap: timedelta) -> datetime:
    """When the daemon should pass next: the earliest next slot, at most `cap` away
    (so an RPO breach or a clock jump is noticed without polling)."""
    from orchestrator.policies.schedule import next_slot

    tz = ctx.config.settings.timezone
    wake = now + cap
    for policy in ctx.config.policies.values():
        slot = next_slot(policy, tz, now)
        if slot is not None and slot.due.astimezone(UTC) < wake:
            wake = slot.due.astimezone(UTC)
    return wake
