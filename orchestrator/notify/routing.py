"""The `[notify.NAME]` tables of policies.toml, and which channels hear a notice (pure).

Secrets stay `secret:NAME` references here; the caller resolves them just before
sending, so a parsed config can be printed, compared and logged without leaking one.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.notify.notice import EVENTS, PRIORITIES, Notice
from orchestrator.policies import values
from orchestrator.policies.tables import Table
from orchestrator.policies.values import Invalid

KINDS = ("email", "webhook", "rt")
MAX_TIMEOUT = 300  # seconds: a notifier must never hold the daemon's pass for long
DEFAULT_TIMEOUT = 10
_FILTERS = ("kind", "priorities", "teams", "events", "timeout")
EMAIL_KEYS = (*_FILTERS, "to", "from", "server", "starttls", "user", "password")
WEBHOOK_KEYS = (*_FILTERS, "url", "secret")
RT_KEYS = (*_FILTERS, "url", "queue", "token", "requestor")
_ADDRESS = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\".]+")
_SERVER = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.-]+))(?::(?P<port>\d+))?")


@dataclass(frozen=True, kw_only=True)
class Channel:
    """A named destination. An empty filter tuple means "all"."""

    name: str
    priorities: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT

    @property
    def kind(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class EmailChannel(Channel):
    to: tuple[str, ...]
    sender: str  # `from` in the file
    host: str
    port: int
    starttls: bool = True
    user: str = ""
    password: str = ""  # a secret:NAME reference, or "" when there is no AUTH

    @property
    def kind(self) -> str:
        return "email"


@dataclass(frozen=True, kw_only=True)
class WebhookChannel(Channel):
    url: str
    secret: str  # a secret:NAME reference to the HMAC-SHA256 key

    @property
    def kind(self) -> str:
        return "webhook"


@dataclass(frozen=True, kw_only=True)
class RTChannel(Channel):
    """A Request Tracker 5 queue mirroring the tickets (notify/rt.py)."""

    url: str
    queue: str
    token: str  # a secret:NAME reference to the REST 2 auth token
    requestor: str = ""  # the RT user or address RT's SLA counts as the requestor

    @property
    def kind(self) -> str:
        return "rt"


def hears(channel: Channel, notice: Notice) -> bool:
    """A notice with no team reaches only channels that do not filter on teams."""
    return (
        (not channel.priorities or notice.priority in channel.priorities)
        and (not channel.teams or notice.team in channel.teams)
        and (not channel.events or notice.event in channel.events)
    )


def channels_for(notice: Notice, channels: Sequence[Channel]) -> list[Channel]:
    """The channels that hear `notice`, in configured order."""
    return [c for c in channels if hears(c, notice)]


# --------------------------------------------------------------------------- parsing


def parse_channels(
    raw: Mapping[str, object], problems: list[str], where: str = "notify"
) -> list[Channel]:
    """`raw` is the `[notify]` table (name -> channel table). Every problem is appended to
    `problems` as one sentence with its place; a channel with problems is left out."""
    channels: list[Channel] = []
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: expected a table of channels, got {values.kind_of(raw)}")
        return channels
    for name, body in raw.items():
        before = len(problems)
        table = Table(body, f"{where}.{name}", problems)
        if not values.NAME.fullmatch(name):
            table.report("", "name must start with a letter or digit and hold only A-Z a-z 0-9 _ -")
        if not table.ok:
            continue
        channel = _channel(table, name)
        if channel is not None and len(problems) == before:
            channels.append(channel)
    return channels


def _channel(table: Table, name: str) -> Channel | None:
    kind = table.need("kind", values.one_of(KINDS))
    if kind is None:
        return None
    table.check_keys({"email": EMAIL_KEYS, "webhook": WEBHOOK_KEYS, "rt": RT_KEYS}[kind])
    common = {
        "name": name,
        "priorities": table.get_or("priorities", _choices(PRIORITIES), ()),
        "teams": table.get_or("teams", values.list_of(values.nonempty_string, nonempty=True), ()),
        "events": table.get_or("events", _choices(EVENTS), ()),
        "timeout": table.get_or("timeout", _timeout, DEFAULT_TIMEOUT),
    }
    if kind == "rt":
        return _rt(table, common)
    return _email(table, common) if kind == "email" else _webhook(table, common)


def _email(table: Table, common: dict[str, Any]) -> EmailChannel | None:
    to = table.need("to", values.list_of(address, nonempty=True))
    sender = table.need("from", address)
    server = table.need("server", _server)
    starttls = table.get_or("starttls", values.boolean, True)
    user = table.get_or("user", _header_safe, "")
    password = table.get_or("password", _secret("password"), "")
    if user and "password" not in table.data:
        table.report("", "'user' is set but 'password' is not: give password = 'secret:NAME'")
    if "password" in table.data and not user:
        table.report("", "'password' is set but 'user' is not: AUTH needs both")
    if user and server and not starttls and not _loopback(server[0]):
        table.report(
            "starttls",
            f"AUTH without STARTTLS would send the password in clear to {server[0]}: "
            "set starttls = true (plain AUTH is allowed only on a loopback address)",
        )
    if to is None or sender is None or server is None:
        return None
    host, port = server
    if port is None:
        port = 587 if starttls else 25
    return EmailChannel(
        **common, to=to, sender=sender, host=host, port=port, starttls=starttls, user=user,
        password=password,
    )  # fmt: skip


def _webhook(table: Table, common: dict[str, Any]) -> WebhookChannel | None:
    url = table.need("url", _url)
    secret = table.need("secret", _secret("secret"))
    if url is None or secret is None:
        return None
    return WebhookChannel(**common, url=url, secret=secret)


def _rt(table: Table, common: dict[str, Any]) -> RTChannel | None:
    url = table.need("url", _url)
    queue = table.need("queue", _header_safe)
    token = table.need("token", _secret("token"))
    requestor = table.get_or("requestor", _header_safe, "")
    if url is not None and not url.startswith(("http://", "https://")):
        table.report("url", "Request Tracker's URL must start with http:// or https://")
        return None
    if url is None or queue is None or token is None:
        return None
    return RTChannel(**common, url=url, queue=queue, token=token, requestor=requestor)


# --------------------------------------------------------------------------- converters


def _choices(choices: tuple[str, ...]) -> values.Conv[tuple[str, ...]]:
    return values.list_of(values.one_of(choices), nonempty=True)


def _timeout(value: object) -> int:
    seconds = values.timeout_seconds(value)
    if seconds > MAX_TIMEOUT:
        raise Invalid(f"{seconds} seconds is too long for a notification: at most {MAX_TIMEOUT}")
    return seconds


def _header_safe(value: object) -> str:
    text = values.nonempty_string(value)
    if any(c in text for c in "\r\n\x00"):
        raise Invalid("must be one line (no line breaks)")
    return text


def address(value: object) -> str:
    """A bare e-mail address: one line, so it cannot inject a header."""
    text = values.string(value).strip()
    if not _ADDRESS.fullmatch(text):
        raise Invalid(f"'{text!s:.80}' is not an e-mail address like ops@example.net")
    return text


def _server(value: object) -> tuple[str, int | None]:
    text = values.nonempty_string(value).strip()
    match = _SERVER.fullmatch(text)
    if not match:
        raise Invalid(f"'{text:.80}' is not a server like smtp.example.net:587")
    port = int(match["port"]) if match["port"] else None
    if port is not None:
        values.port(port)
    return match["v6"] or match["host"], port


def _url(value: object) -> str:
    text = values.url(value)
    if any(c in text for c in " \r\n\x00"):
        raise Invalid("a URL must not hold spaces or line breaks")
    return text


def _secret(key: str) -> values.Conv[str]:
    """A secret:NAME reference. A plain value is refused and never repeated back."""

    def conv(value: object) -> str:
        text = values.string(value)
        if not text.startswith("secret:"):
            raise Invalid(
                f"a {key} must not be written in the file: store it with "
                f"`orchestrator secrets set NAME` and write {key} = 'secret:NAME'"
            )
        return values.secret_ref(text)

    return conv


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
