"""POST a notice as signed JSON to a webhook (standard library only), and check such a
signature on the receiving side.

The signature header is `X-Orchestrator-Signature: sha256=<hex HMAC-SHA256 of the raw
body, keyed with the shared secret>`, as GitHub and others do it, so receivers can use
code they already have. The body carries the notice's time (`at`): a receiver that
also wants to refuse replays rejects bodies older than a few minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import socket
import ssl
import urllib.error
import urllib.request
from email.message import Message
from typing import IO
from urllib.parse import urlsplit

from orchestrator.notify.notice import Notice, NotifyError
from orchestrator.notify.routing import WebhookChannel

SIGNATURE_HEADER = "X-Orchestrator-Signature"
EVENT_HEADER = "X-Orchestrator-Event"
TICKET_HEADER = "X-Orchestrator-Ticket"
PREFIX = "sha256="
USER_AGENT = "orchestrator-notify/1"
# Rate limited or timed out on the receiver's side: worth a retry, unlike other 4xx.
RETRY_4XX = (408, 425, 429)


def sign(body: bytes, secret: str | bytes) -> str:
    """The header value for `body`: 'sha256=' and the hex HMAC-SHA256."""
    key = secret.encode() if isinstance(secret, str) else secret
    return PREFIX + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str | None, secret: str | bytes) -> bool:
    """For receivers: True when `header` (the X-Orchestrator-Signature value) is the
    signature of the raw request `body` (the bytes as received, before any JSON parsing)
    under the shared `secret`.

    The comparison takes the same time wherever the first difference is
    (hmac.compare_digest), so an attacker cannot find a valid signature byte by byte.
    A missing or malformed header is simply False."""
    if not header or not header.startswith(PREFIX):
        return False
    expected = sign(body, secret)
    return hmac.compare_digest(expected.encode(), header.strip().lower().encode("ascii", "replace"))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """urllib would turn a redirected POST into a GET without the body and report
    success; a redirect is instead an error that names the new address."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Message,
        newurl: str,
    ) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect())


def send_webhook(
    channel: WebhookChannel, notice: Notice, secret: str, timeout: float | None = None
) -> None:
    """POST the notice, signed with the resolved `secret`. 2xx is success; a timeout, a
    connection error, 5xx, 408 or 429 is a transient NotifyError; other replies are
    permanent. `timeout` bounds each connect and each read (default: the channel's)."""
    parts = urlsplit(channel.url)
    # Host only: some services put a token in the path, or user:password in the URL.
    host = f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname
    where = f"webhook channel '{channel.name}' ({parts.scheme}://{host})"
    seconds = channel.timeout if timeout is None else timeout
    body = notice.to_json().encode("utf-8")
    request = urllib.request.Request(
        channel.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(body, secret),
            EVENT_HEADER: notice.event,
            TICKET_HEADER: str(notice.ticket_id),
        },
    )
    try:
        with _OPENER.open(request, timeout=seconds) as response:
            response.read(65536)  # let the receiver finish; the reply is not used
    except urllib.error.HTTPError as exc:
        exc.close()
        raise _http_error(where, channel.name, exc.code, exc.headers.get("Location")) from None
    except urllib.error.URLError as exc:
        raise _network_error(where, channel.name, exc.reason, seconds) from None
    except (OSError, http.client.HTTPException) as exc:  # a read timed out, a reset, junk
        raise _network_error(where, channel.name, exc, seconds) from None


def _http_error(where: str, channel: str, code: int, location: str | None) -> NotifyError:
    if 300 <= code < 400:
        return NotifyError(
            f"{where}: answered {code}, a redirect to {location or 'elsewhere'}; "
            "configure the final URL (a redirected POST would lose its body)",
            channel=channel,
            transient=False,
        )
    transient = code >= 500 or code in RETRY_4XX
    hint = "will retry" if transient else "check the URL and the shared secret"
    return NotifyError(
        f"{where}: answered HTTP {code}; {hint}", channel=channel, transient=transient
    )


def _network_error(where: str, channel: str, reason: object, seconds: float) -> NotifyError:
    if isinstance(reason, ssl.SSLCertVerificationError):
        return NotifyError(
            f"{where}: the server's TLS certificate is not trusted ({reason.verify_message})",
            channel=channel,
            transient=False,
        )
    if isinstance(reason, TimeoutError | socket.timeout):
        text = f"no answer within {seconds:g} seconds"
    elif isinstance(reason, ConnectionRefusedError):
        text = "connection refused (is the receiver running?)"
    elif isinstance(reason, socket.gaierror):
        text = "the host name does not resolve"
    elif isinstance(reason, OSError):
        text = f"cannot talk to the receiver ({type(reason).__name__}: {reason.strerror or reason})"
    else:
        text = f"cannot talk to the receiver ({reason})"
    return NotifyError(f"{where}: {text}; will retry", channel=channel, transient=True)
