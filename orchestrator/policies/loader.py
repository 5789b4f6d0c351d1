"""policies.toml -> Config: read once, validate everything, report every problem at once.

Validation never stops at the first problem: each table is read through a `_Table`
that records problems (prefixed with their dotted place) and hands back a default,
so one run lists all of them. Field checks are small converters that either return
the typed value or raise `_Invalid`; they never echo a secret.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import fnmatch
import hashlib
import math
import re
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal, TypeVar, cast
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from orchestrator.errors import ConfigError
from orchestrator.policies.model import (
    CATCH_UPS,
    IMPORTANCES,
    LEVELS,
    WEEKDAYS,
    AccessSettings,
    CatchUp,
    Config,
    DatabaseSpec,
    DrillSpec,
    Importance,
    Level,
    LocalTargetSpec,
    Policy,
    Retention,
    S3TargetSpec,
    ScheduleEntry,
    ServiceSettings,
    Settings,
    SftpTargetSpec,
    TargetSpec,
    VerifySpec,
)
from orchestrator.security.secrets import NAME_RULE, valid_name

__all__ = ["load_config", "parse_config"]

T = TypeVar("T")
Conv = Callable[[object], T]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_CLOCK = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGTP]i?B?|B)?", re.IGNORECASE)
_FRACTION = re.compile(r"(\d+)/(\d+)")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)%")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]*[a-z0-9]")
# Upper bounds: a number beyond them is a typo, and would overflow restic or a timedelta later.
_MAX_INT = 1_000_000_000
_MAX_COUNT = 1_000_000  # retention counts
_MAX_SECONDS = 366 * 86400  # every duration
_MAX_HOURS = 87_600  # rpo_hours, response hours: ten years
_TOML_WHERE = re.compile(
    r"(?P<msg>.*) \(at (?:line (?P<line>\d+), column (?P<col>\d+)|end of document)\)"
)

_TOP_KEYS = ("orchestrator", "targets", "policies", "service", "access")
_SETTINGS_KEYS = (
    "state_dir",
    "timezone",
    "max_parallel",
    "misfire_grace",
    "max_full_interval_days",
    "restic_binary",
    "timeout",
    "retries",
    "retry_backoff",
    "forget_max_share",
)
_TARGET_KEYS: dict[str, tuple[str, ...]] = {
    "local": ("path",),
    "sftp": ("host", "port", "user", "path", "identity_file", "known_hosts", "connect_timeout"),
    "s3": ("bucket", "prefix", "endpoint", "region", "credentials", "connect_timeout"),
}
_CALENDARS: dict[str, tuple[str, ...]] = {
    "daily": ("at", "level"),
    "weekly": ("on", "at", "level"),
    "monthly": ("day", "at", "level"),
}
_POLICY_KEYS = (
    "description",
    "importance",
    "sources",
    "exclude",
    "database",
    "targets",
    "copy_to",
    *_CALENDARS,
    "schedules",
    "catch_up",
    "retention",
    "verify",
    "drill",
    "rpo_hours",
    "allow_empty",
    "min_files_ratio",
)
_DATABASE_KEYS = ("kind", "name", "host", "port", "user", "password")
_RETENTION_KEYS = tuple(f.name for f in dataclasses.fields(Retention))
_VERIFY_KEYS = tuple(f.name for f in dataclasses.fields(VerifySpec))
_DRILL_KEYS = tuple(f.name for f in dataclasses.fields(DrillSpec))
_RESPONSE_KEYS = ("urgent", "important", "general")
_ACCESS_KEYS = tuple(f.name for f in dataclasses.fields(AccessSettings))
_PERIODS = ("daily", "weekly", "monthly")
_DbKind = Literal["postgres", "mysql", "sqlite"]
_DB_KINDS: tuple[_DbKind, ...] = ("postgres", "mysql", "sqlite")


# --------------------------------------------------------------------------- public API


def load_config(path: Path) -> Config:
    """Read, parse and validate policies.toml; every failure is a ConfigError, never a traceback."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"], str(path)) from None
    try:
        raw = tomllib.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text (byte {exc.start})"], str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([_toml_problem(path, exc)], str(path)) from None
    except RecursionError:
        raise ConfigError(
            [f"{path}: arrays or tables nested too deeply to read (hundreds of levels)"], str(path)
        ) from None
    config = parse_config(raw, path)
    return dataclasses.replace(config, sha256=hashlib.sha256(data).hexdigest())


