"""What is due now, and one idempotent pass that runs it (`run --due`, each daemon wake).

The top half is pure: `due_work`, `forget_due`, `prune_due` and `rpo_breaches` are
functions of (policies, catalog state, now) and are tested with tables. The bottom
half, `run_due`, is the thin I/O edge: it reads the catalog state, asks the pure core,
records every slot BEFORE it runs and its outcome after, and runs the backups (and
their copies), then the verification tiers and drills due (`checks_due`), retention and
prune.

Rules (design section 7), and why:

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

import contextlib
import dataclasses
import logging
import os
import signal
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

from orchestrator.catalog import RunRecord, SlotRecord, VerificationRecord
from orchestrator.policies.model import LEVEL_RANK, Policy
from orchestrator.policies.schedule import Slot, catch_up_plan, slots_between

if TYPE_CHECKING:
    from orchestrator.engine.context import Context
    from orchestrator.events import Event

log = logging.getLogger("orchestrator.daemon")

PRUNE_EVERY_DAYS = 7
# Failure kinds worth another attempt within the same slot.
RETRY_KINDS = frozenset({"locked", "network", "timeout", "busy"})

# --------------------------------------------------------------------------- pure core


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


# --------------------------------------------------------------------------- the I/O pass


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
    cancelled: bool = False


class _Buffer:
    """Collects events in a worker thread; the main thread publishes them afterwards."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def publish(self, event: Event) -> None:
        self.events.append(event)

    def subscribe(self, sink: object) -> None:  # the EventBus interface, unused here
        raise NotImplementedError


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
    """The pure core's view of the catalog; records first sightings as it reads."""
    state = {}
    for name in ctx.config.policies:
        reopen = tuple(
            _slot_of(r)
            for r in ctx.catalog.slots(kind="backup", policy=name, states=("interrupted",))
        )
        state[name] = PolicyState(
            first_seen=ctx.catalog.first_seen(name, now),
            newest_due=ctx.catalog.newest_slot_due("backup", name),
            reopen=tuple(sorted(reopen, key=_utc)),
        )
    return state


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
        _unlock_stale(ctx, {r.policy for r in report.interrupted}, now)
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
        _run_chains(ctx, chains, stop, report)
    except KeyboardInterrupt:
        report.cancelled = True
        raise
    if not stop.is_set():
        _checks_stage(ctx, now, report)
        _retention_stage(ctx, now, report)
        _rpo_stage(ctx, now, report)
    return report


def _checks_stage(ctx: Context, now: datetime, report: PassReport) -> None:
    """Verification tiers and drills due by the policies' `verify`/`drill` entries
    (rules in checks_due), one after another, after the backups and copies."""
    from orchestrator.engine.checks_due import DONE_OUTCOMES, LastCheck, checks_due
    from orchestrator.engine.verification import drill, verify
    from orchestrator.errors import CancelledError

    policies = [p for p in ctx.config.policies.values() if p.verify or p.drill]
    holders = {p.name: [*p.targets, *p.copy_to] for p in policies}

    def newest(key: tuple[str, str, str], outcomes: tuple[str, ...] | None) -> datetime | None:
        name, target, tier = key
        found = ctx.catalog.verifications(
            target=target, tier=tier, policy=name, outcomes=outcomes, limit=1
        )
        return found[0].started_at if found else None

    keys = [
        (p.name, t, tier)
        for p in policies
        for t in holders[p.name]
        for tier in ("check", "subset", "media", "drill")
    ]
    last = {k: LastCheck(newest(k, DONE_OUTCOMES), newest(k, None)) for k in keys}
    for job in checks_due(policies, holders, last, now, ctx.config.settings.timezone):
        policy = ctx.config.policies[job.policy]
        log.info("%s of '%s' on '%s' due: %s", job.tier, job.policy, job.target, job.reason)
        try:
            if job.tier == "drill":
                report.checks += drill(ctx, policy, job.target)
            else:
                report.checks += verify(ctx, policy, job.target, job.tier)
        except CancelledError:  # SIGINT/SIGTERM: recorded failed (cancelled); stop the pass
            report.cancelled = True
            raise KeyboardInterrupt from None


def _unlock_stale(ctx: Context, policies: set[str], now: datetime) -> None:
    """A crashed run may have left its restic lock behind (SIGKILL races the kernel's
    SIGINT): remove stale locks on the targets it used, and say so."""
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
            text, severity = f"{removed} stale restic lock(s) removed after a crash", "info"
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


