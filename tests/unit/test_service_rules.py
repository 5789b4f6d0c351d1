"""The service's rules as tables: which event is which failure, its priority by the
data's importance, who gets it, and which good news clears it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orchestrator import events
from orchestrator.events import Event
from orchestrator.service import rules

T0 = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)


def ev(kind: str, severity: str = "error", **details: object) -> Event:
    return Event(kind, T0, severity, "summary", policy="web", target="nas", details=details)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("event", "failure"),
    [
        (ev(events.RUN_FAILED, error_kind="fatal"), "backup-failed"),
        (ev(events.RUN_FAILED, error_kind="source_empty"), "backup-failed"),
        (ev(events.RUN_FAILED, error_kind="network"), "target-unreachable"),
        (ev(events.RUN_FAILED, error_kind="host_key"), "target-unreachable"),
        (ev(events.RUN_FAILED, error_kind="repository_missing"), "damage"),
        (ev(events.RUN_PARTIAL, "warning"), "backup-partial"),
        (ev(events.COPY_FAILED), "copy-failed"),
        (ev(events.RESTORE_FAILED), "restore-failed"),
        (ev(events.DAMAGE_FOUND, "critical", damage=[{"kind": "missing"}]), "damage"),
        (ev(events.DAMAGE_FOUND, "critical", damage=[{"kind": "rto_exceeded"}]), "drill-over-rto"),
        (
            ev(events.DAMAGE_FOUND, "critical", damage=[{"kind": "rto_exceeded"}, {"kind": "x"}]),
            "damage",
        ),
        (ev(events.DRILL_DONE, outcome="failed"), "drill-failed"),
        (ev(events.DRILL_DONE, outcome="damaged"), None),  # DAMAGE_FOUND files that one
        (ev(events.DRILL_DONE, "info", outcome="ok"), None),
        (ev(events.VERIFY_FAILED, outcome="failed"), "verify-failed"),
        (ev(events.VERIFY_FAILED, "warning", outcome="skipped"), None),  # busy: no failure
        (ev(events.VERIFY_FAILED, outcome="interrupted"), None),
        (ev(events.SLOT_MISSED, "warning"), "slot-missed"),
        (ev(events.RPO_BREACHED), "rpo-breached"),
        (ev(events.RETENTION_REFUSED), "retention-refused"),
        (ev(events.RETENTION_FAILED), "retention-failed"),
        (ev(events.PRUNE_FAILED), "prune-failed"),
        (ev(events.RUN_CANCELLED, "warning"), None),  # the operator stopped it
        (ev(events.RUN_SKIPPED, "warning"), None),  # busy: not an attempt
        (ev(events.RUN_SUCCEEDED, "info"), None),
    ],
)
def test_which_event_is_which_failure(event: Event, failure: str | None) -> None:
    found = rules.failure_of(event)
    assert (found.kind if found else None) == failure
    if found:
        assert (found.policy, found.target) == ("web", "nas")


@pytest.mark.parametrize(
    ("kind", "importance", "priority"),
    [
        # the three examples
        ("damage", "critical", "urgent"),
        ("restore-failed", "critical", "urgent"),
        ("backup-failed", "high", "important"),
        ("verify-failed", "low", "general"),
        # the rest of the table's corners
        ("damage", "low", "important"),  # data lost is never merely general
        ("backup-failed", "critical", "urgent"),
        ("backup-failed", "low", "general"),
        ("rpo-breached", "normal", "important"),
        ("drill-over-rto", "critical", "important"),
        ("retention-refused", "normal", "general"),
        # a restore request follows the importance alone
        ("restore-request", "critical", "urgent"),
        ("restore-request", "high", "important"),
        ("restore-request", "normal", "general"),
    ],
)
def test_priority_follows_importance_and_what_failed(
    kind: str, importance: str, priority: str
) -> None:
    assert rules.priority(kind, importance) == priority


def test_every_failure_has_a_cell_for_every_importance() -> None:
    for kind in rules.FAILURES:
        for importance in rules.IMPORTANCES:
            assert rules.priority(kind, importance) in rules.PRIORITIES
        assert kind in rules.CATEGORIES


def test_a_configured_cell_overrides_only_itself() -> None:
    table = rules.merge_priorities({"protection": {"low": "urgent"}})
    assert rules.priority("backup-failed", "low", table) == "urgent"
    assert rules.priority("backup-failed", "normal", table) == "important"
    assert rules.DEFAULT_PRIORITIES["protection"]["low"] == "general"  # defaults untouched


@pytest.mark.parametrize(
    ("kind", "prio", "cls"),
    [
        ("damage", "urgent", "urgent"),
        ("backup-failed", "important", "technical"),
        ("restore-request", "general", "routine"),
        ("restore-request", "urgent", "urgent"),
    ],
)
def test_classification(kind: str, prio: str, cls: str) -> None:
    assert rules.classification(kind, prio) == cls


ASSIGN = {"policy:web": "web-team", "damage": "storage-experts", "backup": "ops", "default": "duty"}


@pytest.mark.parametrize(
    ("kind", "policy", "who"),
    [
        ("backup-failed", "web", "web-team"),  # the policy's own team first
        ("damage", "db", "storage-experts"),  # then the failure class
        ("backup-failed", "db", "ops"),  # then its category
        ("retention-refused", "db", "duty"),  # then the default
    ],
)
def test_assignee_most_specific_first(kind: str, policy: str, who: str) -> None:
    assert rules.assignee(kind, policy, ASSIGN) == who
    assert rules.assignee(kind, policy, {}) == ""


def test_fingerprint_is_stable_and_tells_problems_apart() -> None:
    a = rules.fingerprint("web", "nas", "backup-failed")
    assert a == rules.fingerprint("web", "nas", "backup-failed")
    others = {
        rules.fingerprint("web", "nas", "backup-partial"),
        rules.fingerprint("web", "s3", "backup-failed"),
        rules.fingerprint("db", "nas", "backup-failed"),
        rules.fingerprint("we", "bnas", "backup-failed"),  # no ambiguity at the joins
    }
    assert a not in others and len(others) == 4


@pytest.mark.parametrize(
    ("event", "cleared"),
    [
        (ev(events.RUN_SUCCEEDED, "info"), {"backup-failed", "backup-partial"}),
        (ev(events.COPY_DONE, "info"), {"copy-failed"}),
        (ev(events.RPO_RESTORED, "info"), {"rpo-breached"}),
        (ev(events.DRILL_DONE, "info", outcome="ok"), {"drill-failed", "drill-over-rto"}),
        (ev(events.DRILL_DONE, outcome="failed"), set()),
        (ev(events.VERIFY_DONE, "info"), {"verify-failed"}),
        (ev(events.RUN_PARTIAL, "warning"), set()),
    ],
)
def test_good_news_clears(event: Event, cleared: set[str]) -> None:
    assert cleared <= set(rules.clears(event))
    assert "damage" not in rules.clears(event)  # a person must look at damage
    if not cleared:
        assert rules.clears(event) == ()
