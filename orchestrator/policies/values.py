"""Converters for policies.toml values: each takes the raw TOML value and returns it
checked and typed, or raises `Invalid` with one sentence (never repeating a value that
may be a secret). Generic (strings, numbers, durations, sizes, names); what a key means
is decided in the loader."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TypeVar, cast
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from orchestrator.policies.model import LEVELS
from orchestrator.security.secrets import AUDIT_KEY_NAME, NAME_RULE, valid_name

T = TypeVar("T")
Conv = Callable[[object], T]

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_CLOCK = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGTP]i?B?|B)?", re.IGNORECASE)
_FRACTION = re.compile(r"(\d+)/(\d+)")
PERCENT = re.compile(r"(\d+(?:\.\d+)?)%")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]*[a-z0-9]")
# Upper bounds: a number beyond them is a typo, and would overflow restic or a timedelta later.
MAX_INT = 1_000_000_000
MAX_COUNT = 1_000_000  # retention counts
MAX_SECONDS = 366 * 86400  # every duration
MAX_HOURS = 87_600  # rpo_hours, response hours: ten years
PERIODS = ("daily", "weekly", "monthly")


class Invalid(Exception):
    """A value is wrong: `issues` are (suffix added to the place, message) pairs."""

    def __init__(self, message: str = "", issues: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.issues = issues if issues is not None else [("", message)]


def kind_of(value: object) -> str:
    """The TOML name of a value's type; never the value itself (it may be a secret)."""
    names = [
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a float"),
        (str, "a string"),
        (list, "an array"),
        (dict, "a table"),
        (dt.datetime, "a date-time"),
        (dt.date, "a date"),
        (dt.time, "a time"),
    ]
    return next((name for typ, name in names if isinstance(value, typ)), type(value).__name__)


def string(value: object) -> str:
    if not isinstance(value, str):
        raise Invalid(f"expected a string, got {kind_of(value)}")
    return value


def nonempty_string(value: object) -> str:
    if not string(value).strip():
        raise Invalid("must not be empty")
    return cast(str, value)


def boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"expected true or false, got {kind_of(value)}")
    return value


def integer(value: object) -> int:
    # bool is a subclass of int in Python, but `max_parallel = true` is a mistake.
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"expected an integer, got {kind_of(value)}")
    return value


def int_in(low: int, high: int = MAX_INT) -> Conv[int]:
    def conv(value: object) -> int:
        number = integer(value)
        if not low <= number <= high:
            raise Invalid(f"{number} is out of range: must be between {low} and {high}")
        return number

    return conv


def positive_number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(f"expected a number, got {kind_of(value)}")
    if not (value > 0 and math.isfinite(value)) or value > MAX_HOURS:
        raise Invalid(f"{value} must be a positive number of hours up to {MAX_HOURS}")
    return float(value)


def ratio(value: object) -> float:
    """min_files_ratio: a number from 0 (guard off) to 1."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(f"expected a number from 0 to 1, got {kind_of(value)}")
    if not 0 <= value <= 1:
        raise Invalid(f"{value} must be from 0 (guard off) to 1")
    return float(value)


def one_of(choices: tuple[str, ...], shown: str | None = None) -> Conv[str]:
    def conv(value: object) -> str:
        if string(value) not in choices:
            raise Invalid(f"'{value}' is not one of {shown or ', '.join(choices)}")
        return cast(str, value)

    return conv


def list_of(item: Conv[T], *, nonempty: bool = False) -> Conv[tuple[T, ...]]:
    """A converter for an array whose items all pass `item`; reports each bad item by index."""

    def conv(value: object) -> tuple[T, ...]:
        if not isinstance(value, list):
            raise Invalid(f"expected an array, got {kind_of(value)}")
        if nonempty and not value:
            raise Invalid("must not be empty")
        result: list[T] = []
        issues: list[tuple[str, str]] = []
        for i, raw in enumerate(value):
            try:
                result.append(item(raw))
            except Invalid as exc:
                issues.extend((f"[{i}]{suffix}", message) for suffix, message in exc.issues)
        if issues:
            raise Invalid(issues=issues)
        return tuple(result)

    return conv


def secret_ref(value: object) -> str:
    """A `secret:NAME` reference; the offending value is never repeated back."""
    text = string(value)
    if not text.startswith("secret:"):
        raise Invalid("must be a reference like 'secret:NAME', not a value")
    if not valid_name(text.removeprefix("secret:")):
        raise Invalid(f"the NAME of a 'secret:NAME' reference {NAME_RULE}")
    if text.removeprefix("secret:") == AUDIT_KEY_NAME:
        raise Invalid(f"'{text}' is the audit log's signing key, never a password")
    return text


def path_text(value: object) -> str:
    """A non-empty path string: the system cannot name a file with a NUL byte in it."""
    text = nonempty_string(value)
    if "\x00" in text:
        raise Invalid(f"contains a NUL byte (at character {text.index(chr(0)) + 1}): not a path")
    return text


@lru_cache(maxsize=65536)
def _joined(base: Path, text: str) -> Path:
    """base / text, parsed once: 10,000 policies name the same few source folders."""
    return base / text


def path_under(base: Path) -> Conv[Path]:
    """A path with ~ expanded; a relative one is taken relative to the config file's folder."""

    def conv(value: object) -> Path:
        text = path_text(value)
        if not text.startswith("~"):  # ~ depends on $HOME: not cached
            return _joined(base, text)
        try:
            return base / Path(text).expanduser()
        except RuntimeError:  # '~user' with no such user, or no home directory at all
            raise Invalid(f"'{text}': cannot expand '~' (unknown user or no home)") from None

    return conv


