"""The calendar's date arithmetic against croniter, over whole years, in several zones.

slots_between answers daily, weekly and monthly entries by date arithmetic and free
crons by matching their fields as sets (croniter only for L, W, #). These tables
check that every answer is croniter's, except where the product deliberately
differs: on a day the zone changes its offset (one run per local day, a time in the
gap runs at the change, a repeated time runs once) and for a monthly day beyond a
short month's end (its last day). Pure: no I/O, no restic.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from orchestrator.policies.model import Policy, ScheduleEntry
from orchestrator.policies.schedule import _entry_times, _localize, slots_between

pytestmark = pytest.mark.unit

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]
YEARS = [2027, 2028]  # 2028 is a leap year

# (entry name, cron as the loader writes it, month_day)
CALENDAR_RULES = [
    ("daily", "30 2 * * *", None),
    ("daily", "0 0 * * *", None),
    ("daily", "59 23 * * *", None),
    ("daily", "15 1 * * *", None),
    ("weekly", "0 2 * * 0", None),  # Sunday, as the loader writes it
    ("weekly", "45 3 * * 1", None),
    ("weekly", "30 2 * * sat", None),
    ("weekly", "0 2 * * 7", None),  # cron's other Sunday
    ("monthly", "0 3 1 * *", None),
    ("monthly", "30 2 15 * *", None),
    ("monthly", "0 3 31 * *", None),  # plain cron: skips the shorter months
    ("monthly", "0 4 28 * *", 28),
    ("monthly", "0 3 29 * *", 29),
    ("monthly", "15 2 30 * *", 30),
    ("monthly", "0 3 31 * *", 31),
]

FREE_CRONS = [
    "*/15 * * * *",
    "0 * * * *",
    "0 12 * * 1-5",
    "15 3 * * 1-5",
    "30 3 1,15 * *",
    "0 0 1 1 *",
    "0 9 * jul wed",
    "0 0 13 * fri",  # day OR weekday, as cron has it
    "0 0 */10 * mon",
    "5 4 * * 7",
    "0 22 * 2 *",
    "0 0 29 2 *",
    "0 0 30 2 *",  # never
    "10,40 1-3 * * *",
    # Shapes that croniter itself answers (L, W, #):
    "0 3 L * *",
    "0 2 * * 1#2",
    "0 3 15W * *",
]


def croniter_naive(expr: str, lo: datetime, hi: datetime) -> list[datetime]:
    """croniter's own answer on naive times in [lo, hi)."""
    it = croniter(expr, lo - timedelta(minutes=1))
    found = []
    while (n := it.get_next(datetime)) < hi:
        found.append(n)
        if n.year > hi.year + 1:  # pragma: no cover - guard against a runaway
            break
    return found


def clamped_expected(cron: str, month_day: int, lo: datetime, hi: datetime) -> list[datetime]:
    """A clamped monthly by croniter: its day where the month has it, else `L`."""
    minute, hour = cron.split()[:2]
    day_field = croniter_naive(f"{minute} {hour} {month_day} * *", lo, hi)
    last_day = croniter_naive(f"{minute} {hour} L * *", lo, hi)
    short = {(n.year, n.month) for n in last_day if n.day < month_day}
    return sorted(day_field + [n for n in last_day if (n.year, n.month) in short])


@pytest.mark.parametrize("year", YEARS)
@pytest.mark.parametrize(("name", "cron", "month_day"), CALENDAR_RULES)
def test_calendar_rule_nominal_times_are_croniters(
    name: str, cron: str, month_day: int | None, year: int
) -> None:
    lo, hi = datetime(year, 1, 1), datetime(year + 1, 1, 1)
    got = list(_entry_times(ScheduleEntry(name, cron, "full", month_day=month_day), lo, hi))
    if month_day is None:
        assert got == croniter_naive(cron, lo, hi)
    else:
        assert got == clamped_expected(cron, month_day, lo, hi)
        assert len(got) == 12  # exactly once a month


@pytest.mark.parametrize(
    ("lo", "hi"),
    [
        (datetime(2027, 1, 1), datetime(2028, 1, 1)),
        (datetime(2028, 2, 27, 13, 7), datetime(2028, 3, 2, 0, 1)),  # odd edges, 29 Feb
        (datetime(2027, 12, 31, 23, 59), datetime(2028, 1, 1, 0, 1)),
    ],
)
@pytest.mark.parametrize("expr", FREE_CRONS)
def test_free_cron_nominal_times_are_croniters(expr: str, lo: datetime, hi: datetime) -> None:
    try:
        expected = croniter_naive(expr, lo, hi)
    except Exception:  # croniter cannot find any date ("0 0 30 2 *")
        expected = []
    assert list(_entry_times(ScheduleEntry("cron[0]", expr, "full"), lo, hi)) == expected


def change_days(zone: ZoneInfo, year: int) -> set[date]:
    """Local dates on which the zone's offset changes."""
    days = set()
    day = date(year, 1, 1)
    while day.year == year:
        here = datetime.combine(day, time(), zone).utcoffset()
        there = datetime.combine(day + timedelta(days=1), time(), zone).utcoffset()
        if here != there:
            days.add(day)
        day += timedelta(days=1)
    return days


def croniter_aware(expr: str, start: datetime, end: datetime) -> list[datetime]:
    """croniter's answer on aware times in (start, end], as UTC instants."""
    it = croniter(expr, start)
    found = []
    while (n := it.get_next(datetime)) <= end:
        found.append(n.astimezone(UTC))
    return found


