"""A ticket's deadlines and the state of its clocks: pure functions of the ticket's
times and `now`.

Deadlines are elapsed hours (a backup fails at night and at weekends as in office
hours, and the 2 / 4 / 8 hours of the standard are a response to an outage), counted in
UTC: a deadline across a daylight-saving change is still that many real hours later,
whatever the local clock shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

DEFAULT_RESPONSE_HOURS: Mapping[str, float] = {"urgent": 2, "important": 4, "general": 8}
DEFAULT_RESOLUTION_HOURS: Mapping[str, float] = {"urgent": 24, "important": 72, "general": 168}


@dataclass(frozen=True)
class Deadlines:
    respond_by: datetime  # the first response (an acknowledgement) is due
    resolve_by: datetime  # the resolution is due


def deadlines(
    opened: datetime,
    priority: str,
    response_hours: Mapping[str, float] = DEFAULT_RESPONSE_HOURS,
    resolution_hours: Mapping[str, float] = DEFAULT_RESOLUTION_HOURS,
) -> Deadlines:
    if opened.tzinfo is None:
        raise ValueError("a ticket's opening time must carry its time zone")
    start = opened.astimezone(UTC)
    return Deadlines(
        start + timedelta(hours=response_hours[priority]),
        start + timedelta(hours=resolution_hours[priority]),
    )


@dataclass(frozen=True)
class ClockTimes:
    """What the clocks need of a ticket."""

    status: str
    respond_by: datetime
    resolve_by: datetime
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    escalated_at: datetime | None = None

    @classmethod
    def of(cls, t: Any) -> ClockTimes:
        """The clock times of a ticket (service/ticket.py's Ticket)."""
        return cls(
            t.status, t.respond_by, t.resolve_by, t.acknowledged_at, t.resolved_at, t.escalated_at
        )


OPEN = ("new", "acknowledged")


def response_state(t: ClockTimes, now: datetime) -> str:
    """`met` (acknowledged in time), `late` (acknowledged after the deadline), `running`
    (not yet acknowledged, still in time) or `breached` (not acknowledged, past it)."""
    if t.acknowledged_at is not None:
        return "met" if t.acknowledged_at <= t.respond_by else "late"
    if t.status not in OPEN:  # resolved without an acknowledgement: the resolution answered
        done = t.resolved_at or now
        return "met" if done <= t.respond_by else "late"
    return "running" if now <= t.respond_by else "breached"


def resolution_state(t: ClockTimes, now: datetime) -> str:
    """`met`, `late`, `running` or `breached`, as for the response."""
    if t.resolved_at is not None:
        return "met" if t.resolved_at <= t.resolve_by else "late"
    return "running" if now <= t.resolve_by else "breached"


def needs_escalation(t: ClockTimes, now: datetime) -> bool:
    """Once, when the response deadline passed with nobody acknowledging the ticket."""
    return (
        t.status == "new"
        and t.acknowledged_at is None
        and t.escalated_at is None
        and now > t.respond_by
    )