def duration_seconds(value: object) -> int:
    """'1h', '30m', '90s', '1d', '1h30m' -> seconds."""
    text = string(value).strip()
    match = _DURATION.fullmatch(text)
    if not text or not match:
        raise Invalid(f"'{text}' is not a duration like '1h', '30m' or '90s'")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return bounded_seconds(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def bounded_seconds(seconds: int) -> int:
    if seconds > MAX_SECONDS:
        raise Invalid(f"{seconds} seconds is too long: at most 366 days")
    return seconds


def grace_minutes(value: object) -> int:
    """misfire_grace: a duration string or an integer number of minutes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return int_in(0, MAX_SECONDS // 60)(value)
    seconds = duration_seconds(value)
    if seconds % 60:
        raise Invalid(f"'{value}' is not a whole number of minutes")
    return seconds // 60


def timeout_seconds(value: object) -> int:
    """timeout: a duration string or an integer number of seconds, above zero."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    seconds = bounded_seconds(cast(int, value)) if is_int else duration_seconds(value)
    if seconds <= 0:
        raise Invalid("must be longer than zero")
    return seconds


def timezone(value: object) -> str:
    name = nonempty_string(value)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise Invalid(f"'{name}' is not a known time zone (e.g. 'UTC', 'Europe/Berlin')") from None
    return name


def clock(value: object) -> tuple[int, int]:
    """'HH:MM' (24-hour, two digits each) -> (hour, minute)."""
    text = string(value)
    match = _CLOCK.fullmatch(text)
    if not match:
        raise Invalid(f"'{text}' is not a time of day HH:MM (00:00 to 23:59)")
    return int(match[1]), int(match[2])


def cron(value: object) -> str:
    """A five-field cron expression that croniter accepts."""
    text = " ".join(string(value).split())
    if len(text.split()) != 5:
        raise Invalid(f"'{text}' is not a cron expression of exactly 5 fields")
    from orchestrator.policies.schedule import is_valid_cron, never_fires

    if not is_valid_cron(text):
        raise Invalid(f"'{text}' is not a valid cron expression")
    if never_fires(text):
        raise Invalid(f"'{text}' never fires: no date matches its day and month fields")
    return text


def every(value: object) -> str:
    """How often a check runs: daily, weekly, monthly or a cron expression."""
    text = string(value)
    if text in PERIODS:
        return text
    try:
        return cron(text)
    except Invalid:
        raise Invalid(f"'{text}' is not daily, weekly, monthly or a 5-field cron") from None


def fraction(value: object) -> str:
    """restic's --read-data-subset: 'i/N' (1 <= i <= N) or a percentage like '10%'."""
    text = string(value).strip()
    frac, percent = _FRACTION.fullmatch(text), PERCENT.fullmatch(text)
    if frac and 1 <= int(frac[1]) <= int(frac[2]):
        return text
    if percent and 0 < float(percent[1]) <= 100:
        return text
    raise Invalid(f"'{text}' is not a fraction like '1/8' or a percentage like '10%'")


def size(value: object) -> str:
    text = string(value).strip()
    match = _SIZE.fullmatch(text)
    if not match or float(match[1]) <= 0:
        raise Invalid(f"'{text}' is not a positive size like '20GiB' or '500MB'")
    return text


def url(value: object) -> str:
    text = string(value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Invalid(f"'{text}' is not an http:// or https:// URL")
    return text


def bucket(value: object) -> str:
    text = string(value)
    if not 3 <= len(text) <= 63:
        raise Invalid(f"'{text}' must be 3 to 63 characters long")
    if not _BUCKET.fullmatch(text):
        raise Invalid(f"'{text}' may hold only a-z 0-9 . - and must start and end with a-z 0-9")
    return text


port = int_in(1, 65535)
level = one_of(LEVELS)
strings = list_of(string)
