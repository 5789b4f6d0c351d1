"""The calendar: which backup slots a policy has, and when each one falls due.

Pure functions: no I/O and no clock; the caller passes `now`. This is the only
module that imports croniter, and only inside functions, so the rest of the
product never depends on croniter's handling of time zones.

Decisions, and why:

- Slots are decided by LOCAL wall-clock date and time, not by instants. Nominal
  wall-clock times come from plain date arithmetic on naive local dates (daily,
  weekly, monthly; free crons as sets of field values, croniter only for L, W and
  #: tests/unit/test_schedule_arithmetic.py holds them to croniter's answers), and
  are then localized here. On a spring-forward day a nominal time that does not exist
  (02:30 in Europe/Berlin on 2026-03-29) falls due at the first instant that
  exists after it (03:00 CEST); on a fall-back day a time that occurs twice falls
  due once, at its first occurrence. The product promises one run per local day
  for a daily entry, and croniter alone would give two on the fall-back day.
- A slot's key (`policy@YYYY-MM-DDTHH:MM`) uses the NOMINAL local date and time,
  so it is stable across DST and the same on every pass: it is what makes
  `run --due` idempotent.
- A monthly entry with `month_day` beyond a month's length (29, 30, 31) runs on
  the LAST day of the shorter months: day 31 runs on 30 April and on 28 February
  (29 in leap years), exactly once per month. Skipping those months (plain cron)
  would leave a monthly full out for a whole month, which no one expects.
- `daily`, `weekly` and `monthly` form the policy's calendar: at most one slot
  per local date among them. Entries falling on the same date merge into one slot
  at the highest level (full > differential > incremental), due at the earliest
  of their due times that day, so the RPO the daily promises is kept.
- Other entries (`cron[i]`) are slots of their own; slots that fall due at the
  same instant (same nominal minute, or two nominal times pushed onto one instant
  by a DST gap) merge into one at the highest level, so two runs never start for
  the same moment and keys never collide.
"""

from __future__ import annotations

import calendar
import threading
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from operator import itemgetter
from typing import Any
from zoneinfo import ZoneInfo

from orchestrator.policies.model import LEVEL_RANK, Level, Policy, ScheduleEntry

__all__ = [
    "CALENDAR_ENTRIES",
    "Slot",
    "SlotRow",
    "catch_up_plan",
    "missed_slots",
    "next_slot",
    "rows_to_slots",
    "slot_rows",
    "slots_between",
]

# Entries that share one slot per local date (design section 7).
CALENDAR_ENTRIES: frozenset[str] = frozenset({"daily", "weekly", "monthly"})
# How far next_slot looks ahead: a yearly cron still has a next slot.
NEXT_SLOT_HORIZON_DAYS = 400
CATCH_UP_MODES: tuple[str, ...] = ("once", "skip", "all")
# How far outside a window a cron entry's nominal times are read (DST gaps and
# repeated hours are at most 2 hours in tzdata since 1970, Lord Howe's 30 minutes).
CRON_MARGIN = timedelta(hours=3)


@dataclass(frozen=True)
class Slot:
    """One run the calendar asks for.

    `due` is aware, in the policy's zone. `key` names the nominal local date and
    time and is what the catalog records, so it never changes once issued.
    """

    policy: str
    key: str
    due: datetime
    level: Level
    schedules: tuple[str, ...]
    reason: str


# One nominal firing of one entry, before merging: (position of the entry in
# policy.schedules, which orders names and ties; naive local time; aware UTC due).
_Hit = tuple[int, datetime, datetime]


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")


@lru_cache(maxsize=65536)
def _day_offset(zone: ZoneInfo, day: date) -> timedelta | None:
    """The zone's UTC offset through the whole local day, or None near a change.

    Read at the midnights from the day before to the day after next, so a day next
    to a change (or holding one) takes the exact path in _localize; on every other
    day a nominal time exists exactly once and is the nominal time less the offset."""
    offsets = {
        datetime.combine(day + timedelta(days=k), time(), zone).utcoffset() for k in (-1, 0, 1, 2)
    }
    offset = offsets.pop()
    return offset if not offsets else None


