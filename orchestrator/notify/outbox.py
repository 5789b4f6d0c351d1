"""From a ticket change to a delivered notice: queued in the catalog's outbox by the
process that changed the ticket (NoticeSink, on the EventBus), sent by the daemon's pass
(`deliver_due`), retried with backoff while the failure may pass, given up otherwise.
A backup never waits on a mail server.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orchestrator.catalog import Catalog
from orchestrator.errors import OrchestratorError
from orchestrator.events import Event
from orchestrator.notify import backoff
from orchestrator.notify.notice import Notice, NotifyError
from orchestrator.notify.routing import (
    Channel,
    EmailChannel,
    RTChannel,
    WebhookChannel,
    channels_for,
)

log = logging.getLogger("orchestrator.notify")

# ticket.* event (service/sink.py) -> the notice's event (notify/notice.py EVENTS)
_EVENTS = {
    "ticket.opened": "opened",
    "ticket.repeated": "repeated",
    "ticket.resolved": "resolved",
    "ticket.escalated": "escalated",
}
_CHANGES = {  # ticket.changed: a person's action
    "ack": "acknowledged",
    "assign": "assigned",
    "comment": "commented",
    "resolve": "resolved",
    "close": "closed",
    "rate": "rated",
    "approve": "approved",  # restore requests
    "reject": "rejected",
}


def notice_of(event: Event, ticket: Any) -> Notice | None:
    """The notice telling `event` about `ticket` (service/ticket.py's Ticket), or None
    for what nobody is told (a refused action: that is the audit log's)."""
    d = event.details or {}
    kind = _EVENTS.get(event.kind) or (
        _CHANGES.get(str(d.get("action"))) if event.kind == "ticket.changed" else None
    )
    if kind is None:
        return None
    if kind == "opened" and ticket.kind == "restore-request":
        kind = "request"  # a person asked for a restore: operators hear of it to approve
    where = "@".join(x for x in (ticket.policy, ticket.target) if x)
    subject = f"ticket {ticket.id} {kind}: {ticket.kind}" + (  # each sender shows the priority
        f" of {where}" if where else ""
    )
    body = "\n".join(
        [
            event.summary,
            "",
            ticket.description,
            f"status: {ticket.status}; seen {ticket.count} time(s); "
            f"respond by {ticket.respond_by.isoformat(timespec='minutes')}",
            f"assigned to: {ticket.assignee or 'nobody yet'}",
        ]
    )
    fields = {
        "fingerprint": ticket.fingerprint or "",
        "kind": ticket.kind,
        "status": ticket.status,
        "policy": ticket.policy,
        "target": ticket.target,
        "host": ticket.host,
        "repository": ticket.repository,
        "snapshot": ticket.snapshot,
        "solution": ticket.solution,
    }
    return Notice(
        ticket.id,
        kind,
        ticket.priority,
        ticket.assignee,
        subject,
        body,
        {k: v for k, v in fields.items() if v},
        event.time,
    )


def _notice_from_json(text: str) -> Notice:
    d = json.loads(text)
    return Notice(
        d["ticket_id"],
        d["event"],
        d["priority"],
        d["team"],
        d["subject"],
        d["body"],
        d["fields"],
        datetime.fromisoformat(d["at"].replace("Z", "+00:00")),
    )


@dataclass
class NoticeSink:
    """EventSink queueing a notice per channel that hears a ticket change."""

    catalog: Catalog
    channels: Sequence[Channel]
    escalate: Sequence[str] = ()  # [service] escalate: the channels told of a breach

    def _hearing(self, notice: Notice) -> list[Channel]:
        if notice.event == "escalated" and self.escalate:
            return [ch for ch in self.channels if ch.name in self.escalate]
        return channels_for(notice, self.channels)

    def publish(self, event: Event) -> None:
        if not self.channels or not event.kind.startswith("ticket."):
            return
        try:
            ticket = self.catalog.get_ticket(int(event.details.get("ticket", 0)))
            notice = notice_of(event, ticket) if ticket is not None else None
            if notice is None:
                return
            rows = [
                (ch.name, notice.ticket_id, notice.event, notice.to_json())
                for ch in self._hearing(notice)
            ]
            if rows:
                self.catalog.enqueue(rows, event.time)
        except OrchestratorError as exc:  # the catalog is unusable: never fail the action
            log.error("notify: %s was not queued: %s", event.kind, exc.message)


# ------------------------------------------------------------------ delivery


Send = Callable[[Channel, Notice], None]


@dataclass
class Delivery:
    sent: list[tuple[str, int]] = field(default_factory=list)  # (channel, ticket)
    retry: list[tuple[str, str]] = field(default_factory=list)  # (channel, error)
    given_up: list[tuple[str, str]] = field(default_factory=list)


def deliver_due(
    catalog: Catalog,
    channels: Sequence[Channel],
    resolve: Callable[[str], str],
    now: datetime,
    send: Send | None = None,
) -> Delivery:
    """Send every queued notice whose time has come. One channel failing does not hold
    up the others; a failure that may pass is tried again with backoff, a permanent one
    (refused credentials, a 4xx) or one older than a day is given up. Both stay visible
    in `status` until the channel delivers again."""
    by_name = {ch.name: ch for ch in channels}
    sender = send or (lambda ch, n: _send(ch, n, resolve, catalog))
    report = Delivery()
    down: set[str] = set()  # a channel that failed in this pass waits for the next one
    for row in catalog.due_notices(now):
        if row.channel in down:
            continue  # a hanging server costs one timeout per pass, not one per notice
        if not catalog.claim_notice(row.id, now):  # another sender took it
            continue
        channel = by_name.get(row.channel)
        if channel is None:  # removed from the config since it was queued
            catalog.notice_failed(row.id, "the channel is no longer configured", None)
            continue
        try:
            sender(channel, _notice_from_json(row.notice))
        except Exception as exc:  # a sender's bug must not stop the pass
            transient = getattr(exc, "transient", True)
            if isinstance(exc, NotifyError | OrchestratorError | _RTFailed):
                error = getattr(exc, "message", str(exc))
            else:  # its text is unknown: it could hold a URL's token; the type only
                log.debug("notify: %s failed", row.channel, exc_info=True)
                error = f"unexpected error ({type(exc).__name__}); run with -vv for details"
            given_up = not transient or backoff.gives_up(row.attempts + 1, row.created_at, now)
            later = (
                None if given_up else backoff.next_attempt(row.attempts + 1, now, key=str(row.id))
            )
            catalog.notice_failed(row.id, error, later)
            (report.given_up if given_up else report.retry).append((row.channel, error))
            if transient:
                down.add(row.channel)
            log.warning("notify: %s (ticket %d): %s", row.channel, row.ticket_id, error)
            continue
        catalog.notice_sent(row.id, now)
        report.sent.append((row.channel, row.ticket_id))
    return report


class _RTFailed(Exception):
    def __init__(self, message: str, transient: bool) -> None:
        super().__init__(message)
        self.message, self.transient = message, transient


def _send(
    channel: Channel, notice: Notice, resolve: Callable[[str], str], catalog: Catalog
) -> None:
    if isinstance(channel, EmailChannel):
        from orchestrator.notify.email import send_email

        send_email(channel, notice, resolve(channel.password) if channel.password else None)
    elif isinstance(channel, WebhookChannel):
        from orchestrator.notify.webhook import send_webhook

        send_webhook(channel, notice, resolve(channel.secret))
    elif isinstance(channel, RTChannel):
        _mirror_to_rt(channel, notice, resolve(channel.token), catalog)


def _mirror_to_rt(channel: RTChannel, notice: Notice, token: str, catalog: Catalog) -> None:
    """The same ticket in an RT queue: created once per fingerprint (found again by it),
    commented on every later change, resolved with ours; RT's number kept on ours."""
    from orchestrator.notify.rt import RTClient, RTError
    from orchestrator.service import ticket as tk

    fingerprint = notice.fields.get("fingerprint") or f"ticket-{notice.ticket_id}"
    try:
        client = RTClient(channel.url, token, channel.queue, channel.timeout)
        number = client.find_open(fingerprint)
        if number is None and notice.event in ("resolved", "closed"):
            return  # nothing open there to resolve
        if number is None:
            number = client.create(
                notice.subject, notice.body, fingerprint, notice.priority, channel.requestor or None
            )

            def keep(t: Any) -> tuple[Any, Any]:
                details = {**t.details, "rt_ticket": number}
                note = f"mirrored to Request Tracker as #{number} ({channel.name})"
                return (
                    dataclasses.replace(t, details=details),
                    tk.Change(notice.at, tk.SYSTEM, "mirrored", t.status, note),
                )

            catalog.change_ticket(notice.ticket_id, keep)
            if notice.event == "opened":
                return
        if notice.event in ("resolved", "closed"):
            client.resolve(number, notice.body)
        else:
            client.comment(number, f"{notice.subject}\n\n{notice.body}")
    except RTError as exc:
        raise _RTFailed(f"Request Tracker channel '{channel.name}': {exc}", exc.transient) from None
