"""Carrying out an approved restore request: claimed atomically (one runner only),
kept inside the requester's restore roots (checked again now: a link swapped in since
the request was filed is caught), restored and verified by restic, recorded in the
catalog and the audit log, and resolved with the evidence."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from orchestrator.catalog import GOOD_OUTCOMES
from orchestrator.engine.context import Context
from orchestrator.engine.restore import restore_policy
from orchestrator.errors import OrchestratorError
from orchestrator.service import requests as rq
from orchestrator.service import ticket as tk
from orchestrator.service.sink import TICKET_CHANGED, TICKET_RESOLVED, ticket_event


def run_request(ctx: Context, ticket_id: int, who: str) -> tk.Ticket:
    recover_dead_runs(ctx)
    now = ctx.clock.now()
    t = ctx.catalog.change_ticket(
        ticket_id, lambda cur: rq.started(cur, who, now, ctx.host, ctx.pid)
    )
    if t is None:
        raise tk.TicketError(f"no request {ticket_id}: 'orchestrator tickets list' lists them")
    ctx.events.publish(ticket_event(TICKET_CHANGED, t, now, f"run by {who}", who, "run"))
    request = t.details["request"]
    evidence, error = None, ""
    try:
        evidence = _restore(ctx, t, request)
    except OrchestratorError as exc:
        error = exc.message
    except KeyboardInterrupt:  # SIGINT/SIGTERM: recorded, then the stop goes on
        _finish(ctx, ticket_id, None, "interrupted (SIGINT/SIGTERM)")
        raise
    return _finish(ctx, ticket_id, evidence, error)


def _finish(ctx: Context, ticket_id: int, evidence: dict | None, error: str) -> tk.Ticket:
    end = ctx.clock.now()
    done = ctx.catalog.change_ticket(ticket_id, lambda cur: rq.finished(cur, end, evidence, error))
    assert done is not None  # it was there a moment ago, and tickets are never deleted
    kind = TICKET_RESOLVED if not error else TICKET_CHANGED
    ctx.events.publish(ticket_event(kind, done, end, done.solution or error, tk.SYSTEM, "run"))
    return done


def recover_dead_runs(ctx: Context) -> list[tk.Ticket]:
    """Requests left `running` by a process of this host that died: failed (approve
    again to retry), and their half-written staging folder removed."""
    from orchestrator.engine.context import _pid_alive
    from orchestrator.engine.restore import remove_stale_staging

    found = []
    for t in ctx.catalog.tickets(statuses=("acknowledged",)):
        runner = t.details.get("request", {}).get("runner", {})
        if rq.state(t) != rq.RUNNING or runner.get("host") != ctx.host:
            continue
        if _pid_alive(int(runner.get("pid", 0))):
            continue
        now = ctx.clock.now()
        try:
            dead = ctx.catalog.change_ticket(t.id, lambda cur, at=now: rq.died(cur, at))
        except tk.TicketError:  # another process recovered it first
            continue
        if dead is not None:
            remove_stale_staging(ctx, Path(t.details["request"]["to"]))
            ctx.events.publish(
                ticket_event(TICKET_CHANGED, dead, now, dead.details["request"]["error"])
            )
            found.append(dead)
    return found


def run_approved(ctx: Context) -> list[tk.Ticket]:
    """The daemon's pass: every approved request, oldest first."""
    recover_dead_runs(ctx)
    waiting = [
        t
        for t in ctx.catalog.tickets(statuses=("acknowledged",))
        if t.kind == rq.KIND and rq.state(t) == rq.APPROVED
    ]
    done = []
    for t in reversed(waiting):
        try:
            done.append(run_request(ctx, t.id, tk.SYSTEM))
        except tk.TicketError:  # another runner took it first
            continue
    return done


def _restore(ctx: Context, t: tk.Ticket, request: dict) -> dict:
    from orchestrator.security import access

    to = Path(request["to"])
    roots = ctx.config.access.restore_roots if ctx.config.access else ()
    if request.get("within_roots"):
        resolved = access.resolve_destination(to)
        if access.root_of(resolved, roots) is None:
            shown = ", ".join(str(r) for r in roots) or "none"
            raise OrchestratorError(
                f"{to} now resolves to {resolved}, outside the restore roots ({shown}): "
                "not restored"
            )
    policy = ctx.config.policy(t.policy)
    snapshot, target = "latest", None
    if request.get("as_of"):
        snapshot, target = as_of_snapshot(ctx, t.policy, datetime.fromisoformat(request["as_of"]))
    start = time.monotonic()
    ctx.request_id = t.id
    try:
        result = restore_policy(ctx, policy, to, snapshot, tuple(request["paths"]), target)
    finally:
        ctx.request_id = None
    return {
        "files": result.files,
        "bytes": result.bytes,
        "snapshot": result.snapshot.id,
        "target": result.run.target,
        "to": str(result.destination),
        "seconds": round(time.monotonic() - start, 1),
        "run": result.run.id,
    }


def as_of_snapshot(ctx: Context, policy: str, when: datetime) -> tuple[str, str]:
    """The newest good snapshot of `policy` at or before `when`, on any of its targets."""
    best = None
    for spec in ctx.config.holders_of(ctx.config.policy(policy), None):
        run = ctx.catalog.newest_run(policy, spec.name, outcomes=GOOD_OUTCOMES, before=when)
        if run and run.snapshot_id and (best is None or run.started_at > best.started_at):
            best = run
    if best is None or best.snapshot_id is None:
        raise OrchestratorError(
            f"no snapshot of '{policy}' at or before {when.isoformat(timespec='minutes')}"
        )
    return best.snapshot_id, best.target
