"""The one small interface every outcome of the engine goes out through.

A run finished, a run failed, damage found, a drill measured: the engine
publishes an Event and does not know who listens: the catalog's event list, the
audit log, the ticket store and the notification outbox subscribe here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

log = logging.getLogger("orchestrator.events")

Severity = Literal["info", "warning", "error", "critical"]

# Event kinds; subscribers match on these strings.
RUN_SUCCEEDED = "run.succeeded"
RUN_PARTIAL = "run.partial"
RUN_FAILED = "run.failed"
RUN_CANCELLED = "run.cancelled"
RUN_INTERRUPTED = "run.interrupted"
RUN_SKIPPED = "run.skipped"  # refused before it began: another run held the lock (busy)
RESTORE_DONE = "restore.done"
RESTORE_FAILED = "restore.failed"
DAMAGE_FOUND = "damage.found"
DRILL_DONE = "drill.done"
VERIFY_DONE = "verify.done"  # a check tier finished without damage (audit log, issue 16)
VERIFY_FAILED = "verify.failed"  # a check tier could not run to its end (audit log, issue 16)
COPY_DONE = "copy.done"  # a new snapshot copied to a policy's copy_to target
COPY_FAILED = "copy.failed"
# The daemon (engine/due.py): slots, RPO, retention.
SLOT_MISSED = "slot.missed"
SLOT_INTERRUPTED = "slot.interrupted"
RPO_BREACHED = "rpo.breached"
RPO_RESTORED = "rpo.restored"
RETENTION_APPLIED = "retention.applied"
RETENTION_REFUSED = "retention.refused"
RETENTION_FAILED = "retention.failed"
PRUNE_DONE = "prune.done"
PRUNE_FAILED = "prune.failed"
ACCESS_DENIED = "access.denied"  # a role check refused a command (security/access.py)


@dataclass(frozen=True)
class Event:
    kind: str
    time: datetime
    severity: Severity
    summary: str
    policy: str | None = None
    target: str | None = None
    run_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class EventSink(Protocol):
    def publish(self, event: Event) -> None: ...


class EventBus:
    """Fans an event out to every subscriber; one failing subscriber never silences the rest."""

    def __init__(self, sinks: Iterable[EventSink] = ()) -> None:
        self._sinks: list[EventSink] = list(sinks)

    def subscribe(self, sink: EventSink) -> None:
        self._sinks.append(sink)

    def publish(self, event: Event) -> None:
        for sink in self._sinks:
            try:
                sink.publish(event)
            except Exception:  # a subscriber's bug must not lose the event for the others
                log.exception("event subscriber %r failed on %s", sink, event.kind)
