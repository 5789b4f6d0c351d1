"""policies.toml -> Config: read once, validate everything, report every problem at once.

Validation never stops at the first problem: each table is read through a `Table` (tables.py)
that records problems (prefixed with their dotted place) and hands back a default,
so one run lists all of them. Field checks are small converters that either return
the typed value or raise `Invalid` (values.py); they never echo a secret.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import os
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, cast

from orchestrator.errors import ConfigError
from orchestrator.policies import parse_cache, values
from orchestrator.policies.model import (
    CATCH_UPS,
    IMPORTANCES,
    WEEKDAYS,
    AccessSettings,
    AuditSettings,
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
from orchestrator.policies.tables import Table, named_tables
from orchestrator.policies.values import Conv
from orchestrator.security.keys import key_file_for
from orchestrator.security.secrets import STORE_FILE
from orchestrator.service import rules

__all__ = ["load_config", "parse_config"]

_TOML_WHERE = re.compile(
    r"(?P<msg>.*) \(at (?:line (?P<line>\d+), column (?P<col>\d+)|end of document)\)"
)

_TOP_KEYS = ("orchestrator", "targets", "policies", "service", "access", "audit", "notify")
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
    "secrets_key_file",
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
_DATABASE_KEYS = ("kind", "name", "host", "port", "user", "password", "path")
_RETENTION_KEYS = tuple(f.name for f in dataclasses.fields(Retention))
_VERIFY_KEYS = tuple(f.name for f in dataclasses.fields(VerifySpec))
_DRILL_KEYS = tuple(f.name for f in dataclasses.fields(DrillSpec))
_RESPONSE_KEYS = rules.PRIORITIES
_SERVICE_KEYS = ("assign", "response_hours", "resolution_hours", "priorities", "escalate")
_SERVICE_KEYS += ("notify",)
_ACCESS_KEYS = tuple(f.name for f in dataclasses.fields(AccessSettings))
_DbKind = Literal["postgres", "mariadb", "mysql", "sqlite"]
_DB_KINDS: tuple[_DbKind, ...] = ("postgres", "mariadb", "mysql", "sqlite")


# --------------------------------------------------------------------------- public API


def load_config(path: Path) -> Config:
    """Read, parse and validate policies.toml; every failure is a ConfigError, never a traceback."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"], str(path)) from None
    digest = hashlib.sha256(data).hexdigest()
    base = path.expanduser().resolve().parent
    try:
        raw = parse_cache.load(data.decode("utf-8-sig"), digest, base, tomllib.loads)
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text (byte {exc.start})"], str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([_toml_problem(path, exc)], str(path)) from None
    except RecursionError:
        raise ConfigError(
            [f"{path}: arrays or tables nested too deeply to read (hundreds of levels)"], str(path)
        ) from None
    config = parse_config(raw, path)
    return dataclasses.replace(config, sha256=digest)


def parse_config(raw: dict[str, Any], path: Path) -> Config:
    """Validate the whole parsed document; raise one ConfigError listing every problem."""
    path = Path(path).expanduser().resolve()
    base = path.parent
    problems: list[str] = []
    top = Table(raw, "", problems, _TOP_KEYS)
    settings = _settings(top.table("orchestrator", _SETTINGS_KEYS), base)
    if settings.secrets_key_file is None:
        store = settings.state_dir / STORE_FILE
        settings = dataclasses.replace(settings, secrets_key_file=key_file_for(path, store))
    targets = named_tables(top, "targets", lambda t, n: _target(t, n, base))
    # A target with its own problems still counts as declared: no second "unknown target".
    names = names_of(top, "targets")
    policies = named_tables(top, "policies", lambda t, n: _policy(t, n, base, names))
    service = _service(top.table("service", _SERVICE_KEYS))
    access = _access(top.table("access", _ACCESS_KEYS), base, names_of(top, "policies"))
    audit = _audit(top.table("audit", _AUDIT_KEYS), base, settings.state_dir)  # issue 16
    notify = _notify(top.data.get("notify") if top.ok else None, problems)  # issue 17
    problems += _escalate_problems(service.escalate, names_of(top, "notify"))
    problems += _state_dir_problems(settings.state_dir)
    problems += _access_problems(access, settings.state_dir)
    problems += _key_file_problems(settings)
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
        audit=audit,
        notify=notify,
    )


