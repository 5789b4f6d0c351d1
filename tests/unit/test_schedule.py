"""The calendar, driven by a simulated clock: every `now` is passed in.

Covers the design example's policies, both DST change days, month ends and
29 February, collisions, catch-up and the misfire grace.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from orchestrator.policies.model import Level, Policy, ScheduleEntry
from orchestrator.policies.schedule import (
    Slot,
    catch_up_plan,
    missed_slots,
    next_slot,
    slots_between,
)

pytestmark = pytest.mark.unit

BERLIN = ZoneInfo("Europe/Berlin")


def policy(name: str, *entries: ScheduleEntry) -> Policy:
    return Policy(name=name, importance="normal", targets=("local",), schedules=entries)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# The design example (section 4).
WEB = policy(
    "web-data",
    ScheduleEntry("daily", "30 1 * * *", "incremental"),
    ScheduleEntry("weekly", "0 2 * * sun", "differential"),
    ScheduleEntry("monthly", "0 3 1 * *", "full"),
)
ORDERS = policy(
    "orders-db",
    ScheduleEntry("daily", "15 0 * * *", "full"),
    ScheduleEntry("cron[0]", "0 12 * * 1-5", "incremental"),
)
DAILY_0230 = policy("p", ScheduleEntry("daily", "30 2 * * *", "incremental"))


def monthly_on(day: int) -> Policy:
    return policy("m", ScheduleEntry("monthly", f"0 3 {day} * *", "full", month_day=day))


def november(p: Policy) -> list[Slot]:
    return slots_between(p, "UTC", utc(2026, 10, 31, 23, 59), utc(2026, 12, 1))


# --- one month of web-data in UTC -----------------------------------------------------


@pytest.mark.parametrize(
    ("level", "count"),
    [("full", 1), ("differential", 4), ("incremental", 25)],
)
def test_web_data_november_counts_per_level(level: Level, count: int) -> None:
    # 2026-11-01 is a Sunday and the 1st: one full; Sundays 8, 15, 22, 29 differential.
    slots = november(WEB)
    assert Counter(s.level for s in slots)[level] == count


def test_web_data_november_one_slot_per_day_at_0130() -> None:
    slots = november(WEB)
    assert [s.due for s in slots] == [utc(2026, 11, d, 1, 30) for d in range(1, 31)]
    assert len({s.key for s in slots}) == 30


@pytest.mark.parametrize(
    ("day", "level", "schedules", "reason"),
    [
        (
            1,
            "full",
            ("daily", "weekly", "monthly"),
            "monthly full (daily incremental, weekly differential merged)",
        ),
        (2, "incremental", ("daily",), "daily incremental"),
        (8, "differential", ("daily", "weekly"), "weekly differential (daily incremental merged)"),
        (29, "differential", ("daily", "weekly"), "weekly differential (daily incremental merged)"),
        (30, "incremental", ("daily",), "daily incremental"),
    ],
)
def test_web_data_november_days(
    day: int, level: Level, schedules: tuple[str, ...], reason: str
) -> None:
    (slot,) = slots_between(WEB, "UTC", utc(2026, 11, day), utc(2026, 11, day, 23, 59))
    assert slot == Slot(
        policy="web-data",
        key=f"web-data@2026-11-{day:02d}T01:30",
        due=utc(2026, 11, day, 1, 30),
        level=level,
        schedules=schedules,
        reason=reason,
    )


def test_window_is_open_at_start_and_closed_at_end() -> None:
    due = utc(2026, 11, 2, 1, 30)
    assert slots_between(WEB, "UTC", due, due + timedelta(hours=1)) == []
    assert [s.due for s in slots_between(WEB, "UTC", due - timedelta(hours=1), due)] == [due]


# --- DST: one run per local day ---------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "day", "due_utc", "due_local"),
    [
        # Ordinary days either side, and in summer.
        ("Europe/Berlin", date(2026, 3, 28), utc(2026, 3, 28, 1, 30), "02:30+01:00"),
        ("Europe/Berlin", date(2026, 6, 15), utc(2026, 6, 15, 0, 30), "02:30+02:00"),
        ("Europe/Berlin", date(2026, 3, 30), utc(2026, 3, 30, 0, 30), "02:30+02:00"),
        # Spring forward: 02:30 does not exist; due at the first instant after it.
        ("Europe/Berlin", date(2026, 3, 29), utc(2026, 3, 29, 1, 0), "03:00+02:00"),
        # Fall back: 02:30 happens twice; due once, at the first (CEST) occurrence.
        ("Europe/Berlin", date(2026, 10, 25), utc(2026, 10, 25, 0, 30), "02:30+02:00"),
        ("Europe/Berlin", date(2026, 10, 26), utc(2026, 10, 26, 1, 30), "02:30+01:00"),
        ("America/New_York", date(2026, 3, 8), utc(2026, 3, 8, 7, 0), "03:00-04:00"),
        # New York changes at 02:00: 02:30 is in its gap in March, after its overlap in November.
        ("America/New_York", date(2026, 11, 1), utc(2026, 11, 1, 7, 30), "02:30-05:00"),
    ],
)
def test_daily_0230_runs_once_per_local_day(
    tz: str, day: date, due_utc: datetime, due_local: str
) -> None:
    zone = ZoneInfo(tz)
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    end = start + timedelta(days=1, hours=-1)  # stay inside the local day even on 25-hour days
    (slot,) = slots_between(DAILY_0230, tz, start, end)
    assert slot.key == f"p@{day.isoformat()}T02:30"
    assert slot.due.astimezone(UTC) == due_utc
    assert slot.due.isoformat(timespec="minutes").endswith(f"T{due_local}")
    assert slot.due.tzinfo == zone


@pytest.mark.parametrize(
    ("start", "end"),
    [
        # Both readings of 02:30 on the fall-back day lie in this UTC window.
        (utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 2, 0)),
        # The whole spring-forward day, in UTC.
        (utc(2026, 3, 28, 23, 0), utc(2026, 3, 29, 22, 0)),
    ],
)
def test_dst_day_windows_in_utc_hold_one_slot(start: datetime, end: datetime) -> None:
    assert len(slots_between(DAILY_0230, "Europe/Berlin", start, end)) == 1


def test_a_year_in_berlin_has_one_slot_per_local_day() -> None:
    start = datetime(2026, 1, 1, tzinfo=BERLIN)
    slots = slots_between(WEB, "Europe/Berlin", start, datetime(2027, 1, 1, tzinfo=BERLIN))
    dates = [s.due.date() for s in slots]
    # 2026 has 52 Sundays, three of them 1sts (Feb, Mar, Nov), where the full wins.
    assert len(slots) == 365
    assert len(set(dates)) == 365
    instants = [s.due.astimezone(UTC) for s in slots]
    assert instants == sorted(instants)
    assert Counter(s.level for s in slots) == {"full": 12, "differential": 49, "incremental": 304}


def test_cron_times_pushed_onto_one_instant_by_a_gap_merge() -> None:
    p = policy("g", ScheduleEntry("cron[0]", "0,30 2 * * *", "incremental"))
    start = datetime(2026, 3, 29, tzinfo=BERLIN)
    slots = slots_between(p, "Europe/Berlin", start, start + timedelta(hours=12))
    assert [(s.key, s.due.astimezone(UTC)) for s in slots] == [
        ("g@2026-03-29T02:00", utc(2026, 3, 29, 1, 0))
    ]


# --- month ends and 29 February ---------------------------------------------------------

LONG = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
LEAP = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]


@pytest.mark.parametrize(
    ("month_day", "year", "days"),
    [
        (31, 2027, LONG),
        (31, 2028, LEAP),
        (30, 2027, [min(30, d) for d in LONG]),
        (30, 2028, [min(30, d) for d in LEAP]),
        (29, 2027, [29, 28] + [29] * 10),
        (29, 2028, [29] * 12),
    ],
)
def test_monthly_day_beyond_month_end_runs_on_last_day(
    month_day: int, year: int, days: list[int]
) -> None:
    slots = slots_between(monthly_on(month_day), "UTC", utc(year, 1, 1), utc(year + 1, 1, 1))
    assert [s.due for s in slots] == [utc(year, m, d, 3, 0) for m, d in enumerate(days, 1)]
    assert [s.key for s in slots] == [
        f"m@{year}-{m:02d}-{d:02d}T03:00" for m, d in enumerate(days, 1)
    ]


def test_clamped_monthly_merges_with_daily_on_the_last_day() -> None:
    p = policy(
        "x",
        ScheduleEntry("daily", "0 1 * * *", "incremental"),
        ScheduleEntry("monthly", "0 3 31 * *", "full", month_day=31),
    )
    slots = slots_between(p, "UTC", utc(2028, 2, 28, 12), utc(2028, 3, 1, 12))
    assert [(s.key, s.level, s.due) for s in slots] == [
        ("x@2028-02-29T01:00", "full", utc(2028, 2, 29, 1, 0)),
        ("x@2028-03-01T01:00", "incremental", utc(2028, 3, 1, 1, 0)),
    ]


# --- cron entries next to the calendar --------------------------------------------------


@pytest.mark.parametrize(
    ("day", "keys"),
    [
        (2, ["T00:15", "T12:00"]),  # Monday
        (6, ["T00:15", "T12:00"]),  # Friday
        (7, ["T00:15"]),  # Saturday
        (8, ["T00:15"]),  # Sunday
    ],
)
def test_orders_db_weekdays_have_two_slots(day: int, keys: list[str]) -> None:
    slots = slots_between(ORDERS, "UTC", utc(2026, 11, day), utc(2026, 11, day, 23, 59))
    assert [s.key for s in slots] == [f"orders-db@2026-11-{day:02d}{k}" for k in keys]
    assert [s.level for s in slots] == ["full", "incremental"][: len(keys)]
    assert [s.schedules for s in slots] == [("daily",), ("cron[0]",)][: len(keys)]


def test_orders_db_week_totals() -> None:
    slots = slots_between(ORDERS, "UTC", utc(2026, 11, 1, 23), utc(2026, 11, 8, 23))
    assert Counter(s.level for s in slots) == {"full": 7, "incremental": 5}


def test_cron_at_the_calendar_minute_merges_into_the_calendar_slot() -> None:
    p = policy(
        "c",
        ScheduleEntry("daily", "15 0 * * *", "incremental"),
        ScheduleEntry("cron[0]", "15 0 * * *", "full"),
        ScheduleEntry("cron[1]", "15 0 * * *", "differential"),
    )
    (slot,) = slots_between(p, "UTC", utc(2026, 11, 2), utc(2026, 11, 2, 23))
    assert slot.key == "c@2026-11-02T00:15"
    assert slot.level == "full"
    assert slot.schedules == ("daily", "cron[0]", "cron[1]")
    assert slot.reason == "cron[0] full (daily incremental, cron[1] differential merged)"


# --- next_slot -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "tz", "after", "key", "due"),
    [
        (WEB, "UTC", utc(2026, 10, 31, 2), "web-data@2026-11-01T01:30", utc(2026, 11, 1, 1, 30)),
        # Strictly after: a slot due exactly at `after` is not next.
        (WEB, "UTC", utc(2026, 11, 1, 1, 30), "web-data@2026-11-02T01:30", utc(2026, 11, 2, 1, 30)),
        (
            ORDERS,
            "UTC",
            utc(2026, 11, 6, 12),
            "orders-db@2026-11-07T00:15",
            utc(2026, 11, 7, 0, 15),
        ),
        (
            DAILY_0230,
            "Europe/Berlin",
            datetime(2026, 3, 29, tzinfo=BERLIN),
            "p@2026-03-29T02:30",
            utc(2026, 3, 29, 1, 0),
        ),
        (
            monthly_on(31),
            "UTC",
            utc(2028, 2, 1),
            "m@2028-02-29T03:00",
            utc(2028, 2, 29, 3),
        ),
        (
            policy("y", ScheduleEntry("cron[0]", "0 0 1 1 *", "full")),
            "UTC",
            utc(2026, 6, 1),
            "y@2027-01-01T00:00",
            utc(2027, 1, 1),
        ),
    ],
)
def test_next_slot(p: Policy, tz: str, after: datetime, key: str, due: datetime) -> None:
    slot = next_slot(p, tz, after)
    assert slot is not None
    assert (slot.key, slot.due) == (key, due)


@pytest.mark.parametrize(
    "p",
    [
        policy("never", ScheduleEntry("cron[0]", "0 0 30 2 *", "full")),
        policy("empty"),
    ],
)
def test_next_slot_none_when_nothing_is_due(p: Policy) -> None:
    assert next_slot(p, "UTC", utc(2026, 1, 1)) is None


# --- missed, on time, catch-up ----------------------------------------------------------


@pytest.mark.parametrize(
    ("late", "on_time"),
    [
        (timedelta(0), True),
        (timedelta(minutes=30), True),
        (timedelta(minutes=60), True),  # the grace is inclusive
        (timedelta(minutes=61), False),
        (timedelta(hours=5), False),
    ],
)
def test_missed_or_on_time_within_grace(late: timedelta, on_time: bool) -> None:
    due = utc(2026, 11, 9, 1, 30)
    missed, current = missed_slots(WEB, "UTC", utc(2026, 11, 8, 12), due + late, 60)
    keys = ["web-data@2026-11-09T01:30"]
    if on_time:
        assert current is not None and current.key == keys[0]
        assert missed == []
    else:
        assert current is None
        assert [s.key for s in missed] == keys


def test_older_on_time_slots_are_superseded_by_the_current_one() -> None:
    p = policy("q", ScheduleEntry("cron[0]", "*/15 * * * *", "incremental"))
    missed, current = missed_slots(p, "UTC", utc(2026, 11, 9, 10), utc(2026, 11, 9, 10, 50), 60)
    assert current is not None and current.key == "q@2026-11-09T10:45"
    assert [s.key for s in missed] == ["q@2026-11-09T10:15", "q@2026-11-09T10:30"]


def test_nothing_due_since_last_seen() -> None:
    assert missed_slots(WEB, "UTC", utc(2026, 11, 9, 2), utc(2026, 11, 9, 20), 60) == ([], None)


# Three days down: (last_seen, now, missed keys, level of the `once` run).
DOWNTIMES = [
    (
        utc(2026, 11, 6, 12),
        utc(2026, 11, 9, 12),
        ["web-data@2026-11-07T01:30", "web-data@2026-11-08T01:30", "web-data@2026-11-09T01:30"],
        "differential",
    ),
    (
        utc(2026, 10, 30, 12),
        utc(2026, 11, 2, 12),
        ["web-data@2026-10-31T01:30", "web-data@2026-11-01T01:30", "web-data@2026-11-02T01:30"],
        "full",
    ),
]


@pytest.mark.parametrize(("last_seen", "now", "keys", "level"), DOWNTIMES)
def test_catch_up_after_three_days_down(
    last_seen: datetime, now: datetime, keys: list[str], level: Level
) -> None:
    missed, current = missed_slots(WEB, "UTC", last_seen, now, 60)
    assert current is None
    assert [s.key for s in missed] == keys

    assert catch_up_plan("skip", missed) == []
    assert catch_up_plan("all", list(reversed(missed))) == missed

    (once,) = catch_up_plan("once", missed)
    assert once.key == keys[-1]  # the newest missed slot...
    assert once.due == missed[-1].due
    assert once.level == level  # ...at the highest level missed
    assert set(once.schedules) == {n for s in missed for n in s.schedules}
    assert once.reason == f"catch-up once: 3 missed slots merged into one {level} run"


@pytest.mark.parametrize("mode", ["once", "skip", "all"])
def test_catch_up_with_nothing_missed(mode: str) -> None:
    assert catch_up_plan(mode, []) == []


def test_catch_up_once_with_one_missed_slot_keeps_it() -> None:
    (slot,) = slots_between(WEB, "UTC", utc(2026, 11, 8), utc(2026, 11, 9))
    (once,) = catch_up_plan("once", [slot])
    assert (once.key, once.level, once.schedules) == (slot.key, slot.level, slot.schedules)
    assert (
        once.reason
        == "catch-up once: 1 missed slot (weekly differential (daily incremental merged))"
    )


# --- bad input -------------------------------------------------------------------------


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        slots_between(WEB, "UTC", datetime(2026, 11, 1), utc(2026, 11, 2))


def test_empty_or_reversed_window() -> None:
    assert slots_between(WEB, "UTC", utc(2026, 11, 2), utc(2026, 11, 1)) == []


def test_unknown_catch_up_mode() -> None:
    with pytest.raises(ValueError, match="catch_up"):
        catch_up_plan("sometimes", [])
