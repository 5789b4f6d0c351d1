"""A ticket and what may happen to it: the standard's fields (2.3.1) and its life
(new -> acknowledged -> resolved -> closed) as pure transitions, each giving the ticket
after it and the line it adds to the status history. The store (catalog) only keeps
what these functions decide.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orchestrator.errors import UsageError

SYSTEM = "system"  # the requester of the tickets the engine files
STATUSES = ("new", "acknowledged", "resolved", "closed")
OPEN = ("new", "acknowledged")
ACTIONS = ("ack", "assign", "comment", "resolve", "close", "rate")


class TicketError(UsageError):
    """An action this ticket cannot take now (one sentence naming the ticket and why)."""


MAX_TEXT = 10_000
_BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def clean_text(text: str, what: str, multiline: bool = False) -> str:
    """Text a person gives a ticket: at most MAX_TEXT characters, valid UTF-8, no control
    characters (line breaks only where `multiline`) and no bidi overrides, so that what
    `tickets show` and the audit log print is what was typed, not a forged line."""
    allowed = "\n" if multiline else ""
    if len(text) > MAX_TEXT:
        raise TicketError(f"{what} is {len(text)} characters long: at most {MAX_TEXT}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise TicketError(f"{what} is not valid UTF-8 text") from None
    for ch in text:
        if (ch < " " and ch not in allowed) or "\x7f" <= ch <= "\x9f" or ch in _BIDI:
            raise TicketError(f"{what} holds the control character U+{ord(ch):04X}")
    return text


def not_before(t: Ticket, last: datetime | None, at: datetime) -> None:
    """A ticket's history only moves forward: an action dated before its last change
    (`--now` in the past) is refused."""
    if last is not None and at < last:
        raise TicketError(
            f"ticket {t.id}: {at.isoformat(timespec='minutes')} is before its last change "
            f"({last.isoformat(timespec='minutes')}): a ticket's history only moves forward"
        )


@dataclass(frozen=True)
class Ticket:
    id: int
    kind: str  # the failure class (service/rules.py) or "restore-request"
    status: str
    priority: str  # urgent | important | general
    classification: str  # urgent | technical | routine (standard 2.1.2)
    requester: str  # SYSTEM, or the person who asked
    description: str
    occurred_at: datetime
    opened_at: datetime
    respond_by: datetime
    resolve_by: datetime
    fingerprint: str | None = None  # one open ticket per fingerprint (failures only)
    host: str = ""
    policy: str = ""
    target: str = ""
    repository: str = ""
    snapshot: str = ""
    assignee: str = ""
    count: int = 1  # how many times the failure was seen while this ticket was open
    last_seen: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str = ""
    escalated_at: datetime | None = None
    resolved_at: datetime | None = None
    resolved_by: str = ""
    solution: str = ""
    closed_at: datetime | None = None
    closed_by: str = ""
    rating: int | None = None
    feedback: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN


@dataclass(frozen=True)
class Change:
    """One line of a ticket's status history."""

    at: datetime
    who: str
    action: str  # opened | repeated | ack | assign | comment | resolve | close | ...
    status: str  # the status after it
    text: str = ""


def _refuse(t: Ticket, why: str) -> TicketError:
    return TicketError(f"ticket {t.id} ({t.status}): {why}")


def acknowledge(t: Ticket, who: str, now: datetime) -> tuple[Ticket, Change]:
    """The first response: stops the response clock."""
    if t.status != "new":
        raise _refuse(t, "only a new ticket is acknowledged")
    t = dataclasses.replace(t, status="acknowledged", acknowledged_at=now, acknowledged_by=who)
    return t, Change(now, who, "ack", t.status)


def assign(t: Ticket, who: str, to: str, now: datetime) -> tuple[Ticket, Change]:
    if t.status == "closed":
        raise _refuse(t, "a closed ticket is not reassigned")
    if not to.strip():
        raise _refuse(t, "assign it to someone (a person or a team)")
    return dataclasses.replace(t, assignee=to), Change(now, who, "assign", t.status, to)


def comment(t: Ticket, who: str, text: str, now: datetime) -> tuple[Ticket, Change]:
    if not text.strip():
        raise _refuse(t, "a comment needs text")
    return t, Change(now, who, "comment", t.status, text)


def resolve(t: Ticket, who: str, solution: str, now: datetime) -> tuple[Ticket, Change]:
    """A person (with the solution) or the engine (with the evidence) resolves it."""
    if t.status not in OPEN:
        raise _refuse(t, "only an open ticket is resolved")
    if not solution.strip():
        raise _refuse(t, "say how it was solved (--solution)")
    t = dataclasses.replace(
        t, status="resolved", resolved_at=now, resolved_by=who, solution=solution
    )
    return t, Change(now, who, "resolve", t.status, solution)


def close(t: Ticket, who: str, solution: str, now: datetime) -> tuple[Ticket, Change]:
    """A person closes a ticket, with the solution text (the standard's archiving, 2.3.4).
    An open ticket may be closed too (a false alarm): it is resolved and closed at once."""
    if t.status == "closed":
        raise _refuse(t, "it is closed already")
    text = solution.strip() or t.solution
    if not text:
        raise _refuse(t, "say how it was solved (--solution) before closing it")
    resolved_at = t.resolved_at or now
    t = dataclasses.replace(
        t,
        status="closed",
        solution=text,
        resolved_at=resolved_at,
        resolved_by=t.resolved_by or who,
        closed_at=now,
        closed_by=who,
    )
    return t, Change(now, who, "close", t.status, text)


def rate(t: Ticket, who: str, rating: int, feedback: str, now: datetime) -> tuple[Ticket, Change]:
    """The satisfaction survey (4.2.6): the person who asked rates what was done."""
    if t.requester == SYSTEM:
        raise _refuse(t, "the system filed it: only a person's request is rated")
    if who != t.requester:
        raise _refuse(t, f"only its requester ({t.requester}) rates it, not {who}")
    if t.status not in ("resolved", "closed"):
        raise _refuse(t, "rate it once it is resolved")
    if not 1 <= rating <= 5:
        raise _refuse(t, f"a rating is 1 to 5, not {rating}")
    t = dataclasses.replace(t, rating=rating, feedback=feedback)
    return t, Change(now, who, "rate", t.status, f"{rating}/5 {feedback}".strip())


def repeated(t: Ticket, now: datetime, text: str) -> tuple[Ticket, Change]:
    """The same failure again while its ticket is open: counted on it. (After the ticket
    was resolved, a failure is a new occurrence and opens a new ticket.)"""
    if t.status not in OPEN:
        raise _refuse(t, "only an open ticket counts a repeat")
    t = dataclasses.replace(t, count=t.count + 1, last_seen=now)
    return t, Change(now, SYSTEM, "repeated", t.status, text)


def escalated(t: Ticket, now: datetime, to: str) -> tuple[Ticket, Change]:
    t = dataclasses.replace(t, escalated_at=now)
    return t, Change(now, SYSTEM, "escalated", t.status, f"response deadline passed; told {to}")