def _run_chains(
    ctx: Context,
    chains: dict[str, list[tuple[Job, SlotRecord]]],
    stop: threading.Event,
    report: PassReport,
) -> None:
    """One chain per policy (its slots in order); `max_parallel` chains at once."""
    if not chains:
        return
    workers = max(1, min(ctx.config.settings.max_parallel, len(chains)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="slot") as pool:
        futures: list[Future[tuple[list[RunRecord], list[Event]]]] = [
            pool.submit(_run_chain, ctx, chain, stop) for chain in chains.values()
        ]
        interrupted = False
        while True:
            try:
                pending = [f for f in futures if not f.done()]
                if not pending:
                    break
                if interrupted:
                    _interrupt_restic()  # restic started between two signals stops too
                pending[0].exception(timeout=0.5)
            except TimeoutError:
                continue
            except KeyboardInterrupt:
                interrupted = True
                stop.set()
                _interrupt_restic()
        for fut in futures:
            runs, events = fut.result()
            report.runs += runs
            for event in events:
                ctx.events.publish(event)
    if interrupted:
        raise KeyboardInterrupt


def _interrupt_restic() -> None:
    """SIGINT to our restic children (found by pid via /proc), so they remove their locks.

    Workers wait for restic on their own threads, which Python never interrupts."""
    for task in os.scandir(f"/proc/{os.getpid()}/task"):
        try:
            with open(f"{task.path}/children") as fh:
                pids = [int(p) for p in fh.read().split()]
        except OSError:
            continue
        for pid in pids:
            with contextlib.suppress(OSError):
                with open(f"/proc/{pid}/comm") as fh:
                    if fh.read().strip() != "restic":
                        continue
                os.kill(pid, signal.SIGINT)


def _worker_context(ctx: Context, buffer: _Buffer) -> Context:
    """A context for one worker thread: its own catalog connection (sqlite3 connections
    belong to one thread) and an event buffer the main thread drains."""
    from orchestrator.catalog.sqlite import SqliteCatalog

    catalog = ctx.catalog
    if isinstance(catalog, SqliteCatalog):
        catalog = SqliteCatalog(catalog.path)
    return dataclasses.replace(ctx, catalog=catalog, events=buffer)  # type: ignore[arg-type]


def _run_chain(
    ctx: Context, chain: list[tuple[Job, SlotRecord]], stop: threading.Event
) -> tuple[list[RunRecord], list[Event]]:
    buffer = _Buffer()
    wctx = _worker_context(ctx, buffer)
    runs: list[RunRecord] = []
    try:
        for job, rec in chain:
            if stop.is_set():
                _close_slot(wctx, rec, [], stopped=True)
                continue
            slot_runs = _run_slot(wctx, job, stop, buffer)
            runs += slot_runs
            _close_slot(wctx, rec, slot_runs, stopped=stop.is_set())
    finally:
        if wctx.catalog is not ctx.catalog:
            wctx.catalog.close()
    return runs, buffer.events


def _run_slot(ctx: Context, job: Job, stop: threading.Event, buffer: _Buffer) -> list[RunRecord]:
    """Every target of the slot's policy, then its copies (a failed copy makes the slot
    partial); transient backup failures retried with backoff."""
    from orchestrator.engine.backup import backup_policy

    settings = ctx.config.settings
    policy = ctx.config.policies.get(job.slot.policy)
    if policy is None:  # removed by a reload between deciding and running
        return []
    log.info("running slot %s: %s level (%s)", job.slot.key, job.slot.level, job.note)
    final: list[RunRecord] = []
    for target in policy.targets:
        attempt = 0
        while True:
            mark = len(buffer.events)
            try:
                (run,) = backup_policy(ctx, policy, job.slot.level, target, job.slot.key)
            except KeyboardInterrupt:  # not expected off the main thread; be safe
                stop.set()
                return final
            retry = (
                run.outcome == "failed"
                and run.error_kind in RETRY_KINDS
                and attempt < settings.retries
                and not stop.is_set()
            )
            if not retry:
                break
            del buffer.events[mark:]  # only the final attempt files an event
            attempt += 1
            delay = settings.retry_backoff_seconds * 2 ** (attempt - 1)
            log.warning(
                "slot %s on %s: %s (%s); retry %d of %d in %ds",
                job.slot.key,
                target,
                run.message,
                run.error_kind,
                attempt,
                settings.retries,
                delay,
            )
            if stop.wait(delay):
                break
        if stop.is_set() and run.outcome == "failed":
            # we stopped restic (SIGINT) on SIGTERM/SIGINT; restic 0.14 may exit 1 then
            run.outcome, run.error_kind = "cancelled", "interrupted"
            ctx.catalog.finish_run(run)
        final.append(run)
        if stop.is_set():
            break
    if not stop.is_set():  # copy_to: each new snapshot to each copy target, in the slot
        from orchestrator.engine.copies import copy_new_snapshots
        from orchestrator.errors import CancelledError

        begun = ctx.clock.now()
        try:
            final += copy_new_snapshots(ctx, policy, final)
        except CancelledError:  # stopped mid-copy: the slot is interrupted, caught up later
            stop.set()
            final += [
                r
                for r in ctx.catalog.runs(policy=policy.name, kind="copy", limit=50)
                if r.slot_key == job.slot.key and r.started_at >= begun
            ]
    return final


def _close_slot(ctx: Context, rec: SlotRecord, runs: list[RunRecord], stopped: bool) -> None:
    """The slot's outcome, recorded once, after its last attempt."""
    from orchestrator.engine.backup import exit_code_for
    from orchestrator.errors import ExitCode

    now = ctx.clock.now()
    rec.run_ids = tuple(r.id for r in runs)
    rec.finished_at = now
    if stopped and (not runs or any(r.outcome == "cancelled" for r in runs)):
        rec.state, rec.outcome = "interrupted", "cancelled"
        rec.note = "stopped by SIGINT/SIGTERM before it finished; caught up at the next pass"
    else:
        code = exit_code_for(runs) if runs else ExitCode.FAILURE
        rec.state = "done"
        rec.outcome = {
            ExitCode.OK: "success",
            ExitCode.BUSY: "busy",
            ExitCode.FAILURE: "failed",
        }.get(code, "partial")
        if not runs:
            rec.note = "the policy no longer exists"
    ctx.catalog.record_slot(rec)
    log.info("slot %s %s: %s", rec.key, rec.state, rec.outcome)


def _retention_stage(ctx: Context, now: datetime, report: PassReport) -> None:
    """forget per policy (daily at most), then prune per target (weekly at most)."""
    from orchestrator.engine.retention import forget_policy, prune_target

    tz = ctx.config.settings.timezone
    for policy in ctx.config.policies.values():
        goods = [ctx.catalog.newest_run(policy.name, t) for t in policy.targets]
        newest = max((r.started_at for r in goods if r), default=None)
        last = ctx.catalog.newest_slot_due("forget", policy.name)
        if not forget_due(policy, newest, last, now, tz):
            continue
        key = f"forget:{policy.name}@{now.astimezone(ZoneInfo(tz)).date().isoformat()}"
        rec = SlotRecord(
            key=key,
            kind="forget",
            policy=policy.name,
            due=now,
            level=None,
            state="started",
            host=ctx.host,
            pid=ctx.pid,
            recorded_at=now,
            started_at=now,
        )
        if not ctx.catalog.claim_slot(rec):
            continue
        results = forget_policy(ctx, policy)
        report.retention += results
        bad = [r for r in results if r.refused or r.error]
        rec.state, rec.finished_at = "done", ctx.clock.now()
        rec.outcome = "failed" if bad else "success"
        rec.note = "; ".join(r.summary for r in results)
        ctx.catalog.record_slot(rec)
    for name in sorted(ctx.config.targets):
        removed = int(ctx.catalog.get_mark(f"removed-since-prune:{name}") or 0)
        prunes = [
            s
            for s in ctx.catalog.slots(kind="prune", limit=200)
            if s.target == name and s.outcome == "success"
        ]
        last = prunes[0].due if prunes else None
        if not prune_due(removed, last, now):
            continue
        rec = SlotRecord(
            key=f"prune:{name}@{now.astimezone(UTC).isoformat(timespec='minutes')}",
            kind="prune",
            policy="",
            target=name,
            due=now,
            level=None,
            state="started",
            host=ctx.host,
            pid=ctx.pid,
            recorded_at=now,
            started_at=now,
        )
        if not ctx.catalog.claim_slot(rec):
            continue
        error = prune_target(ctx, name)
        report.prunes.append((name, error))
        rec.state, rec.finished_at = "done", ctx.clock.now()
        rec.outcome, rec.note = ("failed", error) if error else ("success", "")
        ctx.catalog.record_slot(rec)


def _rpo_stage(ctx: Context, now: datetime, report: PassReport) -> None:
    """File an RPO breach once when it begins (even if no run failed); note its end."""
    from orchestrator.events import RPO_BREACHED, RPO_RESTORED, Event

    policies = list(ctx.config.policies.values())
    newest = {
        (p.name, t): (r.started_at if (r := ctx.catalog.newest_run(p.name, t)) else None)
        for p in policies
        for t in p.targets
    }
    seen = {p.name: ctx.catalog.first_seen(p.name, now) for p in policies}
    breaches = rpo_breaches(policies, newest, seen, now)
    report.breaches = breaches
    open_now = {(b.policy, b.target) for b in breaches}
    for b in breaches:
        mark = f"rpo-breach:{b.policy}@{b.target}"
        if ctx.catalog.get_mark(mark):
            continue
        ctx.catalog.set_mark(mark, now.isoformat(), now)
        newest_text = f"{b.newest_good:%Y-%m-%d %H:%M %Z}" if b.newest_good else "none"
        ctx.events.publish(
            Event(
                RPO_BREACHED,
                now,
                "error",
                f"'{b.policy}' on '{b.target}': newest good backup is {b.age_hours:.1f} h old "
                f"(newest: {newest_text}), beyond its RPO of {b.rpo_hours:g} h",
                policy=b.policy,
                target=b.target,
                details={"age_hours": round(b.age_hours, 2), "rpo_hours": b.rpo_hours},
            )
        )
    for p in policies:
        for t in p.targets:
            mark = f"rpo-breach:{p.name}@{t}"
            if (p.name, t) not in open_now and ctx.catalog.get_mark(mark):
                ctx.catalog.set_mark(mark, None, now)
                ctx.events.publish(
                    Event(
                        RPO_RESTORED,
                        now,
                        "info",
                        f"'{p.name}' on '{t}': back within its RPO",
                        policy=p.name,
                        target=t,
                    )
                )


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
