"""Send a notice as e-mail over SMTP (standard library only), with STARTTLS and AUTH.

Every failure becomes a NotifyError naming the channel, marked transient (server down,
timeout, 4xx reply: the outbox retries) or permanent (5xx reply, refused login, no
STARTTLS offered: retrying cannot help). The password never reaches a message.
"""

from __future__ import annotations

import base64
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from orchestrator.notify.notice import Notice, NotifyError
from orchestrator.notify.routing import EmailChannel


def render(channel: EmailChannel, notice: Notice) -> EmailMessage:
    """The message: a subject that sorts by priority and ticket, the body, then the
    fields, and a References header so a mail client threads one ticket's mails."""
    domain = channel.sender.rpartition("@")[2]
    msg = EmailMessage()
    msg["From"] = channel.sender
    msg["To"] = ", ".join(channel.to)
    msg["Subject"] = one_line(f"[{notice.priority}] #{notice.ticket_id} {notice.subject}")
    msg["Date"] = format_datetime(notice.at)
    msg["Message-ID"] = make_msgid(f"ticket-{notice.ticket_id}", domain=domain)
    msg["References"] = f"<ticket-{notice.ticket_id}@{domain}>"
    msg["X-Orchestrator-Ticket"] = str(notice.ticket_id)
    msg["X-Orchestrator-Event"] = one_line(notice.event)
    msg["X-Orchestrator-Priority"] = notice.priority
    lines = [notice.body.rstrip(), ""]
    lines += [f"{key}: {notice.fields[key]}" for key in sorted(notice.fields)]
    lines += [
        f"event: {notice.event}",
        f"team: {notice.team or '(none)'}",
        f"at: {notice.at:%Y-%m-%d %H:%M:%S} UTC",
    ]
    msg.set_content("\n".join(lines) + "\n")
    return msg


def one_line(text: str) -> str:
    """Header values are one line: a line break in a subject must not start a new header."""
    return " ".join(text.split())


def send_email(
    channel: EmailChannel, notice: Notice, password: str | None, timeout: float | None = None
) -> None:
    """Deliver `notice` to the channel's recipients. `password` is the resolved secret
    (None when the channel has no user). Raises NotifyError."""
    where = f"e-mail channel '{channel.name}' ({channel.host}:{channel.port})"
    if channel.user and not password:
        raise NotifyError(
            f"{where}: user '{channel.user}' is set but no password was given "
            f"(resolve {channel.password or 'the password secret'} first)",
            channel=channel.name,
            transient=False,
        )
    message = render(channel, notice)
    seconds = channel.timeout if timeout is None else timeout
    try:
        with smtplib.SMTP(channel.host, channel.port, timeout=seconds) as smtp:
            smtp.ehlo()
            if channel.starttls:
                if not smtp.has_extn("starttls"):
                    raise NotifyError(
                        f"{where}: the server does not offer STARTTLS; set starttls = false "
                        "only for a relay on this host",
                        channel=channel.name,
                        transient=False,
                    )
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if channel.user:
                smtp.login(channel.user, password or "")
            smtp.send_message(message, from_addr=channel.sender, to_addrs=list(channel.to))
    except NotifyError:
        raise
    except smtplib.SMTPAuthenticationError as exc:
        text = _reply(exc.smtp_code, exc.smtp_error, password)
        raise NotifyError(
            f"{where}: the server refused the login of user '{channel.user}' ({text}); "
            f"check the secret {channel.password}",
            channel=channel.name,
            transient=exc.smtp_code < 500,
        ) from None
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        refused = ", ".join(sorted(exc.recipients))
        raise NotifyError(
            f"{where}: the server refused the recipients {refused} "
            f"(replies {', '.join(str(c) for c in codes)})",
            channel=channel.name,
            transient=all(400 <= c < 500 for c in codes),
        ) from None
    except smtplib.SMTPResponseException as exc:  # sender refused, data refused, ...
        text = _reply(exc.smtp_code, exc.smtp_error, password)
        raise NotifyError(
            f"{where}: the server refused the message ({text})",
            channel=channel.name,
            transient=400 <= exc.smtp_code < 500,
        ) from None
    except smtplib.SMTPNotSupportedError:
        raise NotifyError(
            f"{where}: the server does not support AUTH; remove user and password, or use "
            "a server that accepts logins",
            channel=channel.name,
            transient=False,
        ) from None
    except ssl.SSLCertVerificationError as exc:  # before OSError: it is one
        raise NotifyError(
            f"{where}: the server's TLS certificate is not trusted ({exc.verify_message})",
            channel=channel.name,
            transient=False,
        ) from None
    except (TimeoutError, smtplib.SMTPServerDisconnected, OSError, smtplib.SMTPException) as exc:
        raise NotifyError(
            f"{where}: {_network(exc, seconds)}; will retry",
            channel=channel.name,
            transient=True,
        ) from None


def _network(exc: BaseException, seconds: float) -> str:
    # smtplib turns a read that timed out into SMTPServerDisconnected; the cause tells.
    if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
        return f"no answer within {seconds:g} seconds"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running?)"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return "the server closed the connection"
    if isinstance(exc, OSError):
        return f"cannot talk to the server ({type(exc).__name__}: {exc.strerror or exc})"
    return f"SMTP error ({type(exc).__name__})"


def _reply(code: int, error: bytes | str, password: str | None) -> str:
    """The server's reply, one line, with the password (plain or base64) scrubbed out."""
    text = error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
    text = one_line(text)[:200]
    if password:
        for form in (password, base64.b64encode(password.encode()).decode()):
            text = text.replace(form, "***")
    return f"{code} {text}"