def _localize(nominal: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant at which a nominal local time falls due.

    Ambiguous times (fall-back) take the first occurrence (fold=0). Nonexistent
    times (spring-forward gap) take the first instant that exists after them,
    i.e. the transition itself, found by bisection between the two readings.
    """
    offset = _day_offset(zone, nominal.date())
    if offset is not None:  # the common day: no change of offset near it
        return (nominal - offset).replace(tzinfo=UTC)
    first = nominal.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == nominal:
        return first
    # In a gap, fold=0 reads the old offset (an instant after the transition)
    # and fold=1 the new one (an instant before it).
    lo = int(nominal.replace(tzinfo=zone, fold=1).astimezone(UTC).timestamp())
    hi = int(first.timestamp())
    after = first.astimezone(zone).utcoffset()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zone).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


# Nominal time -> (UTC due, the due in the zone, the key's time text), per zone. A
# calendar of thousands of policies repeats a few thousand nominal minutes, so each is
# localized and formatted once; cleared when it grows past a bound (a long daemon).
_INSTANTS: dict[ZoneInfo, dict[datetime, tuple[datetime, datetime, str]]] = {}
_INSTANTS_MAX = 200_000


def _instants(zone: ZoneInfo) -> dict[datetime, tuple[datetime, datetime, str]]:
    cache = _INSTANTS.get(zone)
    if cache is None or len(cache) > _INSTANTS_MAX:
        cache = _INSTANTS[zone] = {}
    return cache


def _instant(nominal: datetime, zone: ZoneInfo) -> tuple[datetime, datetime, str]:
    """(UTC due, due in the zone, key time text) of a nominal local time, cached."""
    cache = _instants(zone)
    found = cache.get(nominal)
    if found is None:
        due = _localize(nominal, zone)
        found = cache[nominal] = (
            due,
            due.astimezone(zone),
            nominal.isoformat(timespec="minutes"),
        )
    return found


@lru_cache(maxsize=4096)
def is_valid_cron(expr: str) -> bool:
    """Whether croniter accepts the expression (it raises several foreign types on odd input).

    Cached: a config of thousands of policies repeats a few expressions."""
    from croniter import croniter

    try:
        return bool(croniter.is_valid(expr))
    except Exception:
        return False


@lru_cache(maxsize=4096)
def never_fires(expr: str) -> bool:
    """Whether a valid expression names no date at all ('0 0 30 2 *': February 30th), so a
    schedule of it would silently never run. croniter searches decades ahead and gives up;
    the start is fixed (not now): the answer depends on the expression alone, so it is
    cached like is_valid_cron."""
    from croniter import croniter

    try:
        croniter(expr, datetime(2001, 1, 1)).get_next(datetime)
    except Exception:  # CroniterBadDateError, and foreign types on odd input
        return True
    return False


@dataclass(frozen=True)
class _Fields:
    """A cron expression of plain values as sets (None: any), for date arithmetic."""

    clock: tuple[time, ...]  # every hour x minute, in order
    days: frozenset[int] | None  # days of the month
    months: frozenset[int] | None
    weekdays: frozenset[int] | None  # date.weekday(): Monday is 0

    def on(self, day: date) -> bool:
        """Whether the expression runs on this date (cron: day OR weekday when both are set)."""
        if self.months is not None and day.month not in self.months:
            return False
        if self.days is None:
            return self.weekdays is None or day.weekday() in self.weekdays
        if self.weekdays is None:
            return day.day in self.days
        return day.day in self.days or day.weekday() in self.weekdays


class _Cron:
    """One expression, parsed once: its fields as sets when they are plain values, and
    a croniter for the rest (L, W, #), rewound for each window.

    croniter runs on naive local times (see the module's decisions), so the zone
    plays no part and the expression alone is the cache key. A croniter is a cursor
    with state, so each use holds the lock: backups run in threads."""

    def __init__(self, expr: str) -> None:
        from croniter import croniter

        self.lock = threading.Lock()
        self.iter = croniter(expr, datetime(2000, 1, 1))
        self.fields = _fields(self.iter)

    def times(self, lo: datetime, hi: datetime) -> list[datetime]:
        """Nominal naive times in [lo, hi) that the expression matches."""
        if self.fields is None:
            return self._croniter_times(lo, hi)
        fields, day, last = self.fields, lo.date(), hi.date()
        found: list[datetime] = []
        while day <= last:
            if fields.on(day):
                found += [n for t in fields.clock if lo <= (n := datetime.combine(day, t)) < hi]
            day += timedelta(days=1)
        return found

    def _croniter_times(self, lo: datetime, hi: datetime) -> list[datetime]:
        from croniter import CroniterBadDateError

        found: list[datetime] = []
        with self.lock:
            self.iter.set_current(lo - timedelta(minutes=1), force=True)
            while True:
                try:
                    nxt: datetime = self.iter.get_next(datetime)
                except CroniterBadDateError:  # e.g. "0 0 30 2 *": never matches
                    return found
                if nxt >= hi:
                    return found
                found.append(nxt)


def _fields(it: Any) -> _Fields | None:
    """The croniter's expanded fields as sets, or None when it uses L, W, # or seconds."""
    expanded = it.expanded
    if len(expanded) != 5 or it.nth_weekday_of_month or getattr(it, "nearest_weekday", None):
        return None
    if any(not isinstance(v, int) for field in expanded for v in field if v != "*"):
        return None

    def values(field: list[Any], every: range) -> list[int]:
        return list(every) if "*" in field else sorted(field)

    def subset(field: list[Any]) -> frozenset[int] | None:
        return None if "*" in field else frozenset(field)

    minutes, hours, days, months, weekdays = expanded
    clock = tuple(time(h, m) for h in values(hours, range(24)) for m in values(minutes, range(60)))
    cron_weekdays = subset(weekdays)
    return _Fields(
        clock=clock,
        days=subset(days),
        months=subset(months),
        weekdays=None if cron_weekdays is None else frozenset((w - 1) % 7 for w in cron_weekdays),
    )


@lru_cache(maxsize=4096)
def _cron(expr: str) -> _Cron:
    return _Cron(expr)


def _cron_times(expr: str, lo: datetime, hi: datetime) -> list[datetime]:
    """Nominal naive times in [lo, hi) that the cron expression matches."""
    return _cron(expr).times(lo, hi)


@dataclass(frozen=True)
class _Rule:
    """A daily, weekly or monthly entry as date arithmetic: one time of day on some dates."""

    at: time
    weekday: int | None = None  # date.weekday(): Monday is 0
    day: int | None = None  # day of the month
    clamp: bool = False  # a day beyond the month's end runs on its last day


@lru_cache(maxsize=4096)
def _rule(cron: str, month_day: int | None) -> _Rule | None:
    """The rule of a calendar entry's cron ("M H * * *", "M H * * W", "M H D * *").

    None for any other shape (an entry built by hand), which _cron then answers."""
    return _plain_rule(cron, month_day) or _croniter_rule(cron, month_day)


def _croniter_rule(cron: str, month_day: int | None) -> _Rule | None:
    """_rule's answer from croniter's reading of the expression."""
    try:
        fields = _cron(cron).fields
    except Exception:
        return None
    if fields is None or fields.months is not None or len(fields.clock) != 1:
        return None
    at, days, weekdays = fields.clock[0], fields.days, fields.weekdays
    if month_day is not None:
        return _Rule(at, day=month_day, clamp=True) if weekdays is None else None
    if days is None and weekdays is None:
        return _Rule(at)
    if days is None and weekdays is not None and len(weekdays) == 1:
        return _Rule(at, weekday=next(iter(weekdays)))
    if weekdays is None and days is not None and len(days) == 1:
        return _Rule(at, day=next(iter(days)))
    return None


def _plain_rule(cron: str, month_day: int | None) -> _Rule | None:
    """_rule's answer for the shapes policies.toml makes ("M H * * *", "M H * * W",
    "M H D * *", plain numbers in range), read without croniter: 10,000 policies hold
    hundreds of distinct times. None for anything else (croniter decides)."""
    fields = cron.split()
    if len(fields) != 5 or fields[3] != "*":
        return None
    minute, hour, day, _, weekday = fields
    if not (minute.isdigit() and hour.isdigit() and minute.isascii() and hour.isascii()):
        return None
    if int(minute) > 59 or int(hour) > 23:
        return None
    at = time(int(hour), int(minute))
    if month_day is not None:  # the day field is month_day's, or its clamped value
        plain_day = day == "*" or (day.isascii() and day.isdigit() and 1 <= int(day) <= 31)
        return _Rule(at, day=month_day, clamp=True) if weekday == "*" and plain_day else None
    if day == "*" and weekday == "*":
        return _Rule(at)
    if day == "*" and weekday.isascii() and weekday.isdigit() and int(weekday) <= 7:
        return _Rule(at, weekday=(int(weekday) - 1) % 7)
    if weekday == "*" and day.isascii() and day.isdigit() and 1 <= int(day) <= 31:
        return _Rule(at, day=int(day))
    return None


def _months(lo: date, hi: date) -> Iterator[tuple[int, int]]:
    year, month = lo.year, lo.month
    while (year, month) <= (hi.year, hi.month):
        yield year, month
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def _rule_times(rule: _Rule, lo: datetime, hi: datetime) -> list[datetime]:
    """Nominal naive times in [lo, hi) of a calendar rule: plain date arithmetic, as cron
    on naive times would give, except that a clamped day runs on a short month's last day."""
    first, last = lo.date(), hi.date()
    if rule.day is not None:
        dates = []
        for year, month in _months(first, last):
            length = calendar.monthrange(year, month)[1]
            if rule.day <= length or rule.clamp:
                dates.append(date(year, month, min(rule.day, length)))
    else:
        step = 1
        if rule.weekday is not None:
            first += timedelta(days=(rule.weekday - first.weekday()) % 7)
            step = 7
        dates = [first + timedelta(days=i) for i in range(0, (last - first).days + 1, step)]
    at, combine = rule.at, datetime.combine
    return [n for d in dates if lo <= (n := combine(d, at)) < hi]


def _month_day_times(entry: ScheduleEntry, lo: datetime, hi: datetime) -> Iterator[datetime]:
    """Nominal times of a monthly entry whose day is clamped to the month's last day
    (croniter's answer, for an entry of a shape _rule does not know)."""
    assert entry.month_day is not None
    fields = entry.cron.split()
    minute, hour, month_field = fields[0], fields[1], fields[3]
    for year, month in _months(lo.date(), hi.date()):
        day = min(entry.month_day, calendar.monthrange(year, month)[1])
        start = max(lo, datetime(year, month, 1))
        expr = f"{minute} {hour} {day} {month_field} *"
        for nominal in _cron_times(expr, start, hi):
            if (nominal.year, nominal.month) != (year, month):
                break  # croniter ran on into a later month, where `day` may be wrong
            yield nominal


def _entry_times(entry: ScheduleEntry, lo: datetime, hi: datetime) -> Iterable[datetime]:
    if entry.name in CALENDAR_ENTRIES and (rule := _rule(entry.cron, entry.month_day)):
        return _rule_times(rule, lo, hi)
    if entry.month_day is not None:
        return _month_day_times(entry, lo, hi)
    return _cron_times(entry.cron, lo, hi)


def _key(policy: str, nominal: datetime) -> str:
    return f"{policy}@{nominal.isoformat(timespec='minutes')}"


@lru_cache(maxsize=65536)
def _merge(entries: tuple[tuple[str, Level], ...]) -> tuple[Level, tuple[str, ...], str]:
    """Level, schedule names and reason of a slot holding these entries (name, level) in
    policy order. Cached: every policy with the same entries shares one answer."""
    top = max(LEVEL_RANK[level] for _, level in entries)
    at = next(i for i, (_, level) in enumerate(entries) if LEVEL_RANK[level] == top)
    (name, level), others = entries[at], entries[:at] + entries[at + 1 :]
    reason = f"{name} {level}"
    if others:
        reason += f" ({', '.join(f'{n} {lv}' for n, lv in others)} merged)"
    return level, tuple(n for n, _ in entries), reason


# One slot before it becomes a Slot: (UTC due, nominal local time naming the key, merge,
# positions of its entries in policy.schedules, the due in the zone: Slot.due), merge
# being (level, schedule names, reason). `plan` handles hundreds of thousands of these.
_Merge = tuple[Level, tuple[str, ...], str]
SlotRow = tuple[datetime, datetime, _Merge, tuple[int, ...], datetime]

# An entry's nominal times in a window, with their UTC dues, shared by every policy that
# has the same entry (10,000 policies repeat a few hundred distinct rules): keyed by
# (calendar entry?, cron, month day, zone, lo, hi); cleared past a bound (a long daemon
# asks for a new window every pass).
_HITS: dict[tuple[Any, ...], list[tuple[datetime, datetime]]] = {}
_DATED: dict[tuple[Any, ...], dict[date, SlotRow]] = {}
_HITS_MAX = 8192


def _hits(
    entry: ScheduleEntry, zone: ZoneInfo, lo: datetime, hi: datetime
) -> list[tuple[datetime, datetime]]:
    """(nominal, UTC due) of the entry's times in [lo, hi), computed once per distinct entry."""
    key = (entry.name in CALENDAR_ENTRIES, entry.cron, entry.month_day, zone, lo, hi)
    found = _HITS.get(key)
    if found is None:
        if len(_HITS) > _HITS_MAX or len(_DATED) > _HITS_MAX:
            _HITS.clear()
            _DATED.clear()
        cache = _instants(zone)
        found = _HITS[key] = [
            (n, (cache.get(n) or _instant(n, zone))[0]) for n in _entry_times(entry, lo, hi)
        ]
    return found


def _dated(
    entry: ScheduleEntry, index: int, zone: ZoneInfo, lo: datetime, hi: datetime
) -> dict[date, SlotRow]:
    """A calendar entry's slots by local date, as if it were the policy's only calendar
    entry: {date: row} at the earliest (due, nominal) of the date, in date order; shared
    like _hits (a caller copies before changing it)."""
    # The entry's fields, not the entry: a frozen dataclass hashes in Python.
    key = (entry.name, entry.cron, entry.month_day, entry.level, index, zone, lo, hi)
    found = _DATED.get(key)
    if found is None:
        merge = _merge(((entry.name, entry.level),))
        cache = _instants(zone)
        found = {}
        for nominal, due in _hits(entry, zone, lo, hi):
            day = nominal.date()
            old = found.get(day)
            if old is None or (due, nominal) < (old[0], old[1]):
                local = (cache.get(nominal) or _instant(nominal, zone))[1]
                found[day] = (due, nominal, merge, (index,), local)
        _DATED[key] = found
    return found


def _merge_of(schedules: tuple[ScheduleEntry, ...], indexes: tuple[int, ...]) -> _Merge:
    return _merge(tuple((schedules[i].name, schedules[i].level) for i in sorted(set(indexes))))


_DUE = itemgetter(0)  # of a row


class _Merges(dict[tuple[int, ...], _Merge]):
    """The merge of entry positions of one policy, each made once (a policy repeats a
    handful of combinations)."""

    def __init__(self, schedules: tuple[ScheduleEntry, ...]) -> None:
        super().__init__()
        self.schedules = schedules

    def __missing__(self, indexes: tuple[int, ...]) -> _Merge:
        merge = self[indexes] = _merge_of(self.schedules, indexes)
        return merge


@lru_cache(maxsize=256)
def _window(
    tz: str, start: datetime, end: datetime
) -> tuple[ZoneInfo, datetime, datetime, datetime, datetime, datetime, datetime, bool]:
    """(zone, calendar lo, hi, cron lo, hi, UTC start, end, steady) of a window: see
    slots_between; steady when the zone's offset changes on none of its dates."""
    zone = ZoneInfo(tz)
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    # A nominal time falls due at an instant that reads at most a gap's length later,
    # or (a repeated hour) earlier; the margin covers both, and any change inside the
    # window. Calendar entries read the whole local dates this reaches, cron entries
    # (slots of their own) only the times.
    margin = CRON_MARGIN + abs(local_end.utcoffset() - local_start.utcoffset())  # type: ignore[operator]
    cron_lo = local_start.replace(tzinfo=None) - margin
    cron_hi = local_end.replace(tzinfo=None) + margin
    lo = datetime.combine(cron_lo.date(), time())
    hi = datetime.combine(cron_hi.date() + timedelta(days=1), time())
    steady = all(
        _day_offset(zone, lo.date() + timedelta(days=k)) is not None
        for k in range((hi - lo).days + 1)
    )
    return zone, lo, hi, cron_lo, cron_hi, start.astimezone(UTC), end.astimezone(UTC), steady


def slot_rows(policy: Policy, tz: str, start: datetime, end: datetime) -> list[SlotRow]:
    """slots_between's answer as rows (UTC due, key's nominal time, merge, entry
    positions), sorted by due.

    Works on whole local days around the window, since a calendar slot's due time
    depends on every entry that falls on its date. Each entry's dates come from _dated
    (once per distinct entry and window), so a policy costs a copy of its first calendar
    entry's dates and a step per date of its other entries."""
    _require_aware("start", start)
    _require_aware("end", end)
    if end <= start or not policy.schedules:
        return []
    zone, lo, hi, cron_lo, cron_hi, start_utc, end_utc, steady = _window(tz, start, end)
    schedules = policy.schedules
    combined: dict[date, SlotRow] | None = None
    merged = _Merges(schedules)
    crons: list[int] = []
    inserted = shared = False
    for index, entry in enumerate(schedules):
        if entry.name not in CALENDAR_ENTRIES:
            crons.append(index)
        elif combined is None:
            combined, shared = _dated(entry, index, zone, lo, hi), True
        else:
            if shared:
                combined, shared = dict(combined), False
            for day, row in _dated(entry, index, zone, lo, hi).items():
                old = combined.get(day)
                if old is None:
                    combined[day] = row
                    inserted = True
                    continue
                indexes = (*old[3], index)
                first = row if (row[0], row[1]) < (old[0], old[1]) else old
                combined[day] = (first[0], first[1], merged[indexes], indexes, first[4])
    # Calendar groups first, so a cron slot due at the same instant joins the calendar
    # slot and keeps its key.
    if combined is None:
        days: list[SlotRow] = []
    elif inserted:
        days = [combined[d] for d in sorted(combined)]
    else:
        days = list(combined.values())
    if not crons and steady:
        # Dates in order give dues in strictly increasing order (localizing is monotonic,
        # and two dates' times could meet only inside one gap, and the offset changes on
        # no date here): the window is a slice.
        return days[bisect_right(days, start_utc, key=_DUE) : bisect_right(days, end_utc, key=_DUE)]
    # Rows by due instant (unique, so sorting compares dues alone).
    groups: dict[datetime, SlotRow]
    if steady:
        groups = dict(zip(map(_DUE, days), days, strict=True))
    else:
        groups = {}
        for row in days:
            if (old := groups.get(row[0])) is not None:
                indexes = old[3] + row[3]
                row = (old[0], old[1], merged[indexes], indexes, old[4])
            groups[row[0]] = row
    by_minute: dict[datetime, list[tuple[int, datetime]]] = {}
    for index in crons:
        for nominal, due in _hits(schedules[index], zone, cron_lo, cron_hi):
            by_minute.setdefault(nominal, []).append((index, due))
    cache = _instants(zone)
    for nominal in sorted(by_minute):
        hits = by_minute[nominal]
        due = hits[0][1]
        extra = tuple(i for i, _ in hits)
        if (old := groups.get(due)) is None:
            local = (cache.get(nominal) or _instant(nominal, zone))[1]
            groups[due] = (due, nominal, merged[extra], extra, local)
        else:
            indexes = old[3] + extra
            groups[due] = (old[0], old[1], merged[indexes], indexes, old[4])
    rows = sorted(groups.values(), key=_DUE)
    return rows[bisect_right(rows, start_utc, key=_DUE) : bisect_right(rows, end_utc, key=_DUE)]


def slots_between(policy: Policy, tz: str, start: datetime, end: datetime) -> list[Slot]:
    """All slots of the policy whose due time is in (start, end], sorted by due.

    Works on whole local days around the window, since a calendar slot's due time
    depends on every entry that falls on its date (slot_rows)."""
    return rows_to_slots(policy.name, tz, slot_rows(policy, tz, start, end))


def rows_to_slots(name: str, tz: str, rows: list[SlotRow]) -> list[Slot]:
    """The Slots of a policy's slot_rows: the due in the zone, the key from the nominal."""
    if not rows:
        return []
    prefix = name + "@"
    zone = ZoneInfo(tz)
    cache = _instants(zone)
    slots = []
    for _due, nominal, (level, names, reason), _, local in rows:
        text = (cache.get(nominal) or _instant(nominal, zone))[2]
        slots.append(Slot(name, prefix + text, local, level, names, reason))
    return slots


def cron_fired(expr: str, tz: str, after: datetime, until: datetime) -> bool:
    """Whether the cron expression (local wall-clock time) falls due in (after, until].

    For checks scheduled by cron (`verify`/`drill` `every`); DST as for slots."""
    _require_aware("after", after)
    _require_aware("until", until)
    if until <= after:
        return False
    zone = ZoneInfo(tz)
    lo = after.astimezone(zone).replace(tzinfo=None) - timedelta(hours=2)
    hi = until.astimezone(zone).replace(tzinfo=None) + timedelta(hours=2)
    lo_utc, hi_utc = after.astimezone(UTC), until.astimezone(UTC)
    return any(lo_utc < _localize(n, zone) <= hi_utc for n in _cron_times(expr, lo, hi))


def next_slot(policy: Policy, tz: str, after: datetime) -> Slot | None:
    """The first slot due after `after`, looking up to NEXT_SLOT_HORIZON_DAYS ahead.

    Widens the window step by step so the common case (a daily) stays cheap.
    """
    for days in (2, 8, 35, NEXT_SLOT_HORIZON_DAYS):
        found = slots_between(policy, tz, after, after + timedelta(days=days))
        if found:
            return found[0]
    return None


def missed_slots(
    policy: Policy, tz: str, last_seen: datetime, now: datetime, grace_minutes: int
) -> tuple[list[Slot], Slot | None]:
    """Split the slots in (last_seen, now] into (missed, current).

    `current` is the newest slot still within `grace_minutes` of its due time (on
    time, run it now). Every other slot in the window is in `missed`: those past
    grace, and older on-time slots that `current` supersedes, so each slot is
    accounted for exactly once and catch-up `all` can still run them.
    """
    _require_aware("now", now)
    slots = slots_between(policy, tz, last_seen, now)
    grace = timedelta(minutes=grace_minutes)
    if slots and now.astimezone(UTC) - slots[-1].due.astimezone(UTC) <= grace:
        return slots[:-1], slots[-1]
    return slots, None


def catch_up_plan(mode: str, missed: list[Slot]) -> list[Slot]:
    """What to run for missed slots after downtime (design section 7).

    `skip` runs nothing and waits for the next slot; `all` runs each missed slot
    in order; `once` runs one slot under the newest missed key at the highest
    level missed, so a missed monthly full is not lost behind a later daily.
    """
    if mode not in CATCH_UP_MODES:
        raise ValueError(f"catch_up must be one of {', '.join(CATCH_UP_MODES)}, got {mode!r}")
    ordered = sorted(missed, key=lambda s: (s.due.astimezone(UTC), s.key))
    if mode == "skip" or not ordered:
        return []
    if mode == "all":
        return ordered
    newest = ordered[-1]
    top = max(LEVEL_RANK[s.level] for s in ordered)
    level = next(s.level for s in reversed(ordered) if LEVEL_RANK[s.level] == top)
    names = tuple(dict.fromkeys(name for s in ordered for name in s.schedules))
    if len(ordered) == 1:
        reason = f"catch-up once: 1 missed slot ({newest.reason})"
    else:
        reason = f"catch-up once: {len(ordered)} missed slots merged into one {level} run"
    return [
        Slot(
            policy=newest.policy,
            key=newest.key,
            due=newest.due,
            level=level,
            schedules=names,
            reason=reason,
        )
    ]
