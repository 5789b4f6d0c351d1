"""Retry timing of the notification outbox: exponential, capped, deterministic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from orchestrator.notify.backoff import delay_seconds, gives_up, next_attempt

pytestmark = pytest.mark.unit

BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)

DELAYS = [
    # attempts, base, cap, seconds
    (0, 60, 21600, 0),
    (1, 60, 21600, 60),
    (2, 60, 21600, 120),
    (3, 60, 21600, 240),
    (8, 60, 21600, 7680),
    (9, 60, 21600, 15360),
    (10, 60, 21600, 21600),  # 30720 capped
    (11, 60, 21600, 21600),
    (10_000, 60, 21600, 21600),  # no overflow, no huge integers
    (1, 5, 30, 5),
    (3, 5, 30, 20),
    (4, 5, 30, 30),
    (1, 30, 30, 30),
]


@pytest.mark.parametrize(("attempts", "base", "cap", "seconds"), DELAYS)
def test_delay_doubles_up_to_the_cap(attempts: int, base: int, cap: int, seconds: int) -> None:
    assert delay_seconds(attempts, base, cap) == seconds
    assert next_attempt(attempts, T0, base, cap) == T0 + timedelta(seconds=seconds)


def test_a_wait_across_a_dst_change_is_elapsed_time_not_wall_clock() -> None:
    """Python adds a timedelta to a zoned time on the wall clock; a retry waits real time."""
    before = datetime(2026, 3, 29, 1, 30, tzinfo=BERLIN)  # CET; at 02:00 clocks jump to 03:00
    after = next_attempt(7, before)  # 64 minutes
    assert after.astimezone(BERLIN) == datetime(2026, 3, 29, 3, 34, tzinfo=BERLIN)  # CEST
    assert after.astimezone(UTC) - before.astimezone(UTC) == timedelta(minutes=64)
    assert after.utcoffset() == timedelta(0)  # returned in UTC
    fall = datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN)  # the first 02:30 (CEST)
    later = datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=BERLIN)  # an hour later (CET)
    assert gives_up(1, fall, later, max_age=timedelta(minutes=30))


@pytest.mark.parametrize("attempts", [1, 2, 5, 12, 40])
def test_keyed_jitter_is_stable_and_takes_off_at_most_a_tenth(attempts: int) -> None:
    plain = next_attempt(attempts, T0) - T0
    keyed = next_attempt(attempts, T0, key="outbox-17") - T0
    assert keyed == next_attempt(attempts, T0, key="outbox-17") - T0  # deterministic
    assert plain * 0.9 <= keyed <= plain


def test_keyed_jitter_spreads_notices_that_failed_together() -> None:
    times = {next_attempt(6, T0, key=f"outbox-{i}") for i in range(50)}
    assert len(times) > 40


GIVE_UP = [
    # attempts, age, max_age, max_attempts, gives up
    (0, timedelta(0), timedelta(hours=24), 25, False),
    (3, timedelta(hours=1), timedelta(hours=24), 25, False),
    (24, timedelta(hours=23, minutes=59), timedelta(hours=24), 25, False),
    (3, timedelta(hours=24), timedelta(hours=24), 25, True),  # old enough
    (25, timedelta(hours=1), timedelta(hours=24), 25, True),  # tried enough
    (2, timedelta(minutes=10), timedelta(minutes=5), 25, True),
]


@pytest.mark.parametrize(("attempts", "age", "max_age", "max_attempts", "expected"), GIVE_UP)
def test_gives_up_by_age_or_by_attempts(
    attempts: int, age: timedelta, max_age: timedelta, max_attempts: int, expected: bool
) -> None:
    assert gives_up(attempts, T0, T0 + age, max_age, max_attempts) is expected


def test_the_default_schedule_gives_up_after_about_a_day_of_tries() -> None:
    """With the defaults, a notice is tried about a dozen times over its day."""
    attempts, when = 1, T0  # the first try, at T0, failed
    while not gives_up(attempts, T0, when):
        when = next_attempt(attempts, when)
        attempts += 1
    assert 10 <= attempts <= 14, attempts


@pytest.mark.parametrize(
    "call",
    [
        lambda: next_attempt(1, datetime(2026, 1, 1)),
        lambda: gives_up(1, datetime(2026, 1, 1), T0),
        lambda: delay_seconds(-1),
        lambda: delay_seconds(1, 0, 10),
        lambda: delay_seconds(1, 60, 30),
    ],
)
def test_bad_input_is_a_value_error(call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        call()
