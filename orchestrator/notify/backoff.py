"""When to try a failed notification again, and when to stop (pure).

Exponential with a cap, so a server that is down for an hour is asked a handful of
times, not hundreds. Jitter is optional and comes from a hash of a key (the outbox
row's id), never from a random source, so the same inputs always give the same time
and the tables in the tests stay stable; it spreads many notices that failed together.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

BASE_SECONDS = 60
CAP_SECONDS = 6 * 3600
MAX_AGE = timedelta(hours=24)  # a day-old notice is news nobody needs any more
MAX_ATTEMPTS = 25
JITTER = 0.1  # at most this share of the delay is taken off, never added


def delay_seconds(
    attempts: int, base_seconds: int = BASE_SECONDS, cap_seconds: int = CAP_SECONDS
) -> int:
    """The wait after `attempts` failed attempts: 0 before the first, then base, 2*base,
    4*base, ... up to the cap."""
    if attempts < 0:
        raise ValueError(f"attempts must not be negative, got {attempts}")
    if base_seconds <= 0 or cap_seconds < base_seconds:
        raise ValueError("base_seconds must be positive and at most cap_seconds")
    if attempts == 0:
        return 0
    # 2**n beyond the cap's bit length is past the cap anyway: no huge integers.
    exponent = min(attempts - 1, cap_seconds.bit_length())
    return min(cap_seconds, base_seconds * 2**exponent)


def next_attempt(
    attempts: int,
    last: datetime,
    base_seconds: int = BASE_SECONDS,
    cap_seconds: int = CAP_SECONDS,
    key: str = "",
) -> datetime:
    """When to try again after `attempts` failures, the last at `last` (aware).

    With a `key`, up to 10% of the delay is taken off, by a hash of key and attempt."""
    _aware(last, "last")
    delay = delay_seconds(attempts, base_seconds, cap_seconds)
    if key and delay:
        digest = hashlib.sha256(f"{key}\x00{attempts}".encode()).digest()
        share = int.from_bytes(digest[:8], "big") / 2**64  # in [0, 1)
        delay -= int(delay * JITTER * share)
    # In UTC: Python adds a timedelta to a zoned time on the wall clock, DST or not.
    return last.astimezone(UTC) + timedelta(seconds=delay)


def gives_up(
    attempts: int,
    first_try: datetime,
    now: datetime,
    max_age: timedelta = MAX_AGE,
    max_attempts: int = MAX_ATTEMPTS,
) -> bool:
    """True once the notice is older than `max_age` or has failed `max_attempts` times.

    A permanent error (a 4xx, refused credentials) gives up at once; that is the
    caller's decision from NotifyError.transient, not a matter of timing."""
    _aware(first_try, "first_try")
    _aware(now, "now")
    if attempts < 0:
        raise ValueError(f"attempts must not be negative, got {attempts}")
    # In UTC: two times of one zone subtract on the wall clock, ignoring a DST change.
    return attempts >= max_attempts or now.astimezone(UTC) - first_try.astimezone(UTC) >= max_age


def _aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, not naive")