DUE_RULES = [
    ("daily", "30 2 * * *", None),
    ("daily", "15 1 * * *", None),  # Lord Howe repeats 01:30-02:00 in April
    ("daily", "0 12 * * *", None),
    ("weekly", "0 2 * * 0", None),
    ("monthly", "0 3 1 * *", None),
    ("monthly", "30 2 31 * *", 31),
    ("cron[0]", "0 */6 * * *", None),
    ("cron[0]", "45 2 * * 1-5", None),
]


@pytest.mark.parametrize("tz", ZONES)
@pytest.mark.parametrize(("name", "cron", "month_day"), DUE_RULES)
def test_due_instants_are_croniters_away_from_dst_days(
    tz: str, name: str, cron: str, month_day: int | None
) -> None:
    zone = ZoneInfo(tz)
    start, end = datetime(2027, 1, 1, tzinfo=zone), datetime(2028, 1, 1, tzinfo=zone)
    p = Policy("p", "normal", ("local",), schedules=(ScheduleEntry(name, cron, "full", month_day),))
    slots = slots_between(p, tz, start, end)
    skip = change_days(zone, 2027)
    ours = [s.due.astimezone(UTC) for s in slots if s.due.date() not in skip]
    if month_day is None:
        theirs = croniter_aware(cron, start, end)
    else:  # day 31: croniter's `L`, the last day of every month
        theirs = croniter_aware("30 2 L * *", start, end)
    theirs = [u for u in theirs if u.astimezone(zone).date() not in skip]
    assert ours == theirs
    assert ours, "every rule has slots in a year"
    # On the change days themselves: a calendar entry still runs once per local date.
    if name == "daily":
        on_change = [s for s in slots if s.key[2:12] in {d.isoformat() for d in skip}]
        assert len(on_change) == len(skip)


@pytest.mark.parametrize(
    ("tz", "nominal", "due_utc"),
    [
        # Lord Howe: +10:30, +11:00 from 02:00 on 2027-10-03 (02:00-02:29 do not exist),
        # back to +10:30 at 02:00 on 2027-04-04 (01:30-01:59 happen twice).
        ("Australia/Lord_Howe", datetime(2027, 10, 3, 2, 15), datetime(2027, 10, 2, 15, 30)),
        ("Australia/Lord_Howe", datetime(2027, 10, 3, 2, 30), datetime(2027, 10, 2, 15, 30)),
        ("Australia/Lord_Howe", datetime(2027, 4, 4, 1, 45), datetime(2027, 4, 3, 14, 45)),
        ("Australia/Lord_Howe", datetime(2027, 4, 5, 1, 45), datetime(2027, 4, 4, 15, 15)),
        ("Europe/Berlin", datetime(2027, 3, 28, 2, 30), datetime(2027, 3, 28, 1, 0)),
        ("Europe/Berlin", datetime(2027, 10, 31, 2, 30), datetime(2027, 10, 31, 0, 30)),
        ("America/New_York", datetime(2027, 3, 14, 2, 30), datetime(2027, 3, 14, 7, 0)),
        ("America/New_York", datetime(2027, 11, 7, 1, 30), datetime(2027, 11, 7, 5, 30)),
        ("UTC", datetime(2027, 3, 28, 2, 30), datetime(2027, 3, 28, 2, 30)),
    ],
)
def test_localize_on_and_around_change_days(tz: str, nominal: datetime, due_utc: datetime) -> None:
    assert _localize(nominal, ZoneInfo(tz)) == due_utc.replace(tzinfo=UTC)


def reference_localize(nominal: datetime, zone: ZoneInfo) -> datetime:
    """The product's rule, slowly: the first occurrence, or the first instant after a gap."""
    first = nominal.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == nominal:
        return first
    probe = nominal.replace(tzinfo=zone, fold=1).astimezone(UTC)
    while probe.astimezone(zone).replace(tzinfo=None) < nominal:
        probe += timedelta(minutes=1)
    return probe


@pytest.mark.parametrize("tz", ZONES)
def test_localize_every_quarter_hour_of_a_year(tz: str) -> None:
    zone = ZoneInfo(tz)
    nominal, end = datetime(2027, 1, 1), datetime(2028, 1, 1)
    wrong = []
    while nominal < end:
        if _localize(nominal, zone) != reference_localize(nominal, zone):
            wrong.append(nominal)
        nominal += timedelta(minutes=15)
    assert wrong == []


WINDOW_POLICY = Policy(
    "w",
    "normal",
    ("local",),
    schedules=(
        ScheduleEntry("daily", "30 2 * * *", "incremental"),
        ScheduleEntry("weekly", "15 1 * * 0", "differential"),
        ScheduleEntry("cron[0]", "0,30 * * * *", "incremental"),
        ScheduleEntry("cron[1]", "45 1 * * *", "full"),
    ),
)


@pytest.mark.parametrize("tz", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"])
@pytest.mark.parametrize("width", [timedelta(minutes=1), timedelta(hours=1)])
def test_small_windows_see_what_the_whole_year_sees(tz: str, width: timedelta) -> None:
    """Only the dates and times near a window are read: sliding windows over the change
    days give exactly the slots of one whole-year answer, each once."""
    zone = ZoneInfo(tz)
    year = slots_between(
        WINDOW_POLICY, tz, datetime(2027, 1, 1, tzinfo=zone), datetime(2028, 1, 1, tzinfo=zone)
    )
    for day in sorted(change_days(zone, 2027)):
        t = datetime.combine(day - timedelta(days=1), time(), zone).astimezone(UTC)
        stop = t + timedelta(days=3)
        near = [s for s in year if t < s.due <= stop + width]
        while t < stop:
            expected = [s for s in near if t < s.due <= t + width]
            assert slots_between(WINDOW_POLICY, tz, t, t + width) == expected, t
            t += timedelta(minutes=10)
