"""The message every channel sends, and the one error every sender raises.

A Notice is built from a ticket change by the ticket store; the connectors only render
and deliver it, so that one ticket reads the same in a mailbox, a chat and a tracker.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType

from orchestrator.errors import OrchestratorError

PRIORITIES = ("urgent", "important", "general")
# Ticket changes a channel may filter on (`events = [...]`); the ticket store sends these.
EVENTS = (
    "opened",
    "repeated",
    "acknowledged",
    "assigned",
    "escalated",
    "resolved",
    "closed",
    "commented",
    "rated",
    "request",
    "approved",
    "rejected",
)
SCHEMA = 1  # the JSON body's version: a receiver can tell a changed layout


@dataclass(frozen=True)
class Notice:
    """One ticket change, as every channel tells it. `at` is aware UTC."""

    ticket_id: int
    event: str
    priority: str
    team: str  # who it is assigned to; "" when nobody
    subject: str
    body: str  # plain text
    fields: Mapping[str, str] = field(default_factory=dict)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if self.priority not in PRIORITIES:
            raise ValueError(f"priority '{self.priority}' is not one of {', '.join(PRIORITIES)}")
        if not self.event:
            raise ValueError("a notice needs an event")
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise ValueError("a notice's time must be aware (UTC), not naive")
        # Frozen means frozen: a caller's dict changed later must not change the notice.
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))
        object.__setattr__(self, "at", self.at.astimezone(UTC))

    def as_dict(self) -> dict[str, object]:
        return {
            "schema": SCHEMA,
            "ticket_id": self.ticket_id,
            "event": self.event,
            "priority": self.priority,
            "team": self.team,
            "subject": self.subject,
            "body": self.body,
            "fields": dict(self.fields),
            "at": self.at.isoformat().replace("+00:00", "Z"),
        }

    def to_json(self) -> str:
        """Sorted keys, no spaces: the same notice always gives the same bytes, so a
        signature over it can be checked and a resend is recognisably the same."""
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class NotifyError(OrchestratorError):
    """Sending failed. `transient` says whether a retry may succeed (server down, timeout)
    or not (refused credentials, a 4xx): the outbox retries only the former.

    The message names the channel and never holds a password, token or signing key."""

    kind = "notify"

    def __init__(self, message: str, *, channel: str, transient: bool) -> None:
        super().__init__(message)
        self.channel = channel
        self.transient = transient