def parse_config(raw: dict[str, Any], path: Path) -> Config:
    """Validate the whole parsed document; raise one ConfigError listing every problem."""
    path = Path(path).expanduser().resolve()
    base = path.parent
    problems: list[str] = []
    top = _Table(raw, "", problems, _TOP_KEYS)
    settings = _settings(top.table("orchestrator", _SETTINGS_KEYS), base)
    targets = _named_tables(top, "targets", lambda t, n: _target(t, n, base))
    declared = top.data.get("targets")
    # A target with its own problems still counts as declared: no second "unknown target".
    names = tuple(declared) if isinstance(declared, dict) else ()
    policies = _named_tables(top, "policies", lambda t, n: _policy(t, n, base, names))
    service = _service(top.table("service", ("assign", "response_hours", "notify")))
    access = _access(top.table("access", _ACCESS_KEYS))
    problems += _state_dir_problems(settings.state_dir)
    problems += _self_backup_problems(policies, targets)
    if problems:
        raise ConfigError(problems, str(path))
    return Config(
        path=path,
        settings=settings,
        targets=targets,
        policies=policies,
        service=service,
        access=access,
    )


def _toml_problem(path: Path, exc: tomllib.TOMLDecodeError) -> str:
    """Turn tomllib's message into 'file: line L, column C: what', naming duplicates plainly."""
    text = str(exc)
    match = _TOML_WHERE.fullmatch(text)
    msg = match["msg"] if match else text
    where = (
        f"line {match['line']}, column {match['col']}" if match and match["line"] else "end of file"
    )
    declared = re.fullmatch(r"Cannot declare \((.*)\) twice", msg)
    if declared:
        dotted = ".".join(re.findall(r"'([^']*)'", declared[1]))
        msg = f"[{dotted}] is defined twice (duplicate table or key)"
    elif msg == "Cannot overwrite a value":
        msg = "duplicate key: a value is set twice"
    return f"{path}: {where}: invalid TOML: {msg}"


# --------------------------------------------------------------------------- table reader


class _Invalid(Exception):
    """A value is wrong: `issues` are (suffix added to the place, message) pairs."""

    def __init__(self, message: str = "", issues: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.issues = issues if issues is not None else [("", message)]


class _Table:
    """Typed, problem-recording access to one TOML table.

    A value of the wrong shape becomes a problem and the caller gets None (or its
    default) so validation can go on and report everything in one pass.
    """

    def __init__(
        self,
        raw: object,
        place: str,
        problems: list[str],
        known: Iterable[str] | None = None,
    ) -> None:
        self.place = place
        self.problems = problems
        self.ok = isinstance(raw, dict)
        self.data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if not self.ok:
            self.report("", f"expected a table, got {_kind(raw)}")
        elif known is not None:
            self.check_keys(known)

    def at(self, key: str) -> str:
        return f"{self.place}.{key}" if self.place else key

    def report(self, key: str, message: str) -> None:
        place = self.at(key) if key else self.place
        self.problems.append(f"{place or 'top level'}: {message}")

    def check_keys(self, known: Iterable[str]) -> None:
        """Unknown keys are errors (a typo must not silently disable a setting)."""
        choices = list(known)
        for key in self.data:
            if key not in choices:
                close = difflib.get_close_matches(key, choices, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                self.report("", f"unknown key '{key}'{hint}")

    def get(self, key: str, conv: Conv[T]) -> T | None:
        """The converted value, or None when absent or invalid (then a problem is recorded)."""
        if key not in self.data:
            return None
        try:
            return conv(self.data[key])
        except _Invalid as exc:
            for suffix, message in exc.issues:
                self.problems.append(f"{self.at(key)}{suffix}: {message}")
            return None

    def get_or(self, key: str, conv: Conv[T], default: T) -> T:
        value = self.get(key, conv)
        return default if value is None else value

    def need(self, key: str, conv: Conv[T]) -> T | None:
        if key not in self.data:
            self.report("", f"missing required key '{key}'")
        return self.get(key, conv)

    def table(self, key: str, known: Iterable[str] | None = None) -> _Table | None:
        """The sub-table at `key`; None when absent or not a table (the latter is reported)."""
        if key not in self.data:
            return None
        table = _Table(self.data[key], self.at(key), self.problems, known)
        return table if table.ok else None


def _named_tables(top: _Table, key: str, build: Callable[[_Table, str], T | None]) -> dict[str, T]:
    """Read a table of named tables ([targets.x], [policies.y]), checking each name."""
    group = top.table(key)
    if group is None:
        return {}
    result: dict[str, T] = {}
    for name, raw in group.data.items():
        entry = _Table(raw, group.at(name), group.problems)
        if not _NAME.fullmatch(name):
            entry.report("", "name must start with a letter or digit and hold only A-Z a-z 0-9 _ -")
        if entry.ok and (built := build(entry, name)) is not None:
            result[name] = built
    return result


# --------------------------------------------------------------------------- converters


def _kind(value: object) -> str:
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


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"expected a string, got {_kind(value)}")
    return value


def _nonempty_str(value: object) -> str:
    if not _str(value).strip():
        raise _Invalid("must not be empty")
    return cast(str, value)


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"expected true or false, got {_kind(value)}")
    return value


