"""A client for Request Tracker 5's REST 2 API: the orchestrator's tickets mirrored to an RT queue.

One RT ticket per problem: each carries the problem's fingerprint in the queue's
`Fingerprint` custom field, so `find_open` finds the open ticket a repeat belongs to. The
ticket's SLA level is set from the orchestrator's priority so that RT's own
`%ServiceAgreements` keeps the response deadline (docs/request-tracker.md says what an RT
administrator sets up).

Only the standard library (urllib), so the connector adds no dependency. Every failure is
an `RTError` that says whether retrying can help (`transient`): the notification outbox
retries transient failures and shows permanent ones. The token is sent in the
`Authorization` header only and appears in no message, repr or log.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

FINGERPRINT_FIELD = "Fingerprint"
# The orchestrator's priorities and the RT SLA level each maps to, by default the same names
# (the levels docs/request-tracker.md asks an RT administrator to define).
DEFAULT_SLA_LEVELS: Mapping[str, str] = {
    "urgent": "urgent",
    "important": "important",
    "general": "general",
}
# RT writes an unset date as the epoch.
_UNSET_DATE = "1970-01-01T00:00:00Z"


class RTError(Exception):
    """A request to RT failed; `transient` says whether the same request may work later."""

    def __init__(self, message: str, transient: bool) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: urllib would send the Authorization header (the token) on to
    wherever RT's answer points, and a redirect means the configured URL is wrong anyway."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def ticketsql_string(value: str) -> str:
    """`value` as a quoted TicketSQL string: RT's parser (RT::SQL, Regexp::Common's
    delimited strings) ends a string at an unescaped quote and drops the backslash of every
    escaped character, so backslashes and quotes are escaped and nothing else is needed."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class RTClient:
    """Tickets in one RT queue over REST 2, authenticated with an RT auth token."""

    def __init__(
        self,
        url: str,
        token: str,
        queue: str,
        timeout: float = 10,
        sla_levels: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        if urllib.parse.urlsplit(self.url).scheme not in ("http", "https"):
            raise ValueError("the Request Tracker URL must start with http:// or https://")
        self.queue = queue
        self.timeout = timeout
        self.sla_levels = dict(DEFAULT_SLA_LEVELS if sla_levels is None else sla_levels)
        self.__token = token  # name-mangled and left out of repr: it must never be printed
        self._queue_sla_enabled: bool | None = None
        self._opener = urllib.request.build_opener(_NoRedirect)
        parts = urllib.parse.urlsplit(self.url)
        # What messages name: the URL without any user:password part.
        self._shown_url = urllib.parse.urlunsplit(
            (parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", "")
        )

    def __repr__(self) -> str:
        return f"RTClient(url={self._shown_url!r}, queue={self.queue!r})"

    # -- tickets --------------------------------------------------------------------------

    def create(
        self,
        subject: str,
        text: str,
        fingerprint: str,
        priority: str,
        requestor: str | None = None,
    ) -> int:
        """Open a ticket for a problem; returns its number.

        RT's SLA sets the ticket's Due date from its `Response` time only when the ticket
        was written by an outside actor, by default a Requestor: pass the RT user the token
        belongs to (or an address) as `requestor` for RT to keep the response clock.
        Call `find_open` first, also when retrying: a create that timed out may have
        created the ticket all the same."""
        if priority not in self.sla_levels:
            known = ", ".join(sorted(self.sla_levels))
            raise ValueError(f"priority {priority!r} has no RT SLA level (known: {known})")
        action = "creating a ticket"
        body: dict[str, Any] = {
            "Queue": self.queue,
            "Subject": subject,
            "Content": text,
            "ContentType": "text/plain",
            "CustomFields": {FINGERPRINT_FIELD: fingerprint},
        }
        if self._sla_enabled(action):
            body["SLA"] = self.sla_levels[priority]
        if requestor:
            body["Requestor"] = requestor
        answer = self._request("POST", "/ticket", action, body)
        try:
            ticket_id = int(answer["id"])
        except (KeyError, TypeError, ValueError):
            raise self._error(action, "RT's answer carried no ticket number", False) from None
        # RT drops a custom field value the user may not set without a word; a ticket
        # without its fingerprint is never found again, so every repeat would open another.
        if self.get(ticket_id)["CustomFields"].get(FINGERPRINT_FIELD) != fingerprint:
            raise self._error(
                action,
                f"RT created ticket {ticket_id} without its {FINGERPRINT_FIELD} value "
                "(the token's user needs the right 'Modify custom field values' on the queue)",
                False,
            )
        return ticket_id

    def find_open(self, fingerprint: str) -> int | None:
        """The open (new, open or stalled) ticket with this fingerprint, the oldest if RT
        has several; None when there is none.

        RT compares custom field values without regard to case, so the values RT returns
        are compared exactly here: fingerprints differing in case are different problems."""
        query = (
            f"'CF.{{{FINGERPRINT_FIELD}}}' = {ticketsql_string(fingerprint)}"
            " AND Status = '__Active__'"
        )
        params = urllib.parse.urlencode(
            {
                "query": query,
                "orderby": "id",
                "order": "ASC",
                "per_page": "100",
                "fields": "CustomFields",
            }
        )
        answer = self._request("GET", f"/tickets?{params}", "searching for the open ticket")
        items = answer.get("items") if isinstance(answer, dict) else None
        for item in items or []:
            for cf in item.get("CustomFields") or []:
                if cf.get("name") == FINGERPRINT_FIELD and fingerprint in (cf.get("values") or []):
                    return int(item["id"])
        return None

    def comment(self, ticket_id: int, text: str) -> None:
        """Add an internal comment (not mailed to requestors), e.g. "failed again"."""
        self._request(
            "POST",
            f"/ticket/{int(ticket_id)}/comment",
            f"commenting on ticket {ticket_id}",
            {"Content": text, "ContentType": "text/plain"},
        )

    def resolve(self, ticket_id: int, text: str | None = None) -> None:
        """Mark the ticket resolved, with `text` (the evidence) as a comment first.

        RT answers a status change it refuses with 200 and a sentence, so the status is
        read back: a ticket RT did not resolve is an error, not a silent success."""
        if text:
            self.comment(ticket_id, text)
        action = f"resolving ticket {ticket_id}"
        self._request("PUT", f"/ticket/{int(ticket_id)}", action, {"Status": "resolved"})
        status = self.get(ticket_id).get("Status")
        if status != "resolved":
            raise self._error(action, f"RT left its status {status!r}", False)

    def get(self, ticket_id: int) -> dict[str, Any]:
        """The ticket's id, Status, Subject, SLA, Due (None when unset) and CustomFields (name
        to value; a list for a field with several values)."""
        answer = self._request("GET", f"/ticket/{int(ticket_id)}", f"reading ticket {ticket_id}")
        fields: dict[str, Any] = {}
        for cf in answer.get("CustomFields") or []:
            values = cf.get("values") or []
            fields[cf.get("name")] = values[0] if len(values) == 1 else (values or None)
        due = answer.get("Due")
        return {
            "id": int(answer.get("id", ticket_id)),
            "Status": answer.get("Status"),
            "Subject": answer.get("Subject"),
            "SLA": answer.get("SLA"),
            "Due": None if due in (None, "", _UNSET_DATE) else due,
            "CustomFields": fields,
        }

    # -- plumbing -------------------------------------------------------------------------

    def _sla_enabled(self, action: str) -> bool:
        """Whether the queue keeps SLAs, read once. The same look-up checks that the queue
        exists and has the Fingerprint field: RT silently drops a custom field the queue
        lacks, and a ticket without its fingerprint would be duplicated on every repeat."""
        if self._queue_sla_enabled is None:
            queue = urllib.parse.quote(self.queue, safe="")
            answer = self._request("GET", f"/queue/{queue}", f"{action} (reading the queue)")
            names = {cf.get("name") for cf in answer.get("TicketCustomFields") or []}
            if FINGERPRINT_FIELD not in names:
                raise self._error(
                    action,
                    f"the queue has no ticket custom field {FINGERPRINT_FIELD!r} "
                    "(docs/request-tracker.md says how to add it)",
                    False,
                )
            self._queue_sla_enabled = str(answer.get("SLADisabled", "1")) == "0"
        return self._queue_sla_enabled

    def _error(self, action: str, reason: str, transient: bool) -> RTError:
        return RTError(
            f"Request Tracker at {self._shown_url} (queue {self.queue}): {action} failed: {reason}",
            transient,
        )

    def _request(
        self, method: str, path: str, action: str, body: dict[str, Any] | None = None
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}/REST/2.0{path}", data=data, method=method)
        request.add_header("Authorization", f"token {self.__token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json; charset=utf-8")
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise self._http_error(action, exc) from None
        except urllib.error.URLError as exc:
            raise self._error(action, f"cannot reach RT ({_reason(exc.reason)})", True) from None
        except (OSError, http.client.HTTPException) as exc:  # timeouts, resets mid-answer
            raise self._error(
                action, f"no complete answer from RT ({_reason(exc)})", True
            ) from None
        try:
            return json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise self._error(
                action, "the answer is not REST 2 JSON (is the URL RT's base URL?)", False
            ) from None

    def _http_error(self, action: str, exc: urllib.error.HTTPError) -> RTError:
        status = exc.code
        message = _rt_message(exc)
        detail = f"HTTP {status}" + (f": {message}" if message else "")
        if status == 401:
            return self._error(action, f"RT refused the token ({detail})", False)
        if status == 403:
            return self._error(
                action,
                f"RT refused the token's user ({detail}); the user lacks the right, "
                "or the queue does not exist",
                False,
            )
        if 300 <= status < 400:
            where = exc.headers.get("Location", "?") if exc.headers else "?"
            return self._error(
                action, f"RT redirected to {where} (set the URL to RT's base URL)", False
            )
        transient = status >= 500 or status in (408, 429)
        return self._error(action, detail, transient)


def _reason(exc: object) -> str:
    """A short cause for a failed connection: "connection refused", "timed out"."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text)


def _rt_message(exc: urllib.error.HTTPError) -> str:
    """RT's own one-line reason from an error answer ({"message": ...}), if any."""
    try:
        payload = json.loads(exc.read() or b"{}")
    except (ValueError, OSError):
        return ""
    message = payload.get("message") if isinstance(payload, dict) else None
    return " ".join(str(message).split())[:300] if message else ""
