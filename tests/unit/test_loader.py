"""policies.toml validation: the design example loads, and every bad input is a listed problem.

Table-driven: each case names the place it changes in a small valid document and the
exact problem expected, so the messages users see are part of the contract.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import ConfigError, ExitCode
from orchestrator.policies.loader import load_config, parse_config
from orchestrator.policies.model import (
    Config,
    LocalTargetSpec,
    S3TargetSpec,
    ScheduleEntry,
    SftpTargetSpec,
)

pytestmark = pytest.mark.unit

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "design_example.toml"
DELETE = object()  # a case value meaning "remove this key"


def _minimal() -> dict[str, Any]:
    """The smallest valid document; cases change one place of it."""
    return {
        "targets": {"t": {"kind": "local", "path": "repo", "password": "secret:pw"}},
        "policies": {"p": {"importance": "normal", "sources": ["/data"], "targets": ["t"]}},
    }


def _with(doc: dict[str, Any], place: str, value: object) -> dict[str, Any]:
    """A deep copy of `doc` with the dotted `place` set to `value` (or removed)."""
    doc = copy.deepcopy(doc)
    *parents, last = place.split(".")
    table = doc
    for key in parents:
        table = table.setdefault(key, {})
    if value is DELETE:
        table.pop(last, None)
    else:
        table[last] = value
    return doc


def _parse(doc: dict[str, Any], tmp_path: Path) -> Config:
    return parse_config(doc, tmp_path / "policies.toml")


def _problems(doc: dict[str, Any], tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        _parse(doc, tmp_path)
    assert info.value.exit_code == ExitCode.USAGE
    return info.value.problems


# --------------------------------------------------------------------------- the design example


@pytest.fixture(scope="module")
def example() -> Config:
    return load_config(FIXTURE)


@pytest.mark.parametrize(
    ("read", "expected"),
    [
        (lambda c: c.path, FIXTURE),
        (lambda c: c.sha256, hashlib.sha256(FIXTURE.read_bytes()).hexdigest()),
        (lambda c: c.settings.state_dir, FIXTURE.parent / "var"),
        (lambda c: c.settings.timezone, "UTC"),
        (lambda c: c.settings.max_parallel, 2),
        (lambda c: c.settings.misfire_grace_minutes, 60),
        (lambda c: c.settings.max_full_interval_days, 35),
        (
            lambda c: {n: t.kind for n, t in c.targets.items()},
            {"local": "local", "nas": "sftp", "offsite": "s3"},
        ),
        (lambda c: type(c.targets["local"]), LocalTargetSpec),
        (lambda c: type(c.targets["nas"]), SftpTargetSpec),
        (lambda c: type(c.targets["offsite"]), S3TargetSpec),
        (lambda c: c.targets["local"].path, FIXTURE.parent / "var" / "repos" / "local"),
        (lambda c: c.targets["local"].password, "secret:repo-local"),
        (lambda c: c.targets["nas"].identity_file, Path.home() / ".ssh" / "id_ed25519"),
        (lambda c: c.targets["nas"].path, "/srv/restic/web"),
        (lambda c: c.targets["offsite"].endpoint, "https://s3.example.net"),
        (lambda c: c.targets["offsite"].credentials, "secret:s3-offsite"),
        (
            lambda c: c.policies["web-data"].schedules,
            (
                ScheduleEntry("daily", "30 1 * * *", "incremental"),
                ScheduleEntry("weekly", "0 2 * * 0", "differential"),
                ScheduleEntry("monthly", "0 3 1 * *", "full", month_day=1),
            ),
        ),
        (
            lambda c: c.policies["orders-db"].schedules,
            (
                ScheduleEntry("daily", "15 0 * * *", "full"),
                ScheduleEntry("cron[0]", "0 12 * * 1-5", "incremental"),
            ),
        ),
        (lambda c: c.policies["web-data"].sources, (Path("/srv/www/uploads"),)),
        (lambda c: c.policies["web-data"].targets, ("local", "offsite")),
        (lambda c: c.policies["web-data"].retention.weekly, 5),
        (lambda c: c.policies["web-data"].verify.read_data_fraction, "1/8"),
        (lambda c: c.policies["web-data"].drill.rto_minutes, 60),
        (lambda c: c.policies["web-data"].rpo_hours, 26.0),
        (lambda c: c.policies["orders-db"].database.kind, "postgres"),
        (lambda c: c.policies["orders-db"].drill.every, "weekly"),
        (lambda c: c.service.assign["restore"], "ops-oncall"),
        (lambda c: c.service.response_hours, {"urgent": 2, "important": 4, "general": 8}),
        (lambda c: c.access.requesters, {"*": ("*",)}),  # a list: every policy
    ],
)
def test_design_example_values(
    example: Config, read: Callable[[Config], Any], expected: Any
) -> None:
    assert read(example) == expected


# --------------------------------------------------------------------------- valid variations


@pytest.mark.parametrize(
    ("place", "value", "read", "expected"),
    [
        ("orchestrator", DELETE, lambda c: c.settings.state_dir.name, "var"),
        (
            "orchestrator.state_dir",
            "~/state",
            lambda c: c.settings.state_dir,
            Path.home() / "state",
        ),
        (
            "orchestrator.state_dir",
            "/abs/state",
            lambda c: c.settings.state_dir,
            Path("/abs/state"),
        ),
        ("orchestrator.misfire_grace", "1h", lambda c: c.settings.misfire_grace_minutes, 60),
        ("orchestrator.misfire_grace", "1h30m", lambda c: c.settings.misfire_grace_minutes, 90),
        ("orchestrator.misfire_grace", 30, lambda c: c.settings.misfire_grace_minutes, 30),
        ("orchestrator.timeout", "2h", lambda c: c.settings.timeout_seconds, 7200),
        ("orchestrator.timeout", "90s", lambda c: c.settings.timeout_seconds, 90),
        ("orchestrator.timezone", "Europe/Berlin", lambda c: c.settings.timezone, "Europe/Berlin"),
        (
            "policies.p.sources",
            ["rel/dir"],
            lambda c: c.policies["p"].sources[0].parts[-2:],
            ("rel", "dir"),
        ),
        ("policies.p.catch_up", DELETE, lambda c: c.policies["p"].catch_up, "once"),
        ("policies.p.retention", {"last": 0}, lambda c: c.policies["p"].retention.last, 0),
        (
            "policies.p.monthly",
            {"day": 31, "at": "23:59", "level": "full"},
            lambda c: c.policies["p"].schedules,
            (ScheduleEntry("monthly", "59 23 31 * *", "full", month_day=31),),
        ),
        (
            "policies.p.weekly",
            {"on": "mon", "at": "00:00", "level": "incremental"},
            lambda c: c.policies["p"].schedules[0].cron,
            "0 0 * * 1",
        ),
        (
            "policies.p.schedules",
            [
                {"cron": "*/15  *  * * *", "level": "incremental"},
                {"cron": "0 0 1 1 *", "level": "full"},
            ],
            lambda c: [(s.name, s.cron) for s in c.policies["p"].schedules],
            [("cron[0]", "*/15 * * * *"), ("cron[1]", "0 0 1 1 *")],
        ),
        (
            "policies.p.verify",
            {"read_data_fraction": "10%"},
            lambda c: c.policies["p"].verify.every,
            "weekly",
        ),
        (
            "policies.p.verify",
            {"every": "0 4 * * 6", "media_budget": "20GiB"},
            lambda c: c.policies["p"].verify.every,
            "0 4 * * 6",
        ),
        (
            "policies.p.drill",
            {"sample_bytes": "500MB"},
            lambda c: c.policies["p"].drill.sample_bytes,
            "500MB",
        ),
        (
            "policies.p",
            {
                "importance": "low",
                "database": {"kind": "sqlite", "path": "/var/lib/app/app.db"},
                "targets": ["t"],
            },
            lambda c: (c.policies["p"].sources, c.policies["p"].database.name),
            ((), "app"),  # a sqlite database is a file: its name is the file's stem
        ),
        (
            "policies.t",
            {"importance": "low", "sources": ["/x"], "targets": ["t"]},
            lambda c: sorted(c.policies),
            ["p", "t"],
        ),
        (
            "service.response_hours",
            {"urgent": 1},
            lambda c: c.service.response_hours,
            {"urgent": 1, "important": 4, "general": 8},
        ),
        (
            "targets.s",
            {
                "kind": "sftp",
                "host": "h",
                "path": "/r",
                "password": "secret:x",
                "known_hosts": "kh",
            },
            lambda c: c.targets["s"].known_hosts.name,
            "kh",
        ),
    ],
)
def test_valid_variations(
    tmp_path: Path, place: str, value: object, read: Callable[[Config], Any], expected: Any
) -> None:
    config = _parse(_with(_minimal(), place, value), tmp_path)
    assert read(config) == expected


def test_minimal_document_is_manual_only_with_defaults(tmp_path: Path) -> None:
    config = _parse(_minimal(), tmp_path)
    assert config.policies["p"].schedules == ()
    assert config.settings.state_dir == tmp_path.resolve() / "var"
    assert config.targets["t"].path == tmp_path.resolve() / "repo"
    assert config.path == (tmp_path / "policies.toml").resolve()


# --------------------------------------------------------------------------- one problem per case


@pytest.mark.parametrize(
    ("place", "value", "expected"),
    [
        # unknown keys, with a suggestion when one is close
        (
            "policies.p.exlude",
            ["*.tmp"],
            "policies.p: unknown key 'exlude'; did you mean 'exclude'?",
        ),
        ("servce", {}, "top level: unknown key 'servce'; did you mean 'service'?"),
        ("orchestrator.colour", "red", "orchestrator: unknown key 'colour'"),
        (
            "policies.p.retention",
            {"dayly": 3},
            "policies.p.retention: unknown key 'dayly'; did you mean 'daily'?",
        ),
        ("targets.t.bucket", "b", "targets.t: unknown key 'bucket'"),
        # targets of a policy
        (
            "policies.p.targets",
            ["t", "offsite"],
            "policies.p.targets: unknown target 'offsite' (known: t)",
        ),
        ("policies.p.targets", ["t", "t"], "policies.p.targets: 't' is listed twice"),
        ("policies.p.targets", [], "policies.p.targets: must not be empty"),
        ("policies.p.targets", DELETE, "policies.p: missing required key 'targets'"),
        # times, levels, days
        (
            "policies.p.daily",
            {"at": "25:00", "level": "full"},
            "policies.p.daily.at: '25:00' is not a time of day HH:MM (00:00 to 23:59)",
        ),
        (
            "policies.p.daily",
            {"at": "1:3", "level": "full"},
            "policies.p.daily.at: '1:3' is not a time of day HH:MM (00:00 to 23:59)",
        ),
        (
            "policies.p.daily",
            {"at": "noon", "level": "full"},
            "policies.p.daily.at: 'noon' is not a time of day HH:MM (00:00 to 23:59)",
        ),
        ("policies.p.daily", {"level": "full"}, "policies.p.daily: missing required key 'at'"),
        (
            "policies.p.daily",
            {"at": "01:00", "level": "fulll"},
            "policies.p.daily.level: 'fulll' is not one of full, differential, incremental",
        ),
        (
            "policies.p.weekly",
            {"on": "sunday", "at": "02:00", "level": "full"},
            "policies.p.weekly.on: 'sunday' is not one of mon..sun",
        ),
        (
            "policies.p.monthly",
            {"day": 32, "at": "02:00", "level": "full"},
            "policies.p.monthly.day: 32 is out of range: must be between 1 and 31",
        ),
        # cron
        (
            "policies.p.schedules",
            [{"cron": "61 * * * *", "level": "full"}],
            "policies.p.schedules[0].cron: '61 * * * *' is not a valid cron expression",
        ),
        (
            "policies.p.schedules",
            [{"cron": "0 0 * * * *", "level": "full"}],
            "policies.p.schedules[0].cron: '0 0 * * * *' is not a cron expression "
            "of exactly 5 fields",
        ),
        (
            "policies.p.schedules",
            [{"cron": "@daily", "level": "full"}],
            "policies.p.schedules[0].cron: '@daily' is not a cron expression of exactly 5 fields",
        ),
        (
            "policies.p.schedules",
            [{"cron": "0 0 * * *"}],
            "policies.p.schedules[0]: missing required key 'level'",
        ),
        (
            "policies.p.schedules",
            ["0 0 * * *"],
            "policies.p.schedules[0]: expected a table, got a string",
        ),
        # what to back up
        (
            "policies.p.sources",
            DELETE,
            "policies.p: has no sources and no database: nothing to back up",
        ),
        (
            "policies.p.sources",
            [],
            "policies.p: has no sources and no database: nothing to back up",
        ),
        ("policies.p.sources", "/data", "policies.p.sources: expected an array, got a string"),
        (
            "policies.p.sources",
            ["/a", 2],
            "policies.p.sources[1]: expected a string, got an integer",
        ),
        (
            "policies.p.sources",
            ["~no-such-user-here/x"],
            "policies.p.sources[0]: '~no-such-user-here/x': "
            "cannot expand '~' (unknown user or no home)",
        ),
        (
            "policies.p.database",
            {"kind": "oracle", "name": "x"},
            "policies.p.database.kind: 'oracle' is not one of postgres, mariadb, mysql, sqlite",
        ),
        (
            "policies.p.database",
            {"kind": "mysql"},
            "policies.p.database: missing required key 'name'",
        ),
        (
            "policies.p.database",
            {"kind": "mysql", "name": "x", "password": "pw"},
            "policies.p.database.password: must be a reference like 'secret:NAME', not a value",
        ),
        # secrets
        (
            "targets.t.password",
            "hunter2",
            "targets.t.password: must be a reference like 'secret:NAME', not a value",
        ),
        (
            "targets.t.password",
            "secret:bad name",
            "targets.t.password: the NAME of a 'secret:NAME' reference starts with a "
            "letter or digit, holds only A-Z a-z 0-9 _ . - and no '..'",
        ),
        ("targets.t.password", DELETE, "targets.t: missing required key 'password'"),
        # settings
        (
            "orchestrator.timezone",
            "Mars/Olympus",
            "orchestrator.timezone: 'Mars/Olympus' is not a known time zone (e.g. "
            "'UTC', 'Europe/Berlin')",
        ),
        (
            "orchestrator.max_parallel",
            True,
            "orchestrator.max_parallel: expected an integer, got a boolean",
        ),
        (
            "orchestrator.max_parallel",
            0,
            "orchestrator.max_parallel: 0 is out of range: must be between 1 and 64",
        ),
        (
            "orchestrator.misfire_grace",
            "90s",
            "orchestrator.misfire_grace: '90s' is not a whole number of minutes",
        ),
        (
            "orchestrator.timeout",
            "soon",
            "orchestrator.timeout: 'soon' is not a duration like '1h', '30m' or '90s'",
        ),
        (
            "orchestrator.max_full_interval_days",
            1.5,
            "orchestrator.max_full_interval_days: expected an integer, got a float",
        ),
        # targets
        ("targets.t.kind", "ftp", "targets.t.kind: 'ftp' is not one of local, sftp, s3"),
        (
            "targets.s",
            {"kind": "sftp", "host": "h", "path": "/r", "port": 70000, "password": "secret:x"},
            "targets.s.port: 70000 is out of range: must be between 1 and 65535",
        ),
        (
            "targets.s",
            {"kind": "sftp", "path": "/r", "password": "secret:x"},
            "targets.s: missing required key 'host'",
        ),
        (
            "targets.s",
            {"kind": "s3", "bucket": "ab", "password": "secret:x"},
            "targets.s.bucket: 'ab' must be 3 to 63 characters long",
        ),
        (
            "targets.s",
            {"kind": "s3", "bucket": "abc", "endpoint": "ftp://x", "password": "secret:x"},
            "targets.s.endpoint: 'ftp://x' is not an http:// or https:// URL",
        ),
        (
            "targets.s",
            {"kind": "s3", "bucket": "abc", "credentials": "AKIA", "password": "secret:x"},
            "targets.s.credentials: must be a reference like 'secret:NAME', not a value",
        ),
        (
            "targets.-bad",
            {"kind": "local", "path": "r", "password": "secret:x"},
            "targets.-bad: name must start with a letter or digit and hold only A-Z a-z 0-9 _ -",
        ),
        # policies
        (
            "policies.bad name",
            {"importance": "low", "sources": ["/x"], "targets": ["t"]},
            "policies.bad name: name must start with a letter or digit and hold "
            "only A-Z a-z 0-9 _ -",
        ),
        ("policies.p.importance", DELETE, "policies.p: missing required key 'importance'"),
        (
            "policies.p.importance",
            "vital",
            "policies.p.importance: 'vital' is not one of critical, high, normal, low",
        ),
        (
            "policies.p.catch_up",
            "twice",
            "policies.p.catch_up: 'twice' is not one of once, skip, all",
        ),
        (
            "policies.p.retention",
            {"daily": -1},
            "policies.p.retention.daily: -1 is out of range: must be between 0 and 1000000",
        ),
        (
            "policies.p.verify",
            {"read_data_fraction": "9/8"},
            "policies.p.verify.read_data_fraction: '9/8' is not a fraction like "
            "'1/8' or a percentage like '10%'",
        ),
        (
            "policies.p.verify",
            {"media_budget": "lots"},
            "policies.p.verify.media_budget: 'lots' is not a positive size like '20GiB' or '500MB'",
        ),
        (
            "policies.p.verify",
            {"media": "yes"},
            "policies.p.verify.media: expected true or false, got a string",
        ),
        (
            "policies.p.drill",
            {"every": "fortnightly"},
            "policies.p.drill.every: 'fortnightly' is not daily, weekly, monthly or a 5-field cron",
        ),
        (
            "policies.p.drill",
            {"sample_files": 0},
            "policies.p.drill.sample_files: 0 is out of range: must be between 1 and 1000000000",
        ),
        (
            "policies.p.rpo_hours",
            0,
            "policies.p.rpo_hours: 0 must be a positive number of hours up to 87600",
        ),
        (
            "policies.p.description",
            ["x"],
            "policies.p.description: expected a string, got an array",
        ),
        # wrong shapes
        ("policies.p", "daily", "policies.p: expected a table, got a string"),
        ("policies.p.weekly", [1, 2], "policies.p.weekly: expected a table, got an array"),
        ("orchestrator", 3, "orchestrator: expected a table, got an integer"),
        (
            "policies.p.exclude",
            [1, "x"],
            "policies.p.exclude[0]: expected a string, got an integer",
        ),
        (
            "policies.p.daily",
            {"at": dt.time(1, 30), "level": "full"},
            "policies.p.daily.at: expected a string, got a time",
        ),
        # service and access
        (
            "service.response_hours",
            {"urgent": -1},
            "service.response_hours.urgent: -1 must be a positive number of hours up to 87600",
        ),
        (
            "service.response_hours",
            {"critical": 1},
            "service.response_hours: unknown key 'critical'",
        ),
        (
            "service.assign",
            {"backup": 3},
            "service.assign.backup: expected a string, got an integer",
        ),
        ("service.notify", "mailto://x", "service.notify: expected an array, got a string"),
        ("access.operators", "alice", "access.operators: expected an array, got a string"),
        ("access.admins", ["x"], "access: unknown key 'admins'"),
    ],
)
def test_bad_input_reports_place_and_message(
    tmp_path: Path, place: str, value: object, expected: str
) -> None:
    problems = _problems(_with(_minimal(), place, value), tmp_path)
    assert expected in problems, problems


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    doc = _minimal()
    for place, value in [
        ("orchestrator.max_parallel", True),
        ("targets.t.password", "hunter2"),
        ("policies.p.weekly", {"on": "sunday", "at": "2:00", "level": "fast"}),
        ("policies.p.targets", ["t", "nowhere"]),
        ("policies.q", {"importance": "low", "targets": ["t"], "exclud": []}),
    ]:
        doc = _with(doc, place, value)
    assert sorted(_problems(doc, tmp_path)) == sorted(
        [
            "orchestrator.max_parallel: expected an integer, got a boolean",
            "targets.t.password: must be a reference like 'secret:NAME', not a value",
            "policies.p.weekly.on: 'sunday' is not one of mon..sun",
            "policies.p.weekly.at: '2:00' is not a time of day HH:MM (00:00 to 23:59)",
            "policies.p.weekly.level: 'fast' is not one of full, differential, incremental",
            "policies.p.targets: unknown target 'nowhere' (known: t)",
            "policies.q: unknown key 'exclud'; did you mean 'exclude'?",
            "policies.q: has no sources and no database: nothing to back up",
        ]
    )


@pytest.mark.parametrize(
    "secret", ["hunter2", "correct horse battery staple", "secret:has space", "secret:p@ss/word"]
)
def test_plaintext_password_is_never_echoed(tmp_path: Path, secret: str) -> None:
    doc = _with(_minimal(), "targets.t.password", secret)
    doc = _with(doc, "policies.p.database", {"kind": "mysql", "name": "x", "password": secret})
    with pytest.raises(ConfigError) as info:
        _parse(doc, tmp_path)
    assert secret not in str(info.value)
    assert len(info.value.problems) == 2


@pytest.mark.parametrize(
    "wrong", ["text", 7, -1, 2.5, True, [1, 2], ["a"], {}, {"x": 1}, dt.date(2024, 1, 1)]
)
def test_wrong_types_anywhere_give_config_error_not_traceback(
    tmp_path: Path, wrong: object
) -> None:
    """Replace every value of the design example, one at a time: only ConfigError may escape."""
    import tomllib

    example = tomllib.loads(FIXTURE.read_text())

    def places(table: dict[str, Any], prefix: str) -> list[str]:
        found = []
        for key, value in table.items():
            found.append(prefix + key)
            if isinstance(value, dict):
                found += places(value, f"{prefix}{key}.")
        return found

    for place in places(example, ""):
        try:
            _parse(_with(example, place, wrong), tmp_path)
        except ConfigError as exc:
            assert exc.problems and all(isinstance(p, str) for p in exc.problems)
    with pytest.raises(ConfigError):
        parse_config([1, 2], tmp_path / "policies.toml")


# --------------------------------------------------------------------------- reading the file


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"[orchestrator]\nmax_parallel = \n", "line 2, column 16: invalid TOML: Invalid value"),
        (
            b'[targets.a]\nkind = "local"\nkind = "sftp"\n',
            "line 3, column 14: invalid TOML: duplicate key: a value is set twice",
        ),
        (
            b'[policies.p]\nimportance = "low"\n[policies.p]\nimportance = "high"\n',
            "line 3, column 12: invalid TOML: [policies.p] is defined twice "
            "(duplicate table or key)",
        ),
        (b'description = "open', "end of file: invalid TOML: Unterminated string"),
        (b"\xff\xfe[bad]\n", "not UTF-8 text (byte 0)"),
    ],
)
def test_unreadable_toml_is_one_problem_naming_the_file(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "policies.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [f"{path}: {expected}"]
    assert info.value.source == str(path)


@pytest.mark.parametrize("make", [lambda p: None, lambda p: p.mkdir()])
def test_missing_or_unreadable_file(tmp_path: Path, make: Callable[[Path], None]) -> None:
    path = tmp_path / "policies.toml"
    make(path)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    [problem] = info.value.problems
    assert problem.startswith(f"{path}: cannot read: ")


def test_load_config_validates_content(tmp_path: Path) -> None:
    path = tmp_path / "policies.toml"
    path.write_bytes(FIXTURE.read_bytes() + b"\n[policies.extra]\nimportance = 'low'\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert sorted(info.value.problems) == [
        "policies.extra: has no sources and no database: nothing to back up",
        "policies.extra: missing required key 'targets'",
    ]


def test_escalate_names_notify_channels(tmp_path: Path) -> None:
    """[service] escalate names [notify.NAME] channels: anything else is refused."""
    doc = _minimal()
    doc["service"] = {"escalate": ["pager", "nobody"]}
    doc["notify"] = {
        "pager": {"kind": "webhook", "url": "https://h.example/x", "secret": "secret:k"}
    }
    assert _problems(doc, tmp_path) == [
        "service.escalate[1]: 'nobody' is not a [notify.NAME] channel (known: pager)"
    ]
    del doc["service"]["escalate"][1]
    assert _parse(doc, tmp_path).service.escalate == ("pager",)
