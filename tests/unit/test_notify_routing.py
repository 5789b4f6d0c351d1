"""Notification routing and the `[notify.NAME]` tables: which channel hears which
notice, and every problem of a bad table reported with its place."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime

import pytest

from orchestrator.notify.notice import Notice
from orchestrator.notify.routing import (
    EmailChannel,
    WebhookChannel,
    channels_for,
    parse_channels,
)

pytestmark = pytest.mark.unit

EXAMPLE = """
[notify.ops-mail]
kind = "email"
to = ["ops@example.net"]
from = "backup@example.net"
server = "smtp.example.net:587"
starttls = true
user = "backup"
password = "secret:smtp-password"
priorities = ["urgent", "important"]

[notify.chat]
kind = "webhook"
url = "https://hooks.example.net/backup"
secret = "secret:webhook-key"
timeout = "10s"
"""


def notice(priority: str = "urgent", team: str = "ops", event: str = "opened") -> Notice:
    return Notice(
        ticket_id=7,
        event=event,
        priority=priority,
        team=team,
        subject="backup failed",
        body="web-data failed",
        fields={"policy": "web-data"},
        at=datetime(2026, 3, 1, 12, tzinfo=UTC),
    )


def parse(text: str) -> tuple[list, list[str]]:
    problems: list[str] = []
    channels = parse_channels(tomllib.loads(text).get("notify", {}), problems)
    return channels, problems


def test_the_example_parses_with_secrets_kept_as_references() -> None:
    channels, problems = parse(EXAMPLE)
    assert problems == []
    mail, chat = channels
    assert mail == EmailChannel(
        name="ops-mail",
        priorities=("urgent", "important"),
        to=("ops@example.net",),
        sender="backup@example.net",
        host="smtp.example.net",
        port=587,
        starttls=True,
        user="backup",
        password="secret:smtp-password",
    )
    assert chat == WebhookChannel(
        name="chat", url="https://hooks.example.net/backup", secret="secret:webhook-key", timeout=10
    )
    assert (mail.kind, chat.kind) == ("email", "webhook")


ROUTES = [
    # priorities, teams, events, notice(priority, team, event), heard
    ((), (), (), ("general", "", "opened"), True),
    (("urgent",), (), (), ("urgent", "ops", "opened"), True),
    (("urgent",), (), (), ("important", "ops", "opened"), False),
    (("urgent", "important"), (), (), ("important", "ops", "opened"), True),
    ((), ("ops",), (), ("general", "ops", "opened"), True),
    ((), ("ops",), (), ("general", "secops", "opened"), False),
    ((), ("ops",), (), ("general", "", "opened"), False),  # unassigned: no team filter hit
    ((), (), ("escalated",), ("urgent", "ops", "opened"), False),
    ((), (), ("escalated",), ("urgent", "ops", "escalated"), True),
    (("urgent",), ("ops",), ("opened",), ("urgent", "ops", "opened"), True),
    (("urgent",), ("ops",), ("opened",), ("urgent", "dba", "opened"), False),
]


@pytest.mark.parametrize(("priorities", "teams", "events", "n", "heard"), ROUTES)
def test_channels_for_filters_by_priority_team_and_event(
    priorities: tuple, teams: tuple, events: tuple, n: tuple, heard: bool
) -> None:
    channel = WebhookChannel(
        name="c", url="https://x.example/", secret="secret:k",
        priorities=priorities, teams=teams, events=events,
    )  # fmt: skip
    assert channels_for(notice(*n), [channel]) == ([channel] if heard else [])


def test_channels_for_keeps_the_configured_order() -> None:
    channels, _ = parse(EXAMPLE)
    assert [c.name for c in channels_for(notice("urgent"), channels)] == ["ops-mail", "chat"]
    assert [c.name for c in channels_for(notice("general"), channels)] == ["chat"]


BAD = [
    # (table body, expected problem), each on its own channel [notify.c]
    ('kind = "pager"', "notify.c.kind: 'pager' is not one of email, webhook"),
    ('url = "https://x.example/"', "notify.c: missing required key 'kind'"),
    (
        'kind = "webhook"\nurl = "ftp://x.example/"\nsecret = "secret:k"',
        "notify.c.url: 'ftp://x.example/' is not an http:// or https:// URL",
    ),
    ('kind = "webhook"\nsecret = "secret:k"', "notify.c: missing required key 'url'"),
    ('kind = "webhook"\nurl = "https://x.example/"', "notify.c: missing required key 'secret'"),
    (
        'kind = "webhook"\nurl = "https://x.example/"\nsecret = "secret:k"\nsecrte = 1',
        "notify.c: unknown key 'secrte'; did you mean 'secret'?",
    ),
    (
        'kind = "webhook"\nurl = "https://x.example/"\nsecret = "secret:k"\nto = ["a@b.example"]',
        "notify.c: unknown key 'to'",
    ),
    (
        'kind = "webhook"\nurl = "https://x.example/"\nsecret = "secret:k"\ntimeout = "1h"',
        "notify.c.timeout: 3600 seconds is too long for a notification: at most 300",
    ),
    (
        'kind = "webhook"\nurl = "https://x.example/"\nsecret = "secret:k"\npriorities = ["high"]',
        "notify.c.priorities[0]: 'high' is not one of urgent, important, general",
    ),
    (
        'kind = "webhook"\nurl = "https://x.example/"\nsecret = "secret:k"\nevents = ["opend"]',
        "notify.c.events[0]: 'opend' is not one of",
    ),
    (
        'kind = "webhook"\nurl = "https://x.example/"\nsecret = "secret:k"\nteams = []',
        "notify.c.teams: must not be empty",
    ),
    (
        'kind = "email"\nto = ["ops"]\nfrom = "b@x.example"\nserver = "smtp.x.example"',
        "notify.c.to[0]: 'ops' is not an e-mail address",
    ),
    (
        'kind = "email"\nto = ["a@x.example"]\nfrom = "b@x.example"\nserver = "smtp:x:1"',
        "notify.c.server: 'smtp:x:1' is not a server like smtp.example.net:587",
    ),
    (
        'kind = "email"\nto = ["a@x.example"]\nfrom = "b@x.example"\nserver = "s.x:70000"',
        "notify.c.server: 70000 is out of range",
    ),
    (
        'kind = "email"\nto = ["a@x.example"]\nfrom = "b@x.example"\nserver = "s.x.example"\n'
        'user = "u"\npassword = "secret:p"\nstarttls = false',
        "notify.c.starttls: AUTH without STARTTLS would send the password in clear",
    ),
    (
        'kind = "email"\nto = ["a@x.example"]\nfrom = "b@x.example"\nserver = "s.x.example"\n'
        'user = "u"',
        "notify.c: 'user' is set but 'password' is not",
    ),
    (
        'kind = "email"\nto = ["a@x.example"]\nfrom = "b@x.example"\nserver = "s.x.example"\n'
        'password = "secret:p"',
        "notify.c: 'password' is set but 'user' is not",
    ),
    ("kind = 3", "notify.c.kind: expected a string, got an integer"),
]


@pytest.mark.parametrize(("body", "expected"), BAD)
def test_a_bad_channel_is_one_problem_with_its_place(body: str, expected: str) -> None:
    channels, problems = parse(f"[notify.c]\n{body}\n")
    assert channels == []
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems


def test_a_plain_password_or_key_is_refused_and_never_repeated() -> None:
    text = """
