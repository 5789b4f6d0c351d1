"""What a pass does after the backups: the verification tiers and drills due, retention
(forget daily, prune weekly at most) and the RPO watch."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from orchestrator.catalog import SlotRecord
from orchestrator.engine.due_rules import PassReport, forget_due, prune_due, rpo_breaches
from orchestrator.errors import OrchestratorError

if TYPE_CHECKING:
    from orchestrator.engine.context import Context

log = logging.getLogger("orchestrator.daemon")


def checks_stage(ctx: Context, now: datetime, report: PassReport) -> None:
    """Verification tiers and drills due by the policies' `verify`/`drill` entries
    (rules in checks_due), one after another, after the backups and copies."""
    policies = [p for p in ctx.config.policies.values() if p.verify or p.drill]
    if not policies:  # nothing to check: not even the verification code is loaded
        return
    from orchestrator.engine.checks_due import DONE_OUTCOMES, LastCheck, checks_due
    from orchestrator.engine.verification import drill, verify
    from orchestrator.errors import CancelledError

    holders = {p.name: [*p.targets, *p.copy_to] for p in policies}

    keys = [
        (p.name, t, tier)
        for p in policies
        for t in holders[p.name]
        for tier in ("check", "subset", "media", "drill")
    ]
    done = ctx.catalog.newest_verification_times(keys, DONE_OUTCOMES)
    tried = ctx.catalog.newest_verification_times(keys)
    last = {k: LastCheck(done.get(k), tried.get(k)) for k in keys}
    for job in checks_due(policies, holders, last, now, ctx.config.settings.timezone):
        policy = ctx.config.policies[job.policy]
        log.info("%s of '%s' on '%s' due: %s", job.tier, job.policy, job.target, job.reason)
        try:
            if job.tier == "drill":
                report.checks += drill(ctx, policy, job.target)
            else:
                report.checks += verify(ctx, policy, job.target, job.tier)
        except CancelledError:  # SIGINT/SIGTERM: recorded cancelled; stop the pass
            report.cancelled = True
            raise KeyboardInterrupt from None


def retention_stage(ctx: Context, now: datetime, report: PassReport) -> None:
    """forget per policy (daily at most), then prune per target (weekly at most)."""
    from orchestrator.engine.retention import forget_policies, prune_target

    tz = ctx.config.settings.timezone
    claimed = []
    policies = list(ctx.config.policies.values())
    good = ctx.catalog.newest_runs((p.name, t) for p in policies for t in p.targets)
    forgets = ctx.catalog.newest_slot_dues("forget", (p.name for p in policies))
    for policy in policies:
        goods = [good.get((policy.name, t)) for t in policy.targets]
        newest = max((r.started_at for r in goods if r), default=None)
        last = forgets.get(policy.name)
        if not forget_due(policy, newest, last, now, tz):
            continue
        key = f"forget:{policy.name}@{now.astimezone(ZoneInfo(tz)).date().isoformat()}"
        rec = _claim(ctx, now, key, "forget", policy.name, None)
        if rec is not None:
            claimed.append((policy, rec))
    # all at once: one listing and one forget per target, however many policies share it
    results = forget_policies(ctx, [policy for policy, _ in claimed]) if claimed else []
    report.retention += results
    for policy, rec in claimed:
        own = [r for r in results if r.policy == policy.name]
        failed = any(r.refused or r.error for r in own)
        _close(ctx, rec, failed, "; ".join(r.summary for r in own))
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
        key = f"prune:{name}@{now.astimezone(UTC).isoformat(timespec='minutes')}"
        rec = _claim(ctx, now, key, "prune", "", name)
        if rec is None:
            continue
        error = prune_target(ctx, name)
        report.prunes.append((name, error))
        _close(ctx, rec, bool(error), error or "")


AUDIT_REMOTE_MARK = "audit-checkpoint-remote"


def audit_stage(ctx: Context, now: datetime) -> None:
    """Once a day, a signed checkpoint of the audit log to every repository, the SFTP and
    S3 ones included (automatic checkpoints reach only local ones, so that no audited
    action waits on the network): every off-site copy then carries the log's state."""
    if ctx.audit is None:
        return
    last = ctx.catalog.get_mark(AUDIT_REMOTE_MARK)
    if last is not None and now - datetime.fromisoformat(last) < timedelta(days=1):
        return
    if not any(spec.kind != "local" for spec in ctx.config.targets.values()):
        return
    try:
        _, _, places = ctx.audit.trail.checkpoint(remote=True)
    except OrchestratorError as exc:
        log.error("audit: the daily checkpoint could not be signed: %s", exc.message)
        return
    log.info("audit: daily checkpoint published to %s", ", ".join(places) or "no repository")
    ctx.catalog.set_mark(AUDIT_REMOTE_MARK, now.isoformat(), now)


