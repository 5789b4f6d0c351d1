"""Webhook notifications against a real HTTP receiver: the standard library's
ThreadingHTTPServer on 127.0.0.1, which checks the signature with verify_signature
exactly as a user's receiver would.

Signed delivery, a wrong secret caught by the receiver (403, permanent), a 500
(transient), a receiver that hangs past the timeout (transient, within about the
timeout), nobody listening, and a redirect (refused: urllib would drop the body).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import servers

from orchestrator.notify.notice import Notice, NotifyError
from orchestrator.notify.routing import WebhookChannel
from orchestrator.notify.webhook import send_webhook, sign, verify_signature

pytestmark = pytest.mark.integration

SECRET = "whsec-shared-Key-never-shown"
NOTICE = Notice(
    ticket_id=17,
    event="escalated",
    priority="important",
    team="ops-oncall",
    subject="ticket #17 passed its response deadline",
    body="Nobody acknowledged ticket #17 within 4 hours.",
    fields={"policy": "db-main", "fingerprint": "beef", "host": "db1"},
    at=dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC),
)


@dataclass
class Receiver:
    """What the server saw, and how it answers: `status`, or a sleep before answering."""

    port: int = 0
    status: int = 204
    delay: float = 0.0
    location: str | None = None
    received: list[dict[str, Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


@contextmanager
def receiver(secret: str = SECRET) -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            valid = verify_signature(body, self.headers.get("X-Orchestrator-Signature"), secret)
            state.received.append(
                {"body": body, "headers": dict(self.headers), "valid": valid, "path": self.path}
            )
            if state.delay:
                state.release.wait(state.delay)  # a hanging receiver; released at teardown
            status = state.status if valid else 403
            self.send_response(status)
            if state.location:
                self.send_header("Location", state.location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def channel(port: int, **changes: Any) -> WebhookChannel:
    base = WebhookChannel(
        name="chat", url=f"http://127.0.0.1:{port}/hooks/backup", secret="secret:hook", timeout=5
    )
    return replace(base, **changes)


def test_a_signed_notice_is_received_and_verified() -> None:
    with receiver() as rx:
        send_webhook(channel(rx.port), NOTICE, SECRET)
    [got] = rx.received
    assert got["valid"] is True
    assert got["path"] == "/hooks/backup"
    assert got["body"] == NOTICE.to_json().encode()
    headers = got["headers"]
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Orchestrator-Event"] == "escalated"
    assert headers["X-Orchestrator-Ticket"] == "17"
    assert headers["X-Orchestrator-Signature"] == sign(got["body"], SECRET)
    data = json.loads(got["body"])
    assert data["ticket_id"] == 17 and data["priority"] == "important"
    assert data["fields"] == {"fingerprint": "beef", "host": "db1", "policy": "db-main"}
    assert data["at"] == "2026-03-02T08:00:00Z" and data["schema"] == 1


def test_a_wrong_secret_is_refused_by_the_receiver_and_the_403_is_permanent() -> None:
    wrong = "not-" + SECRET
    with receiver() as rx, pytest.raises(NotifyError) as caught:
        send_webhook(channel(rx.port), NOTICE, wrong)
    assert rx.received[0]["valid"] is False
    err = caught.value
    assert err.transient is False and err.channel == "chat"
    assert err.message == (
        f"webhook channel 'chat' (http://127.0.0.1:{rx.port}): answered HTTP 403; "
        "check the URL and the shared secret"
    )
    shown = f"{err} {err!r} {err.args}"
    assert SECRET not in shown and wrong not in shown


@pytest.mark.parametrize(
    ("status", "transient"), [(500, True), (503, True), (429, True), (404, False)]
)
def test_server_errors_are_transient_and_client_errors_permanent(
    status: int, transient: bool
) -> None:
    with receiver() as rx:
        rx.status = status
        with pytest.raises(NotifyError, match=f"answered HTTP {status}") as caught:
            send_webhook(channel(rx.port), NOTICE, SECRET)
    assert caught.value.transient is transient


def test_a_receiver_that_hangs_is_a_transient_timeout_within_about_the_timeout() -> None:
    with receiver() as rx:
        rx.delay = 30
        started = time.monotonic()
        with pytest.raises(NotifyError) as caught:
            send_webhook(channel(rx.port), NOTICE, SECRET, timeout=1)
        took = time.monotonic() - started
    assert caught.value.transient is True
    assert "no answer within 1 seconds" in caught.value.message
    assert took < 4  # about the timeout, not the receiver's 30 s


def test_nobody_listening_is_transient() -> None:
    port = servers.free_port()
    with pytest.raises(NotifyError, match="connection refused") as caught:
        send_webhook(channel(port), NOTICE, SECRET)
    assert caught.value.transient is True


def test_a_redirect_is_not_followed_and_is_permanent() -> None:
    with receiver() as rx:
        rx.status, rx.location = 302, "http://127.0.0.1:1/elsewhere"
        with pytest.raises(
            NotifyError, match=re.escape("a redirect to http://127.0.0.1:1/elsewhere")
        ):
            send_webhook(channel(rx.port), NOTICE, SECRET)
    assert len(rx.received) == 1  # the POST was not re-sent as a GET


def test_a_token_in_the_url_stays_out_of_the_error() -> None:
    port = servers.free_port()
    url = f"http://user:pw-in-url@127.0.0.1:{port}/services/T0/B0/token-in-path?key=q"
    with pytest.raises(NotifyError) as caught:
        send_webhook(channel(port, url=url), NOTICE, SECRET)
    for secret in ("pw-in-url", "token-in-path", "key=q", SECRET):
        assert secret not in caught.value.message


VERIFY = [
    # body, header, secret, valid
    (b"{}", sign(b"{}", "k"), "k", True),
    (b"{}", sign(b"{}", "k").upper().replace("SHA256=", "sha256="), "k", True),
    (b"{}", sign(b"{}", "k"), b"k", True),
    (b"{} ", sign(b"{}", "k"), "k", False),  # body changed
    (b"{}", sign(b"{}", "k"), "K", False),  # other secret
    (b"{}", sign(b"{}", "k").removeprefix("sha256="), "k", False),  # no scheme
    (b"{}", "sha1=" + sign(b"{}", "k")[7:], "k", False),
    (b"{}", None, "k", False),
    (b"{}", "", "k", False),
    (b"{}", "sha256=zz\u00e9", "k", False),  # junk, even non-ASCII, is just False
]


@pytest.mark.parametrize(("body", "header", "secret", "valid"), VERIFY)
def test_verify_signature(
    body: bytes, header: str | None, secret: str | bytes, valid: bool
) -> None:
    assert verify_signature(body, header, secret) is valid


def test_the_receiver_code_in_the_docs_agrees_with_verify_signature() -> None:
    """docs/notifications.md shows receivers how to verify; that code must be right."""
    doc = (Path(__file__).parents[2] / "docs" / "notifications.md").read_text()
    code = doc.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    for body, header, secret, valid in VERIFY:
        key = secret.encode() if isinstance(secret, str) else secret
        assert namespace["verify"](body, header, key) is valid, (body, header)
