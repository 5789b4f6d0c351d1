"""The RT client's pure parts: TicketSQL quoting and what its messages may show."""

from __future__ import annotations

import pytest

from orchestrator.notify.rt import RTClient, ticketsql_string

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("plain", "'plain'"),
        ("", "''"),
        ("it's", "'it\\'s'"),
        ("back\\slash", "'back\\\\slash'"),
        ("\\'", "'\\\\\\''"),  # a backslash and a quote: both escaped, the string still ends
        ('double "quotes"', "'double \"quotes\"'"),
        ("x' OR 'a' = 'a", "'x\\' OR \\'a\\' = \\'a'"),
    ],
)
def test_ticketsql_string_escapes_backslashes_and_quotes(value: str, quoted: str) -> None:
    assert ticketsql_string(value) == quoted


def test_repr_and_messages_name_the_url_without_token_or_password() -> None:
    token = "1-14-0123456789abcdef0123456789abcdef"
    client = RTClient("https://bot:hunter2@rt.example.org/rt/", token, "Backups")
    assert repr(client) == "RTClient(url='https://rt.example.org/rt', queue='Backups')"
    assert token not in repr(client) and "hunter2" not in repr(client)
    message = str(client._error("reading ticket 1", "HTTP 500", True))
    assert message == (
        "Request Tracker at https://rt.example.org/rt (queue Backups): "
        "reading ticket 1 failed: HTTP 500"
    )


def test_a_url_without_http_scheme_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="must start with http"):
        RTClient("rt.example.org", "token", "Backups")