def _int(value: object) -> int:
    # bool is a subclass of int in Python, but `max_parallel = true` is a mistake.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"expected an integer, got {_kind(value)}")
    return value


def _int_in(low: int, high: int = _MAX_INT) -> Conv[int]:
    def conv(value: object) -> int:
        number = _int(value)
        if not low <= number <= high:
            raise _Invalid(f"{number} is out of range: must be between {low} and {high}")
        return number

    return conv


def _positive_number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(f"expected a number, got {_kind(value)}")
    if not (value > 0 and math.isfinite(value)) or value > _MAX_HOURS:
        raise _Invalid(f"{value} must be a positive number of hours up to {_MAX_HOURS}")
    return float(value)


def _ratio(value: object) -> float:
    """min_files_ratio: a number from 0 (guard off) to 1."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(f"expected a number from 0 to 1, got {_kind(value)}")
    if not 0 <= value <= 1:
        raise _Invalid(f"{value} must be from 0 (guard off) to 1")
    return float(value)


def _one_of(choices: tuple[str, ...], shown: str | None = None) -> Conv[str]:
    def conv(value: object) -> str:
        if _str(value) not in choices:
            raise _Invalid(f"'{value}' is not one of {shown or ', '.join(choices)}")
        return cast(str, value)

    return conv


def _list_of(item: Conv[T], *, nonempty: bool = False) -> Conv[tuple[T, ...]]:
    """A converter for an array whose items all pass `item`; reports each bad item by index."""

    def conv(value: object) -> tuple[T, ...]:
        if not isinstance(value, list):
            raise _Invalid(f"expected an array, got {_kind(value)}")
        if nonempty and not value:
            raise _Invalid("must not be empty")
        result: list[T] = []
        issues: list[tuple[str, str]] = []
        for i, raw in enumerate(value):
            try:
                result.append(item(raw))
            except _Invalid as exc:
                issues.extend((f"[{i}]{suffix}", message) for suffix, message in exc.issues)
        if issues:
            raise _Invalid(issues=issues)
        return tuple(result)

    return conv


def _secret_ref(value: object) -> str:
    """A `secret:NAME` reference; the offending value is never repeated back."""
    text = _str(value)
    if not text.startswith("secret:"):
        raise _Invalid("must be a reference like 'secret:NAME', not a value")
    if not valid_name(text.removeprefix("secret:")):
        raise _Invalid(f"the NAME of a 'secret:NAME' reference {NAME_RULE}")
    return text


def _path_under(base: Path) -> Conv[Path]:
    """A path with ~ expanded; a relative one is taken relative to the config file's folder."""

    def conv(value: object) -> Path:
        text = _nonempty_str(value)
        try:
            return base / Path(text).expanduser()
        except RuntimeError:  # '~user' with no such user, or no home directory at all
            raise _Invalid(f"'{text}': cannot expand '~' (unknown user or no home)") from None

    return conv