def _notify(raw: object, problems: list[str]) -> tuple[Any, ...]:
    """[notify.NAME]: the channels ticket changes are sent to (notify/routing.py)."""
    if raw is None:
        return ()
    from orchestrator.notify.routing import parse_channels

    return tuple(parse_channels(raw, problems))  # type: ignore[arg-type]


def _escalate_problems(escalate: tuple[str, ...], channels: tuple[str, ...]) -> list[str]:
    """[service] escalate names the [notify.NAME] channels that hear of a breach."""
    known = ", ".join(channels) or "none: add a [notify.NAME] table"
    return [
        f"service.escalate[{i}]: '{name}' is not a [notify.NAME] channel (known: {known})"
        for i, name in enumerate(escalate)
        if name not in channels
    ]


def names_of(top: Table, key: str) -> tuple[str, ...]:
    """The names declared under [KEY.*], valid or not (a reference to one is not 'unknown')."""
    declared = top.data.get(key)
    return tuple(declared) if isinstance(declared, dict) else ()


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


# --------------------------------------------------------------------------- sections


def _settings(table: Table | None, base: Path) -> Settings:
    """[orchestrator]; state_dir defaults to 'var' beside the config file."""
    defaults = Settings(state_dir=base / "var")
    if table is None:
        return defaults
    return Settings(
        state_dir=table.get_or("state_dir", values.path_under(base), defaults.state_dir),
        timezone=table.get_or("timezone", values.timezone, defaults.timezone),
        max_parallel=table.get_or("max_parallel", values.int_in(1, 64), defaults.max_parallel),
        misfire_grace_minutes=table.get_or(
            "misfire_grace", values.grace_minutes, defaults.misfire_grace_minutes
        ),
        max_full_interval_days=table.get_or(
            "max_full_interval_days", values.int_in(1, 3660), defaults.max_full_interval_days
        ),
        restic_binary=table.get_or("restic_binary", values.path_text, defaults.restic_binary),
        timeout_seconds=table.get_or("timeout", values.timeout_seconds, defaults.timeout_seconds),
        retries=table.get_or("retries", values.int_in(0, 20), defaults.retries),
        retry_backoff_seconds=table.get_or(
            "retry_backoff", _backoff_seconds, defaults.retry_backoff_seconds
        ),
        forget_max_share=table.get_or("forget_max_share", _share, defaults.forget_max_share),
        secrets_key_file=table.get_or("secrets_key_file", values.path_under(base), None),
    )


