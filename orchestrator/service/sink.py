"""The ticket store's subscriber to the engine's EventBus: a failure opens a ticket (or
counts on the one open for its fingerprint), good news resolves it with the evidence.

Each ticket change goes back on the bus as a `ticket.*` event, so that the audit log
and the notification outbox hear of it as of every other outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from orchestrator import events
from orchestrator.catalog import Catalog
from orchestrator.errors import OrchestratorError
from orchestrator.events import Event, EventBus
from orchestrator.policies.model import Config
from orchestrator.service import clock, rules
from orchestrator.service import ticket as tk

log = logging.getLogger("orchestrator.tickets")

TICKET_OPENED = "ticket.opened"
TICKET_REPEATED = "ticket.repeated"
TICKET_RESOLVED = "ticket.resolved"
TICKET_CHANGED = "ticket.changed"  # a person's action: ack, assign, comment, close, rate
TICKET_ESCALATED = "ticket.escalated"
TICKET_REFUSED = "ticket.refused"  # a person's action the ticket's rules refused
_EVENT_OF = {"opened": TICKET_OPENED, "repeated": TICKET_REPEATED}


class _AlreadyDone(Exception):
    """Another process changed the ticket first: nothing to write."""


@dataclass
class TicketSink:
    """EventSink filing the engine's failures as tickets."""

    config: Config
    catalog: Catalog
    bus: EventBus
    host: str
    describe_target: Callable[[str], str]  # target name -> where its repository is

    def publish(self, event: Event) -> None:
        if event.kind.startswith("ticket."):
            return
        try:
            failure = rules.failure_of(event)
            if failure is not None:
                self._file(failure, event)
            for kind in rules.clears(event):
                self._clear(rules.fingerprint(event.policy or "", event.target or "", kind), event)
        except OrchestratorError as exc:  # the catalog is unusable: say so, never lose the run
            log.error("tickets: %s was not filed: %s", event.kind, exc.message)

    # ------------------------------------------------------------------ failures

    def _file(self, failure: rules.Failure, event: Event) -> None:
        action: list[str] = []

        def decide(current: tk.Ticket | None) -> tuple[tk.Ticket, tk.Change]:
            if current is None:
                t = self._new(failure, event)
                change = tk.Change(event.time, tk.SYSTEM, "opened", t.status, event.summary)
            else:
                t, change = tk.repeated(current, event.time, event.summary)
            action[:] = [change.action]  # decided inside the transaction: the last try counts
            return t, change

        t = self.catalog.file_ticket(failure.fingerprint, decide)
        self._tell(_EVENT_OF[action[0]], t, event.time, event.summary)

    def _new(self, failure: rules.Failure, event: Event) -> tk.Ticket:
        service = self.config.service
        policy = self.config.policies.get(failure.policy) if failure.policy else None
        importance = policy.importance if policy else "normal"
        prio = rules.priority(failure.kind, importance, service.priorities)
        due = clock.deadlines(event.time, prio, service.response_hours, service.resolution_hours)
        d = event.details or {}
        return tk.Ticket(
            id=0,
            kind=failure.kind,
            status="new",
            priority=prio,
            classification=rules.classification(failure.kind, prio),
            requester=tk.SYSTEM,
            description=f"{event.time.isoformat(timespec='seconds')}: {event.summary}",
            occurred_at=event.time,
            opened_at=event.time,
            respond_by=due.respond_by,
            resolve_by=due.resolve_by,
            fingerprint=failure.fingerprint,
            host=self.host,
            policy=failure.policy,
            target=failure.target,
            repository=self._repository(failure.target),
            snapshot=str(d.get("snapshot_id") or d.get("snapshot") or ""),
            assignee=rules.assignee(failure.kind, failure.policy, service.assign),
            last_seen=event.time,
            details={"event": event.kind, "run_id": event.run_id, "importance": importance},
        )

    def _repository(self, target: str) -> str:
        if target not in self.config.targets:
            return ""
        try:
            return self.describe_target(target)
        except OrchestratorError:
            return ""

    # ------------------------------------------------------------------ good news

    def _clear(self, fingerprint: str, event: Event) -> None:
        current = self.catalog.open_ticket_for(fingerprint)
        if current is None or not current.is_open:
            return
        d = event.details or {}
        evidence = ", ".join(
            f"{k} {v}"
            for k, v in (
                ("snapshot", d.get("snapshot_id") or d.get("snapshot")),
                ("run", event.run_id),
            )
            if v
        )
        text = f"mended: {event.summary}" + (f" ({evidence})" if evidence else "")

        def decide(t: tk.Ticket) -> tuple[tk.Ticket, tk.Change]:
            if not t.is_open:  # resolved by someone else meanwhile: only note it
                return t, tk.Change(event.time, tk.SYSTEM, "comment", t.status, text)
            return tk.resolve(t, tk.SYSTEM, text, event.time)

        t = self.catalog.change_ticket(current.id, decide)
        if t is not None:
            self._tell(TICKET_RESOLVED, t, event.time, text)

    # ------------------------------------------------------------------ the bus

    def _tell(self, kind: str, t: tk.Ticket, when: datetime, text: str) -> None:
        self.bus.publish(ticket_event(kind, t, when, text))


def ticket_event(
    kind: str, t: tk.Ticket, when: datetime, text: str, who: str = "", action: str = ""
) -> Event:
    """A ticket change as an engine event (the audit log records every one)."""
    severity: events.Severity = "warning" if t.priority == "urgent" else "info"
    return Event(
        kind=kind,
        time=when,
        severity=severity,
        summary=f"ticket {t.id} ({t.priority}, {t.status}): {text}",
        policy=t.policy or None,
        target=t.target or None,
        details={
            "ticket": t.id,
            "status": t.status,
            "priority": t.priority,
            "fingerprint": t.fingerprint,
            "count": t.count,
            "assignee": t.assignee,
            **({"who": who} if who else {}),
            **({"action": action} if action else {}),
        },
    )


def refused_event(ticket_id: int, who: str, what: str, why: str, when: datetime) -> Event:
    """A person's ticket action the rules refused: an audit record of its own."""
    return Event(
        TICKET_REFUSED,
        when,
        "warning",
        f"{what} by {who} refused: {why}",
        details={"ticket": ticket_id, "who": who, "action": what, "outcome": "refused"},
    )


def escalate_due(
    catalog: Catalog, bus: EventBus, now: datetime, contacts: tuple[str, ...]
) -> list[tk.Ticket]:
    """The daemon's check of the response clocks: each new ticket past its response
    deadline is marked once and told to the escalation contacts (a `ticket.escalated`
    event, which the notifications pick up)."""
    done = []
    to = ", ".join(contacts) or "the channels that hear escalations ([notify.NAME])"
    for t in catalog.tickets(statuses=("new",)):
        times = clock.ClockTimes.of(t)
        if not clock.needs_escalation(times, now):
            continue

        def decide(cur: tk.Ticket) -> tuple[tk.Ticket, tk.Change]:
            again = clock.ClockTimes.of(cur)
            if not clock.needs_escalation(again, now):  # another daemon was first
                raise _AlreadyDone
            return tk.escalated(cur, now, to)

        try:
            changed = catalog.change_ticket(t.id, decide)
        except _AlreadyDone:
            continue
        if changed is not None:
            done.append(changed)
            bus.publish(ticket_event(TICKET_ESCALATED, changed, now, f"breached; told {to}"))
    return done
