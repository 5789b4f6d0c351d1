"""Deadlines and clocks as tables: elapsed hours in UTC, across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from orchestrator.service import clock

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("opened", "priority", "respond_local", "resolve_utc"),
    [
        # plain days
        (
            datetime(2026, 11, 2, 9, 0, tzinfo=BERLIN),
            "urgent",
            "2026-11-02 11:00",
            "2026-11-03 08:00",
        ),
        (
            datetime(2026, 11, 2, 9, 0, tzinfo=BERLIN),
            "important",
            "2026-11-02 13:00",
            "2026-11-05 08:00",
        ),
        (
            datetime(2026, 11, 2, 9, 0, tzinfo=BERLIN),
            "general",
            "2026-11-02 17:00",
            "2026-11-09 08:00",
        ),
        # spring forward in Berlin (02:00 -> 03:00 on 2026-03-29): 2 real hours after
        # 01:30 CET is 04:30 CEST on the wall clock
        (
            datetime(2026, 3, 29, 1, 30, tzinfo=BERLIN),
            "urgent",
            "2026-03-29 04:30",
            "2026-03-30 00:30",
        ),
        # fall back (03:00 -> 02:00 on 2026-10-25): 2 real hours after 01:30 CEST is
        # 02:30 CET, the second 02:30 of that night
        (
            datetime(2026, 10, 25, 1, 30, tzinfo=BERLIN),
            "urgent",
            "2026-10-25 02:30",
            "2026-10-25 23:30",
        ),
        # New York's spring forward (2026-03-08): 8 hours after 22:00 EST
        (
            datetime(2026, 3, 7, 22, 0, tzinfo=NEW_YORK),
            "general",
            "2026-03-08 07:00",
            "2026-03-15 03:00",
        ),
    ],
)
def test_deadlines_are_real_hours_later_whatever_the_wall_clock_does(
    opened: datetime, priority: str, respond_local: str, resolve_utc: str
) -> None:
    due = clock.deadlines(opened, priority)
    tz = opened.tzinfo
    assert due.respond_by.astimezone(tz).strftime("%Y-%m-%d %H:%M") == respond_local
    assert due.resolve_by.strftime("%Y-%m-%d %H:%M") == resolve_utc
    assert due.respond_by.tzinfo == UTC
    hours = clock.DEFAULT_RESPONSE_HOURS[priority]
    assert due.respond_by - opened == timedelta(hours=hours)  # aware: real elapsed time


def test_fall_back_deadline_is_the_second_0230() -> None:
    due = clock.deadlines(datetime(2026, 10, 25, 1, 30, tzinfo=BERLIN), "urgent")
    assert due.respond_by.astimezone(BERLIN).utcoffset() == timedelta(hours=1)  # CET


def test_configured_hours_and_a_naive_time_refused() -> None:
    due = clock.deadlines(
        datetime(2026, 1, 1, tzinfo=UTC), "urgent", {"urgent": 0.5}, {"urgent": 1.5}
    )
    assert due.respond_by == datetime(2026, 1, 1, 0, 30, tzinfo=UTC)
    assert due.resolve_by == datetime(2026, 1, 1, 1, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="time zone"):
        clock.deadlines(datetime(2026, 1, 1), "urgent")


T = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
DUE, FIX = T + timedelta(hours=2), T + timedelta(hours=24)
H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("status", "ack", "resolved", "escalated", "now", "response", "resolution", "escalate"),
    [
        ("new", None, None, None, T + H, "running", "running", False),
        ("new", None, None, None, DUE, "running", "running", False),  # at the deadline: in time
        ("new", None, None, None, DUE + H, "breached", "running", True),
        ("new", None, None, DUE + H, DUE + 2 * H, "breached", "running", False),  # once only
        ("acknowledged", T + H, None, None, DUE + H, "met", "running", False),
        ("acknowledged", DUE + H, None, DUE, FIX + H, "late", "breached", False),
        ("resolved", None, T + H, None, FIX + H, "met", "met", False),  # engine mended it fast
        ("resolved", T + H, FIX + H, None, FIX + 2 * H, "met", "late", False),
        ("closed", None, DUE + H, None, FIX, "late", "met", False),
    ],
)
def test_clock_states(
    status: str,
    ack: datetime | None,
    resolved: datetime | None,
    escalated: datetime | None,
    now: datetime,
    response: str,
    resolution: str,
    escalate: bool,
) -> None:
    times = clock.ClockTimes(status, DUE, FIX, ack, resolved, escalated)
    assert clock.response_state(times, now) == response
    assert clock.resolution_state(times, now) == resolution
    assert clock.needs_escalation(times, now) is escalate