def _backoff_seconds(value: object) -> int:
    """retry_backoff: a duration string or an integer number of seconds (0 allowed)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return values.int_in(0, values.MAX_SECONDS)(value)
    return values.duration_seconds(value)


def _share(value: object) -> float:
    """forget_max_share: '50%' or a fraction in (0, 1]."""
    if isinstance(value, str) and (match := values.PERCENT.fullmatch(value.strip())):
        share = float(match.group(1)) / 100
    elif isinstance(value, int | float) and not isinstance(value, bool):
        share = float(value)
    else:
        raise values.Invalid(f"'{value}' is not a share like '50%' or 0.5")
    if not 0 < share <= 1:
        raise values.Invalid(f"'{value}' must be above 0 and at most 100%")
    return share


def _target(table: Table, name: str, base: Path) -> TargetSpec | None:
    """[targets.NAME]: the keys allowed depend on `kind`."""
    kind = table.need("kind", values.one_of(tuple(_TARGET_KEYS)))
    specific = _TARGET_KEYS[kind] if kind else tuple(k for ks in _TARGET_KEYS.values() for k in ks)
    table.check_keys(("kind", "password", *specific))
    password = table.need("password", values.secret_ref) or ""
    if kind == "local":
        path = table.need("path", values.path_under(base)) or Path()
        return LocalTargetSpec(name=name, kind="local", password=password, path=path)
    if kind == "sftp":
        return SftpTargetSpec(
            name=name,
            kind="sftp",
            password=password,
            host=table.need("host", values.nonempty_string) or "",
            port=table.get_or("port", values.port, 22),
            user=table.get_or("user", values.string, ""),
            path=table.need("path", values.path_text) or "",
            identity_file=table.get("identity_file", values.path_under(base)),
            known_hosts=table.get("known_hosts", values.path_under(base)),
            connect_timeout=table.get_or("connect_timeout", values.timeout_seconds, 30),
        )
    if kind == "s3":
        return S3TargetSpec(
            name=name,
            kind="s3",
            password=password,
            bucket=table.need("bucket", values.bucket) or "",
            prefix=table.get_or("prefix", values.string, ""),
            endpoint=table.get("endpoint", values.url),
            region=table.get("region", values.nonempty_string),
            credentials=table.get("credentials", values.secret_ref),
            connect_timeout=table.get_or("connect_timeout", values.timeout_seconds, 30),
        )
    return None


def _policy(table: Table, name: str, base: Path, targets: tuple[str, ...]) -> Policy:
    """[policies.NAME]."""
    table.check_keys(_POLICY_KEYS)
    sources = table.get_or("sources", values.list_of(values.path_under(base)), ())
    database = _database(table.table("database", _DATABASE_KEYS), base)
    # An invalid `sources` or `database` is reported on its own; don't pile on.
    if not table.data.get("sources") and "database" not in table.data:
        table.report("", "has no sources and no database: nothing to back up")
    own = table.need("targets", _target_names(targets)) or ()
    return Policy(
        name=name,
        importance=cast(
            Importance, table.need("importance", values.one_of(IMPORTANCES)) or "normal"
        ),
        targets=own,
        copy_to=table.get_or("copy_to", _copy_targets(targets, own), ()),
        schedules=_schedules(table),
        description=table.get_or("description", values.string, ""),
        sources=sources,
        exclude=table.get_or("exclude", values.strings, ()),
        database=database,
        catch_up=cast(CatchUp, table.get_or("catch_up", values.one_of(CATCH_UPS), "once")),
        retention=_retention(table.table("retention", _RETENTION_KEYS)),
        verify=_verify(table.table("verify", _VERIFY_KEYS)),
        drill=_drill(table.table("drill", _DRILL_KEYS)),
        rpo_hours=table.get("rpo_hours", values.positive_number),
        allow_empty=table.get_or("allow_empty", values.boolean, False),
        min_files_ratio=table.get_or("min_files_ratio", values.ratio, 0.5),
    )


def _target_names(targets: tuple[str, ...]) -> Conv[tuple[str, ...]]:
    """A policy's `targets`: known names, each listed once."""

    def conv(value: object) -> tuple[str, ...]:
        names = values.list_of(values.string, nonempty=True)(value)
        known = ", ".join(sorted(targets)) or "none"
        issues = [("", f"unknown target '{n}' (known: {known})") for n in names if n not in targets]
        issues += [("", f"'{n}' is listed twice") for n in sorted(set(names)) if names.count(n) > 1]
        if issues:
            raise values.Invalid(issues=issues)
        return names

    return conv


def _copy_targets(targets: tuple[str, ...], own: tuple[str, ...]) -> Conv[tuple[str, ...]]:
    """A policy's `copy_to`: known names, each once, none also a backup target (a snapshot
    copied where it is also backed up would exist there twice)."""

    def conv(value: object) -> tuple[str, ...]:
        names = values.list_of(values.string)(value)
        known = ", ".join(sorted(targets)) or "none"
        issues = [("", f"unknown target '{n}' (known: {known})") for n in names if n not in targets]
        issues += [("", f"'{n}' is listed twice") for n in sorted(set(names)) if names.count(n) > 1]
        issues += [
            ("", f"'{n}' is also in targets: a target is either backed up to or copied to")
            for n in dict.fromkeys(names)
            if n in own
        ]
        if issues:
            raise values.Invalid(issues=issues)
        return names

    return conv