[notify.m]
kind = "email"
to = ["a@x.example"]
from = "b@x.example"
server = "127.0.0.1:2525"
starttls = false
user = "u"
password = "hunter2-plain"
[notify.w]
kind = "webhook"
url = "https://x.example/"
secret = "s3cr3t-plain-key"
"""
    channels, problems = parse(text)
    assert channels == []
    assert [p.split(":")[0] for p in problems] == ["notify.m.password", "notify.w.secret"]
    assert "secret:NAME" in problems[0] and "secret:NAME" in problems[1]
    assert "hunter2" not in "".join(problems) and "s3cr3t" not in "".join(problems)


def test_every_problem_of_every_channel_is_reported_in_one_pass() -> None:
    text = """
[notify.a]
kind = "webhook"
[notify."bad name"]
kind = "email"
[notify.c]
kind = "email"
to = "ops@x.example"
from = "nobody"
server = "s.x.example"
"""
    channels, problems = parse(text)
    assert channels == []
    assert problems == [
        "notify.a: missing required key 'url'",
        "notify.a: missing required key 'secret'",
        "notify.bad name: name must start with a letter or digit and hold only A-Z a-z 0-9 _ -",
        "notify.bad name: missing required key 'to'",
        "notify.bad name: missing required key 'from'",
        "notify.bad name: missing required key 'server'",
        "notify.c.to: expected an array, got a string",
        "notify.c.from: 'nobody' is not an e-mail address like ops@example.net",
    ]


def test_server_ports_default_by_starttls_and_plain_auth_is_allowed_on_loopback() -> None:
    text = """
[notify.a]
kind = "email"
to = ["a@x.example"]
from = "b@x.example"
server = "smtp.x.example"
[notify.b]
kind = "email"
to = ["a@x.example"]
from = "b@x.example"
server = "smtp.x.example"
starttls = false
[notify.c]
kind = "email"
to = ["a@x.example"]
from = "b@x.example"
server = "[::1]:2525"
starttls = false
user = "u"
password = "secret:p"
"""
    channels, problems = parse(text)
    assert problems == []
    assert [(c.host, c.port, c.starttls) for c in channels] == [
        ("smtp.x.example", 587, True),
        ("smtp.x.example", 25, False),
        ("::1", 2525, False),
    ]


def test_a_notify_value_that_is_not_a_table() -> None:
    problems: list[str] = []
    assert parse_channels(["x"], problems, where="service.notify") == []  # type: ignore[arg-type]
    assert problems == ["service.notify: expected a table of channels, got an array"]
    problems = []
    assert parse_channels({"a": "x"}, problems) == []
    assert problems == ["notify.a: expected a table, got a string"]


def test_notice_json_is_stable_and_sorted() -> None:
    a = notice()
    text = a.to_json()
    assert text == notice().to_json()
    assert text.startswith('{"at":"2026-03-01T12:00:00Z","body":"web-data failed","event":"opened"')
    assert '"fields":{"policy":"web-data"}' in text and '"schema":1' in text


def test_notice_refuses_naive_times_and_unknown_priorities_and_freezes_fields() -> None:
    with pytest.raises(ValueError, match="aware"):
        Notice(1, "opened", "urgent", "", "s", "b", {}, datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="priority"):
        Notice(1, "opened", "high", "", "s", "b", {}, datetime(2026, 1, 1, tzinfo=UTC))
    fields = {"policy": "a"}
    n = Notice(1, "opened", "urgent", "", "s", "b", fields, datetime(2026, 1, 1, tzinfo=UTC))
    fields["policy"] = "b"
    assert n.fields["policy"] == "a"
    with pytest.raises(TypeError):
        n.fields["policy"] = "c"  # type: ignore[index]
