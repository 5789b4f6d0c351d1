"""Item 4 (fix-input): a cron expression that names no date is found, by the expression
alone (pure: no clock, no I/O)."""

from __future__ import annotations

import pytest

from orchestrator.policies.schedule import never_fires


@pytest.mark.parametrize(
    ("expr", "never"),
    [
        ("0 0 30 2 *", True),  # February 30th
        ("0 0 31 4,6,9,11 *", True),  # the 31st of 30-day months
        ("0 0 29 2 *", False),  # leap years
        ("0 0 31 2 1", False),  # day of month OR day of week: every Monday in February
        ("0 0 L 2 *", False),
        ("*/5 * * * *", False),
        ("30 1 * * sun", False),
    ],
)
def test_item4_never_fires(expr: str, never: bool) -> None:
    assert never_fires(expr) is never
