"""The calendar: which backup slots a policy has, and when each one falls due.

Pure functions: no I/O and no clock; the caller passes `now`. This is the only
module that imports croniter, and only inside functions, so the rest of the
product never depends on croniter's handling of time zones.

Decisions, and why:

- Slots are decided by LOCAL wall-clock date and time, not by instants. croniter
  is run on naive local datetimes to produce nominal wall-clock times, which are
  then localized here. On a spring-forward day a nominal time that does not exist
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
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from orchestrator.policies.model import LEVEL_RANK, Level, Policy, ScheduleEntry

__all__ = [
    "CALENDAR_ENTRIES",
    "Slot",
    "catch_up_plan",
    "missed_slots",
    "next_slot",
    "slots_between",
]

# Entries that share one slot per local date (design section 7).
CALENDAR_ENTRIES: frozenset[str] = frozenset({"daily", "weekly", "monthly"})
# How far next_slot looks ahead: a yearly cron still has a next slot.
NEXT_SLOT_HORIZON_DAYS = 400
CATCH_UP_MODES: tuple[str, ...] = ("once", "skip", "all")


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


@dataclass(frozen=True)
class _Hit:
    """One nominal firing of one entry, before merging."""

    index: int  # position of the entry in policy.schedules (orders names and ties)
    entry: ScheduleEntry
    nominal: datetime  # naive local wall-clock time
    due: datetime  # aware UTC instant


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")


def _localize(nominal: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant at which a nominal local time falls due.

    Ambiguous times (fall-back) take the first occurrence (fold=0). Nonexistent
    times (spring-forward gap) take the first instant that exists after them,
    i.e. the transition itself, found by bisection between the two readings.
    """
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


def is_valid_cron(expr: str) -> bool:
    """Whether croniter accepts the expression (it raises several foreign types on odd input)."""
    from croniter import croniter

    try:
        return bool(croniter.is_valid(expr))
    except Exception:
        return False


def _cron_times(expr: str, lo: datetime, hi: datetime) -> Iterator[datetime]:
    """Nominal naive times in [lo, hi) that the cron expression matches."""
    from croniter import CroniterBadDateError, croniter

    it = croniter(expr, lo - timedelta(minutes=1))
    while True:
        try:
            nxt: datetime = it.get_next(datetime)
        except CroniterBadDateError:  # e.g. "0 0 30 2 *": never matches
            return
        if nxt >= hi:
            return
        yield nxt


def _months(lo: date, hi: date) -> Iterator[tuple[int, int]]:
    year, month = lo.year, lo.month
    while (year, month) <= (hi.year, hi.month):
        yield year, month
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def _month_day_times(entry: ScheduleEntry, lo: datetime, hi: datetime) -> Iterator[datetime]:
    """Nominal times of a monthly entry whose day is clamped to the month's last day."""
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


def _entry_times(entry: ScheduleEntry, lo: datetime, hi: datetime) -> Iterator[datetime]:
    if entry.month_day is not None:
        return _month_day_times(entry, lo, hi)
    return _cron_times(entry.cron, lo, hi)


def _key(policy: str, nominal: datetime) -> str:
    return f"{policy}@{nominal.date().isoformat()}T{nominal:%H:%M}"


def _make_slot(
    policy: str, key_time: datetime, due: datetime, hits: list[_Hit], zone: ZoneInfo
) -> Slot:
    entries = {h.index: h.entry for h in hits}
    ordered = [entries[i] for i in sorted(entries)]
    top = max(LEVEL_RANK[e.level] for e in ordered)
    at = next(i for i, e in enumerate(ordered) if LEVEL_RANK[e.level] == top)
    winner, others = ordered[at], ordered[:at] + ordered[at + 1 :]
    reason = f"{winner.name} {winner.level}"
    if others:
        reason += f" ({', '.join(f'{e.name} {e.level}' for e in others)} merged)"
    return Slot(
        policy=policy,
        key=_key(policy, key_time),
        due=due.astimezone(zone),
        level=winner.level,
        schedules=tuple(e.name for e in ordered),
        reason=reason,
    )


def slots_between(policy: Policy, tz: str, start: datetime, end: datetime) -> list[Slot]:
    """All slots of the policy whose due time is in (start, end], sorted by due.

    Works on whole local days around the window (one spare day each side), since
    a calendar slot's due time depends on every entry that falls on its date.
    """
    _require_aware("start", start)
    _require_aware("end", end)
    if end <= start:
        return []
    zone = ZoneInfo(tz)
    lo = datetime.combine(start.astimezone(zone).date() - timedelta(days=1), time())
    hi = datetime.combine(end.astimezone(zone).date() + timedelta(days=2), time())

    by_date: dict[date, list[_Hit]] = {}
    by_minute: dict[datetime, list[_Hit]] = {}
    for index, entry in enumerate(policy.schedules):
        for nominal in _entry_times(entry, lo, hi):
            hit = _Hit(index, entry, nominal, _localize(nominal, zone))
            if entry.name in CALENDAR_ENTRIES:
                by_date.setdefault(nominal.date(), []).append(hit)
            else:
                by_minute.setdefault(nominal, []).append(hit)

    # Group by due instant: calendar groups first, so a cron slot due at the same
    # instant joins the calendar slot and keeps its key.
    groups: dict[datetime, tuple[datetime, list[_Hit]]] = {}
    for hits in by_date.values():
        first = min(hits, key=lambda h: (h.due, h.nominal))
        groups.setdefault(first.due, (first.nominal, []))[1].extend(hits)
    for nominal in sorted(by_minute):
        hits = by_minute[nominal]
        groups.setdefault(hits[0].due, (nominal, []))[1].extend(hits)

    start_utc, end_utc = start.astimezone(UTC), end.astimezone(UTC)
    slots = [
        (due, _make_slot(policy.name, key_time, due, hits, zone))
        for due, (key_time, hits) in groups.items()
        if start_utc < due <= end_utc
    ]
    # Sort on the UTC instant: aware datetimes sharing one tzinfo compare by wall
    # time, which is wrong across a fall-back.
    slots.sort(key=lambda pair: (pair[0], pair[1].key))
    return [slot for _, slot in slots]


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
