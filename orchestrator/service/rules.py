"""What a failure means for the service: its class, priority, category, classification,
fingerprint, and which good news clears it. Pure functions of the event and the tables,
so that a ticket's priority can be explained with one row of a table (docs/service.md).

Priority follows the data's importance (service standard ch. 1, 4.1): damage to critical
data is urgent, a failed backup of high data is important, a failed check of low data is
general.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator import events

PRIORITIES = ("urgent", "important", "general")
IMPORTANCES = ("critical", "high", "normal", "low")

# How bad a failure is for the data, whatever the data: each group is one row of the
# priority table. loss: data is (or may be) gone; protection: new data is not protected;
# assurance: a check of the protection did not happen or found it slow.
GROUPS: Mapping[str, tuple[str, ...]] = {
    "loss": ("damage", "restore-failed"),
    "protection": (
        "backup-failed",
        "copy-failed",
        "slot-missed",
        "rpo-breached",
        "target-unreachable",
        "drill-failed",
    ),
    "assurance": (
        "backup-partial",
        "verify-failed",
        "drill-over-rto",
        "retention-refused",
        "retention-failed",
        "prune-failed",
    ),
}
FAILURES = tuple(f for group in GROUPS.values() for f in group)
_GROUP_OF = {f: group for group, members in GROUPS.items() for f in members}

# group -> importance -> priority; [service.priorities] may override any cell.
DEFAULT_PRIORITIES: Mapping[str, Mapping[str, str]] = {
    "loss": {"critical": "urgent", "high": "urgent", "normal": "important", "low": "important"},
    "protection": {
        "critical": "urgent",
        "high": "important",
        "normal": "important",
        "low": "general",
    },
    "assurance": {
        "critical": "important",
        "high": "important",
        "normal": "general",
        "low": "general",
    },
}

# The category a team is assigned by ([service.assign]); "restore-request" is a person's.
CATEGORIES: Mapping[str, str] = {
    **{f: "backup" for f in ("backup-failed", "backup-partial", "copy-failed", "slot-missed")},
    **{f: "backup" for f in ("rpo-breached", "target-unreachable")},
    **{f: "verify" for f in ("damage", "verify-failed", "drill-failed", "drill-over-rto")},
    **{f: "retention" for f in ("retention-refused", "retention-failed", "prune-failed")},
    "restore-failed": "restore",
    "restore-request": "restore",
}

# A failed backup whose error was the storage itself (restic's and the targets' kinds),
# or what the backup found gone there (restic/features.py).
TARGET_KINDS = frozenset(
    {"network", "timeout", "host_key", "auth", "no_bucket", "target", "no_repository"}
    | {"repository_not_directory"}
)
LOSS_KINDS = frozenset({"repository_missing", "repository_damaged"})
RTO_EXCEEDED = "rto_exceeded"  # verify/drill.py's damage kind for a drill slower than its RTO


@dataclass(frozen=True)
class Failure:
    """One failure the service must follow: a ticket's reason to exist."""

    kind: str  # one of FAILURES
    policy: str
    target: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.policy, self.target, self.kind)


def fingerprint(policy: str, target: str, kind: str) -> str:
    """The same problem repeating has the same fingerprint: policy, target, failure class."""
    text = "\x1f".join((policy, target, kind))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def failure_of(event: events.Event) -> Failure | None:
    """The failure an engine event reports, or None for good news and for what is no
    failure (a busy run skipped, a cancelled one: the operator asked for it)."""
    kind = _failure_kind(event)
    if kind is None:
        return None
    return Failure(kind, event.policy or "", event.target or "")


def _failure_kind(event: events.Event) -> str | None:
    d = event.details or {}
    match event.kind:
        case events.RUN_FAILED:
            kind = d.get("error_kind")
            if kind in LOSS_KINDS:
                return "damage"
            return "target-unreachable" if kind in TARGET_KINDS else "backup-failed"
        case events.RUN_PARTIAL:
            return "backup-partial"
        case events.COPY_FAILED:
            return "copy-failed"
        case events.RESTORE_FAILED:  # a request's run: its own ticket follows it
            return None if d.get("request") is not None else "restore-failed"
        case events.DAMAGE_FOUND:
            damage = d.get("damage") or []
            slow_only = damage and all(x.get("kind") == RTO_EXCEEDED for x in damage)
            return "drill-over-rto" if slow_only else "damage"
        case events.DRILL_DONE:
            return "drill-failed" if d.get("outcome") == "failed" else None
        case events.VERIFY_FAILED:
            return "verify-failed" if d.get("outcome") == "failed" else None
        case events.SLOT_MISSED:
            return "slot-missed"
        case events.RPO_BREACHED:
            return "rpo-breached"
        case events.RETENTION_REFUSED:
            return "retention-refused"
        case events.RETENTION_FAILED:
            return "retention-failed"
        case events.PRUNE_FAILED:
            return "prune-failed"
    return None


# Good news that clears open tickets of the same policy and target (with its evidence).
# Damage is never cleared by the engine: a person must look at what was found.
_CLEARS: Mapping[str, tuple[str, ...]] = {
    events.RUN_SUCCEEDED: ("backup-failed", "backup-partial", "target-unreachable", "slot-missed"),
    events.COPY_DONE: ("copy-failed",),
    events.RESTORE_DONE: ("restore-failed",),
    events.RPO_RESTORED: ("rpo-breached",),
    events.VERIFY_DONE: ("verify-failed",),
    events.RETENTION_APPLIED: ("retention-refused", "retention-failed"),
    events.PRUNE_DONE: ("prune-failed",),
}


def clears(event: events.Event) -> tuple[str, ...]:
    """The failure classes this event proves mended on its policy and target."""
    if event.kind == events.DRILL_DONE:
        ok = (event.details or {}).get("outcome") == "ok"
        return ("drill-failed", "drill-over-rto") if ok else ()
    return _CLEARS.get(event.kind, ())


def priority(
    kind: str, importance: str, table: Mapping[str, Mapping[str, str]] = DEFAULT_PRIORITIES
) -> str:
    """The ticket's priority: a cell of the table, by the failure's group and the data's
    importance. A restore request follows the importance alone (recovery priority
    follows data importance): critical urgent, high important, the rest general."""
    if kind == "restore-request":
        return {"critical": "urgent", "high": "important"}.get(importance, "general")
    return table[_GROUP_OF[kind]][importance]


def classification(kind: str, prio: str) -> str:
    """The standard's request classes (2.1.2): an urgent failure is `urgent`, a restore
    request is `routine`, every other failure needs a specialist: `technical`."""
    if kind == "restore-request":
        return "urgent" if prio == "urgent" else "routine"
    return "urgent" if prio == "urgent" else "technical"


def assignee(kind: str, policy: str, assign: Mapping[str, str]) -> str:
    """Who gets the ticket, from [service.assign], most specific key first:
    `policy:NAME`, the failure class, its category, then `default`; "" for nobody."""
    for key in (f"policy:{policy}", kind, CATEGORIES.get(kind, ""), "default"):
        if key and key in assign:
            return assign[key]
    return ""


def merge_priorities(
    overrides: Mapping[str, Mapping[str, str]],
) -> dict[str, dict[str, str]]:
    """The default table with [service.priorities]' cells laid over it."""
    table = {group: dict(row) for group, row in DEFAULT_PRIORITIES.items()}
    for group, row in overrides.items():
        table[group].update(row)
    return table