def _duration_seconds(value: object) -> int:
    """'1h', '30m', '90s', '1d', '1h30m' -> seconds."""
    text = _str(value).strip()
    match = _DURATION.fullmatch(text)
    if not text or not match:
        raise _Invalid(f"'{text}' is not a duration like '1h', '30m' or '90s'")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return _bounded_seconds(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def _bounded_seconds(seconds: int) -> int:
    if seconds > _MAX_SECONDS:
        raise _Invalid(f"{seconds} seconds is too long: at most 366 days")
    return seconds


def _grace_minutes(value: object) -> int:
    """misfire_grace: a duration string or an integer number of minutes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return _int_in(0, _MAX_SECONDS // 60)(value)
    seconds = _duration_seconds(value)
    if seconds % 60:
        raise _Invalid(f"'{value}' is not a whole number of minutes")
    return seconds // 60


def _timeout_seconds(value: object) -> int:
    """timeout: a duration string or an integer number of seconds, above zero."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    seconds = _bounded_seconds(cast(int, value)) if is_int else _duration_seconds(value)
    if seconds <= 0:
        raise _Invalid("must be longer than zero")
    return seconds


def _timezone(value: object) -> str:
    name = _nonempty_str(value)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise _Invalid(f"'{name}' is not a known time zone (e.g. 'UTC', 'Europe/Berlin')") from None
    return name


def _clock(value: object) -> tuple[int, int]:
    """'HH:MM' (24-hour, two digits each) -> (hour, minute)."""
    text = _str(value)
    match = _CLOCK.fullmatch(text)
    if not match:
        raise _Invalid(f"'{text}' is not a time of day HH:MM (00:00 to 23:59)")
    return int(match[1]), int(match[2])


def _cron(value: object) -> str:
    """A five-field cron expression that croniter accepts."""
    text = " ".join(_str(value).split())
    if len(text.split()) != 5:
        raise _Invalid(f"'{text}' is not a cron expression of exactly 5 fields")
    from orchestrator.policies.schedule import is_valid_cron

    if not is_valid_cron(text):
        raise _Invalid(f"'{text}' is not a valid cron expression")
    return text


def _every(value: object) -> str:
    """How often a check runs: daily, weekly, monthly or a cron expression."""
    text = _str(value)
    if text in _PERIODS:
        return text
    try:
        return _cron(text)
    except _Invalid:
        raise _Invalid(f"'{text}' is not daily, weekly, monthly or a 5-field cron") from None


def _fraction(value: object) -> str:
    """restic's --read-data-subset: 'i/N' (1 <= i <= N) or a percentage like '10%'."""
    text = _str(value).strip()
    frac, percent = _FRACTION.fullmatch(text), _PERCENT.fullmatch(text)
    if frac and 1 <= int(frac[1]) <= int(frac[2]):
        return text
    if percent and 0 < float(percent[1]) <= 100:
        return text
    raise _Invalid(f"'{text}' is not a fraction like '1/8' or a percentage like '10%'")


def _size(value: object) -> str:
    text = _str(value).strip()
    match = _SIZE.fullmatch(text)
    if not match or float(match[1]) <= 0:
        raise _Invalid(f"'{text}' is not a positive size like '20GiB' or '500MB'")
    return text


def _url(value: object) -> str:
    text = _str(value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _Invalid(f"'{text}' is not an http:// or https:// URL")
    return text


def _bucket(value: object) -> str:
    text = _str(value)
    if not 3 <= len(text) <= 63:
        raise _Invalid(f"'{text}' must be 3 to 63 characters long")
    if not _BUCKET.fullmatch(text):
        raise _Invalid(f"'{text}' may hold only a-z 0-9 . - and must start and end with a-z 0-9")
    return text


_port = _int_in(1, 65535)
_level = _one_of(LEVELS)
_strings = _list_of(_str)


# --------------------------------------------------------------------------- sections


def _settings(table: _Table | None, base: Path) -> Settings:
    """[orchestrator]; state_dir defaults to 'var' beside the config file."""
    defaults = Settings(state_dir=base / "var")
    if table is None:
        return defaults
    return Settings(
        state_dir=table.get_or("state_dir", _path_under(base), defaults.state_dir),
        timezone=table.get_or("timezone", _timezone, defaults.timezone),
        max_parallel=table.get_or("max_parallel", _int_in(1, 64), defaults.max_parallel),
        misfire_grace_minutes=table.get_or(
            "misfire_grace", _grace_minutes, defaults.misfire_grace_minutes
        ),
        max_full_interval_days=table.get_or(
            "max_full_interval_days", _int_in(1, 3660), defaults.max_full_interval_days
        ),
        restic_binary=table.get_or("restic_binary", _nonempty_str, defaults.restic_binary),
        timeout_seconds=table.get_or("timeout", _timeout_seconds, defaults.timeout_seconds),
        retries=table.get_or("retries", _int_in(0, 20), defaults.retries),
        retry_backoff_seconds=table.get_or(
            "retry_backoff", _backoff_seconds, defaults.retry_backoff_seconds
        ),
        forget_max_share=table.get_or("forget_max_share", _share, defaults.forget_max_share),
    )


def _backoff_seconds(value: object) -> int:
    """retry_backoff: a duration string or an integer number of seconds (0 allowed)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return _int_in(0, _MAX_SECONDS)(value)
    return _duration_seconds(value)


def _share(value: object) -> float:
    """forget_max_share: '50%' or a fraction in (0, 1]."""
    if isinstance(value, str) and (match := _PERCENT.fullmatch(value.strip())):
        share = float(match.group(1)) / 100
    elif isinstance(value, int | float) and not isinstance(value, bool):
        share = float(value)
    else:
        raise _Invalid(f"'{value}' is not a share like '50%' or 0.5")
    if not 0 < share <= 1:
        raise _Invalid(f"'{value}' must be above 0 and at most 100%")
    return share


def _target(table: _Table, name: str, base: Path) -> TargetSpec | None:
    """[targets.NAME]: the keys allowed depend on `kind`."""
    kind = table.need("kind", _one_of(tuple(_TARGET_KEYS)))
    specific = _TARGET_KEYS[kind] if kind else tuple(k for ks in _TARGET_KEYS.values() for k in ks)
    table.check_keys(("kind", "password", *specific))
    password = table.need("password", _secret_ref) or ""
    if kind == "local":
        path = table.need("path", _path_under(base)) or Path()
        return LocalTargetSpec(name=name, kind="local", password=password, path=path)
    if kind == "sftp":
        return SftpTargetSpec(
            name=name,
            kind="sftp",
            password=password,
            host=table.need("host", _nonempty_str) or "",
            port=table.get_or("port", _port, 22),
            user=table.get_or("user", _str, ""),
            path=table.need("path", _nonempty_str) or "",
            identity_file=table.get("identity_file", _path_under(base)),
            known_hosts=table.get("known_hosts", _path_under(base)),
            connect_timeout=table.get_or("connect_timeout", _timeout_seconds, 30),
        )
    if kind == "s3":
        return S3TargetSpec(
            name=name,
            kind="s3",
            password=password,
            bucket=table.need("bucket", _bucket) or "",
            prefix=table.get_or("prefix", _str, ""),
            endpoint=table.get("endpoint", _url),
            region=table.get("region", _nonempty_str),
            credentials=table.get("credentials", _secret_ref),
            connect_timeout=table.get_or("connect_timeout", _timeout_seconds, 30),
        )
    return None


def _policy(table: _Table, name: str, base: Path, targets: tuple[str, ...]) -> Policy:
    """[policies.NAME]."""
    table.check_keys(_POLICY_KEYS)
    sources = table.get_or("sources", _list_of(_path_under(base)), ())
    database = _database(table.table("database", _DATABASE_KEYS))
    # An invalid `sources` or `database` is reported on its own; don't pile on.
    if not table.data.get("sources") and "database" not in table.data:
        table.report("", "has no sources and no database: nothing to back up")
    own = table.need("targets", _target_names(targets)) or ()
    return Policy(
        name=name,
        importance=cast(Importance, table.need("importance", _one_of(IMPORTANCES)) or "normal"),
        targets=own,
        copy_to=table.get_or("copy_to", _copy_targets(targets, own), ()),
        schedules=_schedules(table),
        description=table.get_or("description", _str, ""),
        sources=sources,
        exclude=table.get_or("exclude", _strings, ()),
        database=database,
        catch_up=cast(CatchUp, table.get_or("catch_up", _one_of(CATCH_UPS), "once")),
        retention=_retention(table.table("retention", _RETENTION_KEYS)),
        verify=_verify(table.table("verify", _VERIFY_KEYS)),
        drill=_drill(table.table("drill", _DRILL_KEYS)),
        rpo_hours=table.get("rpo_hours", _positive_number),
        allow_empty=table.get_or("allow_empty", _bool, False),
        min_files_ratio=table.get_or("min_files_ratio", _ratio, 0.5),
    )


def _target_names(targets: tuple[str, ...]) -> Conv[tuple[str, ...]]:
    """A policy's `targets`: known names, each listed once."""

    def conv(value: object) -> tuple[str, ...]:
        names = _list_of(_str, nonempty=True)(value)
        known = ", ".join(sorted(targets)) or "none"
        issues = [("", f"unknown target '{n}' (known: {known})") for n in names if n not in targets]
        issues += [("", f"'{n}' is listed twice") for n in sorted(set(names)) if names.count(n) > 1]
        if issues:
            raise _Invalid(issues=issues)
        return names

    return conv


def _copy_targets(targets: tuple[str, ...], own: tuple[str, ...]) -> Conv[tuple[str, ...]]:
    """A policy's `copy_to`: known names, each once, none also a backup target (a snapshot
    copied where it is also backed up would exist there twice)."""

    def conv(value: object) -> tuple[str, ...]:
        names = _list_of(_str)(value)
        known = ", ".join(sorted(targets)) or "none"
        issues = [("", f"unknown target '{n}' (known: {known})") for n in names if n not in targets]
        issues += [("", f"'{n}' is listed twice") for n in sorted(set(names)) if names.count(n) > 1]
        issues += [
            ("", f"'{n}' is also in targets: a target is either backed up to or copied to")
            for n in dict.fromkeys(names)
            if n in own
        ]
        if issues:
            raise _Invalid(issues=issues)
        return names

    return conv


def _database(table: _Table | None) -> DatabaseSpec | None:
    if table is None:
        return None
    kind = table.need("kind", _one_of(_DB_KINDS))
    return DatabaseSpec(
        kind=cast(_DbKind, kind or "postgres"),
        name=table.need("name", _nonempty_str) or "",
        host=table.get("host", _nonempty_str),
        port=table.get("port", _port),
        user=table.get("user", _nonempty_str),
        password=table.get("password", _secret_ref),
    )


def _schedules(policy: _Table) -> tuple[ScheduleEntry, ...]:
    """daily/weekly/monthly tables and `schedules` crons -> ScheduleEntry; none = manual only."""
    entries = [
        entry
        for period, keys in _CALENDARS.items()
        if (table := policy.table(period, keys)) is not None
        and (entry := _calendar_entry(table, period)) is not None
    ]
    for i, raw in enumerate(policy.get_or("schedules", _list_of(lambda v: v), ())):
        table = _Table(raw, f"{policy.at('schedules')}[{i}]", policy.problems, ("cron", "level"))
        if not table.ok:
            continue
        cron, level = table.need("cron", _cron), table.need("level", _level)
        if cron and level:
            entries.append(ScheduleEntry(f"cron[{i}]", cron, cast(Level, level)))
    return tuple(entries)


def _calendar_entry(table: _Table, period: str) -> ScheduleEntry | None:
    """`daily = {at, level}`, `weekly = {on, at, level}`, `monthly = {day, at, level}` -> cron."""
    clock, level = table.need("at", _clock), table.need("level", _level)
    weekday = table.need("on", _one_of(WEEKDAYS, "mon..sun")) if period == "weekly" else "*"
    day = table.need("day", _int_in(1, 31)) if period == "monthly" else None
    if clock is None or level is None or weekday is None or (period == "monthly" and day is None):
        return None
    dow = str((WEEKDAYS.index(weekday) + 1) % 7) if weekday != "*" else "*"
    cron = f"{clock[1]} {clock[0]} {day or '*'} * {dow}"
    return ScheduleEntry(period, cron, cast(Level, level), month_day=day)


def _retention(table: _Table | None) -> Retention:
    if table is None:
        return Retention()
    return Retention(**{key: table.get(key, _int_in(0, _MAX_COUNT)) for key in _RETENTION_KEYS})


def _verify(table: _Table | None) -> VerifySpec | None:
    if table is None:
        return None
    return VerifySpec(
        every=table.get_or("every", _every, VerifySpec.every),
        read_data_fraction=table.get("read_data_fraction", _fraction),
        media=table.get_or("media", _bool, False),
        media_budget=table.get("media_budget", _size),
    )


def _drill(table: _Table | None) -> DrillSpec | None:
    if table is None:
        return None
    return DrillSpec(
        every=table.get_or("every", _every, DrillSpec.every),
        sample_files=table.get("sample_files", _int_in(1)),
        sample_bytes=table.get("sample_bytes", _size),
        rto_minutes=table.get("rto_minutes", _int_in(1, _MAX_SECONDS // 60)),
        check_sql=table.get("check_sql", _nonempty_str),
    )


def _service(table: _Table | None) -> ServiceSettings:
    """[service]; response hours not given keep their defaults (2 / 4 / 8)."""
    if table is None:
        return ServiceSettings()
    hours = dict(ServiceSettings().response_hours)
    response = table.table("response_hours", _RESPONSE_KEYS)
    if response is not None:
        hours |= {k: v for k in _RESPONSE_KEYS if (v := response.get(k, _positive_number))}
    return ServiceSettings(
        assign=_assign(table.table("assign")),
        response_hours=hours,
        notify=table.get_or("notify", _strings, ()),
    )


def _assign(table: _Table | None) -> dict[str, str]:
    """[service.assign]: free keys (ticket class) -> assignee group."""
    if table is None:
        return {}
    return {key: value for key in table.data if (value := table.get(key, _nonempty_str))}


def _access(table: _Table | None) -> AccessSettings:
    if table is None:
        return AccessSettings()
    defaults = AccessSettings()
    return AccessSettings(
        **{key: table.get_or(key, _strings, getattr(defaults, key)) for key in _ACCESS_KEYS}
    )


# --------------------------------------------------------------------------- the file system


def _state_dir_problems(state_dir: Path) -> list[str]:
    """state_dir (or the nearest part of it that exists) must be a directory."""
    for path in (state_dir, *state_dir.parents):
        if path.exists():
            if path.is_dir():
                return []
            return [f"orchestrator.state_dir: {path} is a file, not a directory"]
    return []


def _self_backup_problems(policies: dict[str, Policy], targets: dict[str, TargetSpec]) -> list[str]:
    """A local repository inside one of its own policy's sources would back itself up."""
    problems = []
    for policy in policies.values():
        for name in (*policy.targets, *policy.copy_to):
            spec = targets.get(name)
            if not isinstance(spec, LocalTargetSpec):
                continue
            repo = spec.path.resolve()
            for i, source in enumerate(policy.sources):
                if repo.is_relative_to(source.resolve()) and not _excluded(repo, policy.exclude):
                    problems.append(
                        f"policies.{policy.name}.sources[{i}]: holds the repository of target "
                        f"'{name}' ({repo}): it would back itself up; move the repository "
                        f"or add '{repo}' to exclude"
                    )
    return problems


def _excluded(path: Path, patterns: Iterable[str]) -> bool:
    """Whether an exclude pattern covers `path` or a folder above it (close to restic's
    rules: an absolute pattern matches from the root, another one any trailing part)."""
    for place in (path, *path.parents):
        tails = ["/".join(place.parts[i:]) for i in range(1, len(place.parts))]
        for pattern in (p.rstrip("/") for p in patterns):
            if pattern.startswith("/"):
                if fnmatch.fnmatchcase(str(place), pattern):
                    return True
            elif any(fnmatch.fnmatchcase(tail, pattern) for tail in tails):
                return True
    return False