def _database(table: Table | None, base: Path) -> DatabaseSpec | None:
    if table is None:
        return None
    kind = table.need("kind", values.one_of(_DB_KINDS))
    if kind == "sqlite":  # a file, opened by the orchestrator itself
        path = table.need("path", values.path_under(base))
        return DatabaseSpec(
            kind="sqlite",
            name=table.get_or("name", values.nonempty_string, path.stem if path else ""),
            path=path,
        )
    if "path" in table.data:
        table.report("path", f"only a sqlite database has a path; a {kind} one has a name")
    return DatabaseSpec(
        kind=cast(_DbKind, kind or "postgres"),
        name=table.need("name", values.nonempty_string) or "",
        host=table.get("host", values.nonempty_string),
        port=table.get("port", values.port),
        user=table.get("user", values.nonempty_string),
        password=table.get("password", values.secret_ref),
    )


def _schedules(policy: Table) -> tuple[ScheduleEntry, ...]:
    """daily/weekly/monthly tables and `schedules` crons -> ScheduleEntry; none = manual only."""
    entries = [
        entry
        for period, keys in _CALENDARS.items()
        if (table := policy.table(period, keys)) is not None
        and (entry := _calendar_entry(table, period)) is not None
    ]
    for i, raw in enumerate(policy.get_or("schedules", values.list_of(lambda v: v), ())):
        table = Table(raw, f"{policy.at('schedules')}[{i}]", policy.problems, ("cron", "level"))
        if not table.ok:
            continue
        cron, level = table.need("cron", values.cron), table.need("level", values.level)
        if cron and level:
            entries.append(ScheduleEntry(f"cron[{i}]", cron, cast(Level, level)))
    return tuple(entries)


def _calendar_entry(table: Table, period: str) -> ScheduleEntry | None:
    """`daily = {at, level}`, `weekly = {on, at, level}`, `monthly = {day, at, level}` -> cron."""
    clock, level = table.need("at", values.clock), table.need("level", values.level)
    weekday = table.need("on", values.one_of(WEEKDAYS, "mon..sun")) if period == "weekly" else "*"
    day = table.need("day", values.int_in(1, 31)) if period == "monthly" else None
    if clock is None or level is None or weekday is None or (period == "monthly" and day is None):
        return None
    dow = str((WEEKDAYS.index(weekday) + 1) % 7) if weekday != "*" else "*"
    cron = f"{clock[1]} {clock[0]} {day or '*'} * {dow}"
    return ScheduleEntry(period, cron, cast(Level, level), month_day=day)


def _retention(table: Table | None) -> Retention:
    if table is None:
        return Retention()
    return Retention(
        **{key: table.get(key, values.int_in(0, values.MAX_COUNT)) for key in _RETENTION_KEYS}
    )


def _verify(table: Table | None) -> VerifySpec | None:
    if table is None:
        return None
    return VerifySpec(
        every=table.get_or("every", values.every, VerifySpec.every),
        read_data_fraction=table.get("read_data_fraction", values.fraction),
        media=table.get_or("media", values.boolean, False),
        media_budget=table.get("media_budget", values.size),
    )


