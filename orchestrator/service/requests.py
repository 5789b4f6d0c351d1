"""A restore request's life (service standard 6.2) as pure transitions over its ticket:
filed by a requester -> approved (or rejected) by an operator who is not the requester
-> run -> done (resolved with the evidence) or failed (left open for an operator).
The request's own state lives in the ticket's `details["request"]`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from orchestrator.service import clock, rules
from orchestrator.service import ticket as tk

KIND = "restore-request"
AWAITING, APPROVED, REJECTED, RUNNING, DONE, FAILED = (
    "awaiting-approval",
    "approved",
    "rejected",
    "running",
    "done",
    "failed",
)


def state(t: tk.Ticket) -> str:
    return str(t.details.get("request", {}).get("state", ""))


def file_request(
    requester: str,
    policy: str,
    importance: str,
    paths: tuple[str, ...],
    to: str,
    as_of: datetime | None,
    reason: str,
    now: datetime,
    response_hours: Mapping[str, float] = clock.DEFAULT_RESPONSE_HOURS,
    resolution_hours: Mapping[str, float] = clock.DEFAULT_RESOLUTION_HOURS,
    assign: Mapping[str, str] | None = None,
) -> tuple[tk.Ticket, tk.Change]:
    """A new request's ticket: its priority follows the data's importance."""
    if not reason.strip():
        raise tk.TicketError("a restore request needs a reason (--reason)")
    prio = rules.priority(KIND, importance)
    due = clock.deadlines(now, prio, response_hours, resolution_hours)
    what = ", ".join(paths) or "everything"
    when = f" as of {as_of.isoformat(timespec='minutes')}" if as_of else " (newest snapshot)"
    t = tk.Ticket(
        id=0,
        kind=KIND,
        status="new",
        priority=prio,
        classification=rules.classification(KIND, prio),
        requester=requester,
        description=f"restore {what} of '{policy}'{when} to {to}: {reason}",
        occurred_at=now,
        opened_at=now,
        respond_by=due.respond_by,
        resolve_by=due.resolve_by,
        policy=policy,
        assignee=rules.assignee(KIND, policy, assign or {}),
        last_seen=now,
        details={
            "request": {
                "state": AWAITING,
                "paths": list(paths),
                "to": to,
                "as_of": as_of.isoformat() if as_of else None,
                "reason": reason,
            },
            "importance": importance,
        },
    )
    return t, tk.Change(now, requester, "requested", t.status, t.description)


def _with(t: tk.Ticket, **request: Any) -> dict[str, Any]:
    return {**t.details, "request": {**t.details.get("request", {}), **request}}


def _refuse(t: tk.Ticket, why: str) -> tk.TicketError:
    return tk.TicketError(f"request {t.id} ({state(t) or t.status}): {why}")


def _a_request(t: tk.Ticket) -> None:
    if t.kind != KIND:
        raise tk.TicketError(f"ticket {t.id} is not a restore request (it is {t.kind})")


def approve(t: tk.Ticket, who: str, now: datetime) -> tuple[tk.Ticket, tk.Change]:
    """An operator's approval, the request's first response; never the requester's own.
    A request whose run failed may be approved again, to run again."""
    _a_request(t)
    if who == t.requester:
        raise _refuse(t, f"{who} asked for it and may not approve their own request")
    if state(t) not in (AWAITING, FAILED):
        raise _refuse(t, "only a request awaiting approval (or whose run failed) is approved")
    t = dataclasses.replace(
        t,
        status="acknowledged",
        acknowledged_at=t.acknowledged_at or now,
        acknowledged_by=t.acknowledged_by or who,
        details=_with(t, state=APPROVED, approved_by=who, approved_at=now.isoformat()),
    )
    return t, tk.Change(now, who, "approve", t.status)


def reject(t: tk.Ticket, who: str, why: str, now: datetime) -> tuple[tk.Ticket, tk.Change]:
    _a_request(t)
    if state(t) not in (AWAITING, FAILED):
        raise _refuse(t, "only a request awaiting approval (or whose run failed) is rejected")
    if not why.strip():
        raise _refuse(t, "say why it is rejected (--reason)")
    t = dataclasses.replace(
        t,
        status="resolved",
        acknowledged_at=t.acknowledged_at or now,
        acknowledged_by=t.acknowledged_by or who,
        resolved_at=now,
        resolved_by=who,
        solution=f"rejected by {who}: {why}",
        details=_with(t, state=REJECTED, rejected_by=who),
    )
    return t, tk.Change(now, who, "reject", t.status, why)


def started(
    t: tk.Ticket, who: str, now: datetime, host: str = "", pid: int = 0
) -> tuple[tk.Ticket, tk.Change]:
    """Taken by one runner (the daemon or `request run`): no second runner takes it.
    Its host and pid let the next runner find a run whose process died."""
    _a_request(t)
    if state(t) != APPROVED:
        raise _refuse(t, "only an approved request is run")
    runner = {"host": host, "pid": pid}
    t = dataclasses.replace(
        t, details=_with(t, state=RUNNING, started_at=now.isoformat(), runner=runner)
    )
    return t, tk.Change(now, who, "run", t.status)


def died(t: tk.Ticket, now: datetime) -> tuple[tk.Ticket, tk.Change]:
    """A run whose process died (kill -9, a crash): failed, to be approved again."""
    if state(t) != RUNNING:
        raise _refuse(t, "it is not running")
    pid = t.details["request"].get("runner", {}).get("pid")
    return finished(t, now, None, f"interrupted: the process running it (pid {pid}) died")


def finished(
    t: tk.Ticket, now: datetime, evidence: Mapping[str, Any] | None, error: str = ""
) -> tuple[tk.Ticket, tk.Change]:
    """Done: resolved with the evidence (files, bytes, snapshot, time, where). Failed:
    left open, with the error, for an operator (who may approve a new request)."""
    if error:
        t = dataclasses.replace(t, details=_with(t, state=FAILED, error=error))
        return t, tk.Change(now, tk.SYSTEM, "failed", t.status, error)
    ev = dict(evidence or {})
    text = (
        f"restored {ev.get('files')} files ({ev.get('bytes')} bytes) of snapshot "
        f"{ev.get('snapshot')} from '{ev.get('target')}' to {ev.get('to')} in "
        f"{ev.get('seconds')} s, verified by restic"
    )
    t = dataclasses.replace(
        t,
        status="resolved",
        resolved_at=now,
        resolved_by=tk.SYSTEM,
        solution=text,
        snapshot=str(ev.get("snapshot") or ""),
        target=str(ev.get("target") or ""),
        details=_with(t, state=DONE, evidence=ev),
    )
    return t, tk.Change(now, tk.SYSTEM, "done", t.status, text)
