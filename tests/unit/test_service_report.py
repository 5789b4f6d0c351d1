"""The service report's figures as tables: percentiles, RPO compliance, the figures by
priority, and what counts as a success or a breach."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from orchestrator.service import report
from orchestrator.service import ticket as tk

T = datetime(2026, 11, 1, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("xs", "p", "expected"),
    [
        ([], 90, None),
        ([5.0], 90, 5.0),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90, 9),
        ([3, 1, 2], 50, 2),
    ],
)
def test_percentile_is_nearest_rank(xs: list[float], p: float, expected: float | None) -> None:
    assert report.percentile(xs, p) == expected


@pytest.mark.parametrize(
    ("successes", "rpo", "expected"),
    [
        ([], 24, 0.0),  # nothing ever backed up
        ([T - H], 24, 23 / 48),  # one before the period covers its first 23 hours
        ([T, T + 24 * H], 24, 1.0),  # each backup in time for the next
        ([T, T + 36 * H], 24, 36 / 48),  # a 12-hour gap before the second (which covers 12 h)
        ([T + 47 * H], 24, 1 / 48),  # the last hour only
        ([T + 50 * H], 24, 0.0),  # after the period
    ],
)
def test_rpo_compliance(successes: list[datetime], rpo: float, expected: float) -> None:
    assert report.rpo_compliance(successes, rpo, T, T + 48 * H) == pytest.approx(expected, abs=1e-4)


def ticket(prio: str, opened: datetime, ack: datetime | None, resolved: datetime | None,
           rating: int | None = None) -> tk.Ticket:  # fmt: skip
    hours = {"urgent": 2, "important": 4, "general": 8}[prio]
    return tk.Ticket(
        id=1, kind="backup-failed", status="resolved" if resolved else "new", priority=prio,
        classification="technical", requester="system", description="", occurred_at=opened,
        opened_at=opened, respond_by=opened + hours * H, resolve_by=opened + 24 * H,
        acknowledged_at=ack, resolved_at=resolved, rating=rating,
    )  # fmt: skip


def test_figures_by_priority_satisfaction_handling_and_breaches() -> None:
    now = T + 100 * H
    tickets = [
        ticket("urgent", T, T + 1 * H, T + 3 * H, rating=5),  # answered and resolved in time
        ticket("urgent", T, T + 3 * H, T + 30 * H, rating=2),  # late twice
        ticket("urgent", T, None, None),  # never answered: breached
        ticket("general", T, None, T + 2 * H),  # the engine mended it: the resolution answered
    ]
    r = report.build(T, T + 48 * H, tickets, [], [], [], now)
    urgent, important, general = r.priorities
    assert (urgent.opened, urgent.responded, urgent.resolved) == (3, 2, 2)
    assert urgent.response_median_h == 2.0 and urgent.response_p90_h == 3.0
    # the one never answered counts against the share (second break-it)
    assert urgent.response_within_target == round(1 / 3, 4)
    assert urgent.resolution_rate == round(2 / 3, 4)
    assert urgent.resolution_within_target == round(1 / 3, 4)
    assert important.opened == 0 and important.response_median_h is None
    assert (general.responded, general.response_within_target) == (1, 1.0)
    assert (r.satisfaction, r.ratings) == (3.5, 2)
    assert r.handling_median_h == pytest.approx((2 + 27) / 2)
    assert [(b["response"], b["resolution"]) for b in r.breaches] == [
        ("late", "late"),
        ("breached", "breached"),
    ]


def test_success_rates_count_attempts_only() -> None:
    run = lambda kind, outcome: SimpleNamespace(kind=kind, outcome=outcome)  # noqa: E731
    check = lambda tier, outcome: SimpleNamespace(tier=tier, outcome=outcome)  # noqa: E731
    runs = [run("backup", "success"), run("backup", "failed"), run("backup", "skipped"),
            run("backup", "cancelled"), run("restore", "success"),
            run("backup", "partial")]  # fmt: skip
    checks = [check("drill", "ok"), check("drill", "damaged"), check("check", "ok"),
              check("subset", "skipped")]  # fmt: skip
    r = report.build(T, T + H, [], runs, checks, [], T + H)
    assert (r.success["backups"].ok, r.success["backups"].total) == (1, 3)  # busy/stopped: none
    assert r.success["restores"].rate == 1.0 and r.success["copies"].rate is None
    assert (r.success["drills"].ok, r.success["drills"].total) == (1, 2)
    assert (r.success["verifications"].ok, r.success["verifications"].total) == (1, 1)