def tickets_stage(ctx: Context, now: datetime, report: PassReport) -> None:
    """Every pass: each new ticket past its response deadline, unacknowledged, is marked
    breached and escalated, once."""
    from orchestrator.service.sink import escalate_due

    try:
        report.escalated = escalate_due(ctx.catalog, ctx.events, now, ctx.config.service.escalate)
    except OrchestratorError as exc:
        log.error("tickets: the response clocks were not checked: %s", exc.message)


def requests_stage(ctx: Context, now: datetime, report: PassReport) -> None:
    """Every pass: carry out the approved restore requests."""
    from orchestrator.engine.requests import run_approved

    try:
        report.requests = run_approved(ctx)
    except OrchestratorError as exc:
        log.error("requests: the approved restore requests were not run: %s", exc.message)


def notify_stage(ctx: Context, now: datetime, report: PassReport) -> None:
    """Every pass: send the queued notices whose time has come (after the tickets'
    clocks, so an escalation goes out in the pass that made it)."""
    from orchestrator.notify.outbox import deliver_due

    if not ctx.config.notify:
        return
    try:
        report.notified = deliver_due(ctx.catalog, ctx.config.notify, ctx.secrets.resolve, now)
    except OrchestratorError as exc:
        log.error("notify: the outbox was not sent: %s", exc.message)


def _claim(
    ctx: Context, now: datetime, key: str, kind: str, policy: str, target: str | None
) -> SlotRecord | None:
    """A forget or prune slot recorded as started BEFORE it runs (None: another pass
    already claimed it), so it runs once however many passes overlap."""
    rec = SlotRecord(
        key=key,
        kind=kind,
        policy=policy,
        target=target,
        due=now,
        level=None,
        state="started",
        host=ctx.host,
        pid=ctx.pid,
        recorded_at=now,
        started_at=now,
    )
    return rec if ctx.catalog.claim_slot(rec) else None


def _close(ctx: Context, rec: SlotRecord, failed: bool, note: str) -> None:
    rec.state, rec.finished_at = "done", ctx.clock.now()
    rec.outcome, rec.note = ("failed" if failed else "success"), note
    ctx.catalog.record_slot(rec)


def rpo_stage(ctx: Context, now: datetime, report: PassReport) -> None:
    """File an RPO breach once when it begins (even if no run failed); note its end."""
    from orchestrator.events import RPO_BREACHED, RPO_RESTORED, Event

    policies = list(ctx.config.policies.values())
    pairs = [(p.name, t) for p in policies for t in p.targets]
    good = ctx.catalog.newest_runs(pairs)
    newest = {pair: (r.started_at if (r := good.get(pair)) else None) for pair in pairs}
    seen = ctx.catalog.first_seen_all((p.name for p in policies), now)
    breaches = rpo_breaches(policies, newest, seen, now)
    report.breaches = breaches
    open_now = {(b.policy, b.target) for b in breaches}
    marks = ctx.catalog.marks("rpo-breach:")  # read once: set below only when it changes
    for b in breaches:
        mark = f"rpo-breach:{b.policy}@{b.target}"
        if marks.get(mark):
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
            if (p.name, t) not in open_now and marks.get(mark):
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
