"""The audit log's subscriber to the engine's EventBus: one record per event, written
synchronously by the process that acted, before its command reports anything.

Also the two records that do not come through the bus: a config load (the file's
SHA-256) and a secret's use (its name and where it came from, never its value).
"""

from __future__ import annotations

import logging
from typing import Any

from orchestrator.audit.trail import AuditTrail, open_trail
from orchestrator.errors import OrchestratorError
from orchestrator.events import Event

log = logging.getLogger("orchestrator.audit")

# Every record this process could not write (event kinds): the command line turns any
# into a failed exit, so an action is never reported as a success without its record.
UNWRITTEN: list[str] = []

# Event kinds whose outcome is not their last word.
_OUTCOMES = {
    "run.succeeded": "success",
    "run.partial": "partial",
    "run.failed": "failed",
    "run.cancelled": "cancelled",
    "run.interrupted": "interrupted",
    "run.skipped": "skipped",
    "restore.done": "success",
    "restore.failed": "failed",
    "damage.found": "damaged",
    "copy.done": "success",
    "copy.failed": "failed",
    "slot.missed": "missed",
    "rpo.breached": "breached",
    "retention.refused": "refused",
    "prune.done": "success",
}


def event_record(event: Event) -> dict[str, Any]:
    """The audit record of one engine event (pure)."""
    details = dict(event.details)
    snapshot = details.pop("snapshot_id", None) or details.pop("snapshot", None)
    outcome = details.pop("outcome", None) or _OUTCOMES.get(event.kind)
    if outcome is None:
        outcome = event.kind.rpartition(".")[2] if event.severity == "info" else event.severity
    return {
        "what": event.kind,
        "outcome": outcome,
        "event_time": event.time.isoformat(timespec="seconds"),
        "severity": event.severity,
        "policy": event.policy,
        "target": event.target,
        "snapshot": snapshot,
        "run_id": event.run_id,
        "summary": event.summary,
        "details": details or None,
    }


class AuditSink:
    """EventSink for the audit trail; secret uses are recorded once per name and source."""

    def __init__(self, trail: AuditTrail) -> None:
        self.trail = trail
        self._secrets_seen: set[tuple[str, str]] = set()
        self.failed: list[str] = []

    def publish(self, event: Event) -> None:
        """One line, not a traceback, when the log cannot be written (a full disk); the
        failures are kept in `failed` for the caller to act on."""
        try:
            self.trail.record(event_record(event))
        except OrchestratorError as exc:
            self.failed.append(event.kind)
            UNWRITTEN.append(event.kind)
            log.error("audit: the record of %s was NOT written: %s", event.kind, exc.message)

    def config_loaded(self, path: str, sha256: str) -> None:
        self.trail.record(
            {"what": "config.loaded", "outcome": "success", "config": path, "sha256": sha256}
        )

    def secret_used(self, name: str, source: str) -> None:
        if (name, source) in self._secrets_seen:
            return
        self._secrets_seen.add((name, source))
        self.trail.record(
            {"what": "secret.used", "outcome": "success", "secret": name, "source": source}
        )


def record_action(config: Any, what: str, outcome: str, **fields: Any) -> None:
    """One record of a command that changes the secrets, the audit key or the catalog
    outside the engine (no event bus there); written before the command reports, and a
    log that cannot be written fails the command (AuditLogError, exit 1). Callers pass a
    secret's name, never its value."""
    record = {"what": what, "outcome": outcome, **{k: v for k, v in fields.items() if v}}
    try:
        open_trail(config).record(record)
    except OSError as exc:  # a file of the log or of its checkpoints: one line
        from orchestrator.audit.log import AuditLogError

        raise AuditLogError(f"audit log: the record of {what}: {exc}") from None
