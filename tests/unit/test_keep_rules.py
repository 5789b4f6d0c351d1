"""restic's keep rules as a pure table (the integration test holds them to restic)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orchestrator.policies.keep import Snap, rule_keeps


def snaps(*stamps: str) -> list[Snap]:
    return [Snap(s, datetime.fromisoformat(s).replace(tzinfo=UTC), None) for s in stamps]


DAYS = snaps("2026-03-01T01:00", "2026-03-02T01:00", "2026-03-02T13:00", "2026-03-03T01:00")
#                        last hourly daily weekly monthly yearly
CASES = [
    ("last 2", [2, None, None, None, None, None], False, {"2026-03-03T01:00", "2026-03-02T13:00"}),
    (
        "daily 2: the newest of each day",
        [None, None, 2, None, None, None],
        False,
        {"2026-03-03T01:00", "2026-03-02T13:00"},
    ),
    (
        "daily 5, too few days: 0.14 keeps one a day",
        [None, None, 5, None, None, None],
        False,
        {"2026-03-03T01:00", "2026-03-02T13:00", "2026-03-01T01:00"},
    ),
    (
        "monthly 3, too few months: 0.16+ keeps the oldest too",
        [None, None, None, None, 3, None],
        True,
        {"2026-03-03T01:00", "2026-03-01T01:00"},
    ),
    (
        "monthly 3 on 0.14: only the newest of the month",
        [None, None, None, None, 3, None],
        False,
        {"2026-03-03T01:00"},
    ),
    (
        "rules add up: last 1 and daily 2",
        [1, None, 2, None, None, None],
        False,
        {"2026-03-03T01:00", "2026-03-02T13:00"},
    ),
    ("no rule set: nothing", [None] * 6, True, set()),
]


@pytest.mark.parametrize(("why", "counts", "keep_oldest", "kept"), CASES, ids=[c[0] for c in CASES])
def test_rule_keeps(why: str, counts: list, keep_oldest: bool, kept: set[str]) -> None:
    assert rule_keeps(DAYS, counts, keep_oldest) == kept


def test_weeks_are_iso_weeks() -> None:
    # Sun 2026-03-01 and Mon 2026-03-02 are in different ISO weeks
    two = snaps("2026-03-01T10:00", "2026-03-02T10:00")
    assert rule_keeps(two, [None, None, None, 2, None, None], False) == {
        "2026-03-01T10:00",
        "2026-03-02T10:00",
    }
