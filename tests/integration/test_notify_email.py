"""E-mail notifications against a real SMTP server: aiosmtpd in this process, on a free
port of 127.0.0.1, which receives and keeps the messages.

Delivery (envelope, To, Subject, body), AUTH accepted and refused (a permanent error
naming the channel, the password nowhere in it), STARTTLS with a certificate the
client trusts and one it does not, and the transient faults: nobody listening, a
server that never greets, a mailbox that says "try later".
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import servers
from conftest import require

from orchestrator.notify.email import send_email
from orchestrator.notify.notice import Notice, NotifyError
from orchestrator.notify.routing import EmailChannel

try:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword
except ImportError:  # scripts/setup.sh installs it; require() below fails under CI
    Controller = None  # type: ignore[assignment,misc]

pytestmark = pytest.mark.integration

PASSWORD = "smtp-Pa55word-never-shown"
NOTICE = Notice(
    ticket_id=42,
    event="opened",
    priority="urgent",
    team="ops-storage",
    subject="backup of web-data failed\n(injected: header)",
    body="The backup of web-data to nas failed: connection refused.",
    fields={"policy": "web-data", "target": "nas", "fingerprint": "f00d"},
    at=dt.datetime(2026, 3, 1, 12, 30, tzinfo=dt.UTC),
)


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps what it receives; `rcpt_reply` refuses recipients."""

    received: list[tuple[str, list[str], bytes, Any]] = field(default_factory=list)
    rcpt_reply: str | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        login = session.auth_data.login.decode() if session.authenticated else None
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content, login))
        return "250 Message accepted for delivery"


def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:  # type: ignore[no-untyped-def]
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"backup",
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


@contextmanager
def smtp_server(**smtp: Any) -> Iterator[tuple[int, Inbox]]:
    require(Controller is not None, "aiosmtpd (scripts/setup.sh installs the test extras)")
    inbox = Inbox()
    port = servers.free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **smtp)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


def channel(port: int, **changes: Any) -> EmailChannel:
    base = EmailChannel(
        name="ops-mail",
        to=("ops@example.net", "oncall@example.net"),
        sender="backup@example.net",
        host="127.0.0.1",
        port=port,
        starttls=False,
        timeout=5,
    )
    return replace(base, **changes)