def _drill(table: Table | None) -> DrillSpec | None:
    if table is None:
        return None
    return DrillSpec(
        every=table.get_or("every", values.every, DrillSpec.every),
        sample_files=table.get("sample_files", values.int_in(1)),
        sample_bytes=table.get("sample_bytes", values.size),
        rto_minutes=table.get("rto_minutes", values.int_in(1, values.MAX_SECONDS // 60)),
        check_sql=table.get("check_sql", values.nonempty_string),
    )


def _service(table: Table | None) -> ServiceSettings:
    """[service]; hours not given keep their defaults (response 2 / 4 / 8, resolution
    24 / 72 / 168), priority cells not given keep the table of service/rules.py."""
    defaults = ServiceSettings()
    if table is None:
        return defaults
    return ServiceSettings(
        assign=_assign(table.table("assign")),
        response_hours=_hours(table, "response_hours", defaults.response_hours),
        resolution_hours=_hours(table, "resolution_hours", defaults.resolution_hours),
        priorities=_priorities(table.table("priorities", tuple(rules.GROUPS))),
        escalate=table.get_or("escalate", values.strings, ()),
        notify=table.get_or("notify", values.strings, ()),
    )


def _hours(table: Table, key: str, default: dict[str, float]) -> dict[str, float]:
    hours = dict(default)
    given = table.table(key, _RESPONSE_KEYS)
    if given is not None:
        hours |= {k: v for k in _RESPONSE_KEYS if (v := given.get(k, values.positive_number))}
    return hours


def _priorities(table: Table | None) -> dict[str, dict[str, str]]:
    """[service.priorities]: `protection = { low = "important" }` changes one cell."""
    cells: dict[str, dict[str, str]] = {}
    for group in rules.GROUPS if table is not None else ():
        row = table.table(group, rules.IMPORTANCES)
        if row is not None:
            prio = values.one_of(rules.PRIORITIES)
            cells[group] = {k: v for k in rules.IMPORTANCES if (v := row.get(k, prio))}
    return rules.merge_priorities(cells)


def _assign(table: Table | None) -> dict[str, str]:
    """[service.assign]: free keys (ticket class) -> assignee group."""
    if table is None:
        return {}
    return {key: value for key in table.data if (value := table.get(key, values.nonempty_string))}


def _access(table: Table | None, base: Path, policies: tuple[str, ...]) -> AccessSettings | None:
    """[access]: who holds which role (security/access.py). Absent: None, everyone as before."""
    if table is None:
        return None
    roots = table.get_or("restore_roots", values.list_of(_restore_root(base)), ())
    return AccessSettings(
        operators=table.get_or("operators", _subjects, ()),
        auditors=table.get_or("auditors", _subjects, ()),
        requesters=table.get_or("requesters", _requesters(policies), {}),
        restore_roots=tuple(dict.fromkeys(roots)),
    )


# audit log (issue 16); its signing key is sealed in the secret store (audit/signing.py).
# key_file is where versions before that kept it: read once, to move it into the store.
_AUDIT_KEYS = ("key_file", "export_dir", "checkpoint_every", "origin")


def _audit(table: Table | None, base: Path, state_dir: Path) -> AuditSettings:
    defaults = AuditSettings(
        legacy_key_file=base / "keys" / "audit-ed25519.pem",
        export_dir=state_dir / "audit" / "export",
    )
    if table is None:
        return defaults
    legacy = table.get_or("key_file", values.path_under(base), defaults.legacy_key_file)
    export_dir = table.get_or("export_dir", values.path_under(base), defaults.export_dir)
    if problem := _not_a_folder(export_dir):
        table.report("export_dir", problem)
    return AuditSettings(
        legacy_key_file=legacy,
        export_dir=export_dir,
        checkpoint_every=table.get_or("checkpoint_every", values.int_in(1, 1_000_000), 100),
        origin=table.get_or("origin", _origin, ""),
    )


def _not_a_folder(path: Path) -> str | None:
    """Checkpoints are exported into a folder, made on first use: a file at the path, or
    on the way to it, would make every export fail."""
    for place in (path, *path.parents):
        if place.exists():
            return None if place.is_dir() else f"{place} exists and is not a directory"
    return None


def _origin(value: object) -> str:
    """A checkpoint origin is also the signing key's name: no spaces, no '+'."""
    text = values.nonempty_string(value)
    if any(c.isspace() for c in text) or "+" in text:
        raise values.Invalid(f"'{text}' must have no spaces and no '+'")
    return text


def _subject(value: object) -> str:
    from orchestrator.security.identity import subject_problem

    text = values.string(value)
    if problem := subject_problem(text):
        raise values.Invalid(problem)
    return text


_subjects = values.list_of(_subject)


def _requesters(policies: tuple[str, ...]) -> Conv[dict[str, tuple[str, ...]]]:
    """`requesters`: a list of subjects (each may restore every policy), or a table of
    subject -> the policies it may restore (`"*"` for all of them)."""

    def names(value: object) -> tuple[str, ...]:
        listed = values.list_of(values.string)(value)
        known = ", ".join(sorted(policies)) or "none"
        issues = [
            (f"[{i}]", f"unknown policy '{n}' (known: {known}, or '*' for all)")
            for i, n in enumerate(listed)
            if n != "*" and n not in policies
        ]
        if issues:
            raise values.Invalid(issues=issues)
        return listed

    def conv(value: object) -> dict[str, tuple[str, ...]]:
        if isinstance(value, list):
            return dict.fromkeys(_subjects(value), ("*",))
        if not isinstance(value, dict):
            raise values.Invalid(
                f"expected an array of users/@groups, or a table of user -> policies; "
                f"got {values.kind_of(value)}"
            )
        result: dict[str, tuple[str, ...]] = {}
        issues: list[tuple[str, str]] = []
        for key, raw in value.items():
            suffix = f".{key}" if values.NAME.fullmatch(key) else f'."{key}"'
            try:
                result[_subject(key)] = names(raw)
            except values.Invalid as exc:
                issues += [(suffix + s, m) for s, m in exc.issues]
        if issues:
            raise values.Invalid(issues=issues)
        return result

    return conv


def _restore_root(base: Path) -> Conv[Path]:
    """A restore root, resolved now (symlinks followed); never `/`, which bounds nothing."""

    def conv(value: object) -> Path:
        root = Path(os.path.realpath(values.path_under(base)(value)))
        if root == Path(root.anchor):
            raise values.Invalid(f"'{value}' is the whole file system: it would bound nothing")
        return root

    return conv


def _access_problems(access: AccessSettings | None, state_dir: Path) -> list[str]:
    """A restore root holding state_dir (or inside it) would let a requester overwrite the
    catalog and the secrets."""
    if access is None:
        return []
    state = Path(os.path.realpath(state_dir))
    return [
        f"access.restore_roots[{i}]: {root} overlaps state_dir ({state}): a requester's "
        "restore could overwrite the catalog and the secrets"
        for i, root in enumerate(access.restore_roots)
        if state.is_relative_to(root) or root.is_relative_to(state)
    ]


# --------------------------------------------------------------------------- the file system


def _state_dir_problems(state_dir: Path) -> list[str]:
    """state_dir (or the nearest part of it that exists) must be a directory."""
    for path in (state_dir, *state_dir.parents):
        if path.exists():
            if path.is_dir():
                return []
            return [f"orchestrator.state_dir: {path} is a file, not a directory"]
    return []


def _key_file_problems(settings: Settings) -> list[str]:
    """A key file inside state_dir would make a copy of state_dir reveal every secret."""
    key, state = settings.secrets_key_file, settings.state_dir.resolve()
    if key is not None and (key.resolve() == state or state in key.resolve().parents):
        return [
            f"orchestrator.secrets_key_file: {key} is inside state_dir {settings.state_dir}: "
            "a copy of state_dir would then reveal every secret"
        ]
    return []


def _self_backup_problems(policies: dict[str, Policy], targets: dict[str, TargetSpec]) -> list[str]:
    """A local repository inside one of its own policy's sources would back itself up."""
    problems = []
    # Resolved once each (a symlink walk per call): 10,000 policies share a few paths.
    resolved: dict[Path, Path] = {}

    inside: dict[tuple[Path, Path], bool] = {}

    def resolve(path: Path) -> Path:
        found = resolved.get(path)
        if found is None:
            found = resolved[path] = path.resolve()
        return found

    def within(repo: Path, source: Path) -> bool:
        key = (repo, source)
        found = inside.get(key)
        if found is None:
            found = inside[key] = repo.is_relative_to(resolve(source))
        return found

    for policy in policies.values():
        for name in (*policy.targets, *policy.copy_to):
            spec = targets.get(name)
            if not isinstance(spec, LocalTargetSpec):
                continue
            repo = resolve(spec.path)
            for i, source in enumerate(policy.sources):
                if within(repo, source) and not _excluded(repo, policy.exclude):
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