def parsed(content: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(content, policy=email.policy.default)  # type: ignore[return-value]


def test_the_mail_arrives_with_recipients_subject_body_and_fields() -> None:
    with smtp_server() as (port, inbox):
        send_email(channel(port), NOTICE, password=None)
    [(mail_from, rcpt, content, login)] = inbox.received
    assert mail_from == "backup@example.net"
    assert rcpt == ["ops@example.net", "oncall@example.net"]
    assert login is None
    msg = parsed(content)
    assert msg["To"] == "ops@example.net, oncall@example.net"
    assert msg["From"] == "backup@example.net"
    # The line break in the subject did not start a header of its own.
    assert msg["Subject"] == "[urgent] #42 backup of web-data failed (injected: header)"
    assert msg["injected"] is None
    assert msg["X-Orchestrator-Event"] == "opened"
    assert msg["X-Orchestrator-Ticket"] == "42"
    assert msg["References"] == "<ticket-42@example.net>"
    body = msg.get_content().replace("\r\n", "\n")
    assert body.startswith("The backup of web-data to nas failed: connection refused.\n")
    assert "fingerprint: f00d\npolicy: web-data\ntarget: nas\n" in body
    assert "team: ops-storage" in body and "at: 2026-03-01 12:30:00 UTC" in body


def test_auth_with_the_right_password_delivers() -> None:
    with smtp_server(authenticator=authenticator, auth_require_tls=False) as (port, inbox):
        send_email(channel(port, user="backup", password="secret:smtp"), NOTICE, PASSWORD)
    [(_, _, _, login)] = inbox.received
    assert login == "backup"


def test_a_wrong_password_is_permanent_names_the_channel_and_never_shows_the_password() -> None:
    wrong = "Wr0ng-" + PASSWORD
    with (
        smtp_server(authenticator=authenticator, auth_require_tls=False) as (port, inbox),
        pytest.raises(NotifyError) as caught,
    ):
        send_email(channel(port, user="backup", password="secret:smtp"), NOTICE, wrong)
    assert inbox.received == []
    err = caught.value
    assert err.transient is False and err.channel == "ops-mail"
    assert "e-mail channel 'ops-mail'" in err.message
    assert "refused the login of user 'backup'" in err.message and "535" in err.message
    assert "secret:smtp" in err.message  # which secret to check, by name
    shown = f"{err} {err!r} {err.args} {err.__cause__!r}"
    assert wrong not in shown and PASSWORD not in shown


def test_a_user_without_a_resolved_password_is_refused_before_connecting() -> None:
    with pytest.raises(NotifyError, match="no password was given") as caught:
        send_email(channel(1, user="backup", password="secret:smtp"), NOTICE, None)
    assert caught.value.transient is False


def test_nobody_listening_is_transient() -> None:
    port = servers.free_port()
    with pytest.raises(NotifyError) as caught:
        send_email(channel(port), NOTICE, password=None)
    assert caught.value.transient is True
    assert caught.value.message == (
        f"e-mail channel 'ops-mail' (127.0.0.1:{port}): connection refused "
        "(is the server running?); will retry"
    )


def test_a_server_that_never_greets_is_a_transient_timeout_within_the_timeout() -> None:
    with socket.socket() as silent:  # accepts the connection (backlog), never says 220
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(NotifyError) as caught:
            send_email(channel(port), NOTICE, password=None, timeout=1)
        took = time.monotonic() - started
    assert caught.value.transient is True
    assert "no answer within 1 seconds" in caught.value.message
    assert took < 4


@pytest.mark.parametrize(
    ("reply", "transient"),
    [("450 4.2.1 Mailbox busy, try later", True), ("550 5.1.1 No such user", False)],
)
def test_refused_recipients_are_transient_on_4xx_and_permanent_on_5xx(
    reply: str, transient: bool
) -> None:
    with smtp_server() as (port, inbox):
        inbox.rcpt_reply = reply
        with pytest.raises(NotifyError) as caught:
            send_email(channel(port), NOTICE, password=None)
    assert caught.value.transient is transient
    assert "refused the recipients oncall@example.net, ops@example.net" in caught.value.message


def test_starttls_configured_but_not_offered_is_permanent() -> None:
    with (
        smtp_server() as (port, inbox),
        pytest.raises(NotifyError, match="does not offer STARTTLS") as caught,
    ):
        send_email(channel(port, starttls=True), NOTICE, password=None)
    assert caught.value.transient is False and inbox.received == []


# --------------------------------------------------------------------------- STARTTLS


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (IP SAN), as a CA file the client can be told to trust."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "smtp.crt", directory / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def tls_context(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    cert_file, key_file = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file


def test_starttls_then_auth_with_a_trusted_certificate(
    tls_context: tuple[ssl.SSLContext, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    context, cert_file = tls_context
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))  # the client's trust store
    tls = {"tls_context": context, "require_starttls": True, "authenticator": authenticator}
    with smtp_server(**tls) as (port, inbox):
        send_email(channel(port, starttls=True, user="backup"), NOTICE, PASSWORD)
    [(_, _, content, login)] = inbox.received
    assert login == "backup" and parsed(content)["X-Orchestrator-Priority"] == "urgent"


def test_starttls_with_an_untrusted_certificate_is_permanent(
    tls_context: tuple[ssl.SSLContext, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    context, _ = tls_context
    (tmp_path / "other").mkdir()
    other, _ = self_signed(tmp_path / "other")
    monkeypatch.setenv("SSL_CERT_FILE", str(other))  # trusts a different certificate
    tls = {"tls_context": context, "require_starttls": True, "authenticator": authenticator}
    with (
        smtp_server(**tls) as (port, inbox),
        pytest.raises(NotifyError, match="TLS certificate is not trusted") as caught,
    ):
        send_email(channel(port, starttls=True, user="backup"), NOTICE, PASSWORD)
    assert caught.value.transient is False and inbox.received == []
    assert PASSWORD not in str(caught.value)
