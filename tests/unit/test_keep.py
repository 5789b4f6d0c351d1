"""Item 5 (issue 14): retention keeps what the levels need, on top of restic's plan.

Table: the policy's snapshots on one target (oldest first, by level), the ones restic's
keep rules would remove, whether differentials are planned -> what is kept and why.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.policies.keep import (
    NEWEST_ANY,
    NEWEST_FULL_FOR_DIFFERENTIAL,
    NEWEST_FULL_FOR_LEVELS,
    Snap,
    level_keeps,
)

T0 = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)
LETTER = {"full": "F", "differential": "D", "incremental": "I", None: "?"}


def snaps(levels: str) -> list[Snap]:
    """'FIII' -> ids s0..s3 a day apart with those levels (F full, D diff, I incr, ? none)."""
    by_letter = {v: k for k, v in LETTER.items()}
    return [Snap(f"s{i}", T0 + timedelta(days=i), by_letter[c]) for i, c in enumerate(levels)]


CASES = [
    # (levels, restic removes, differential planned, kept, removed, reasons)
    pytest.param(
        "FIII", {"s0", "s1"}, True, ("s0", "s2", "s3"), ("s1",),
        {"s0": NEWEST_FULL_FOR_DIFFERENTIAL}, id="the issue: last=2 after F,I,I,I keeps the full",
    ),
    pytest.param(
        "FIII", {"s0", "s1"}, False, ("s0", "s2", "s3"), ("s1",),
        {"s0": NEWEST_FULL_FOR_LEVELS}, id="no differential planned: the full still stays",
    ),
    pytest.param(
        "FIFI", {"s0", "s1"}, True, ("s2", "s3"), ("s0", "s1"), {},
        id="an older full is not protected when a newer one is kept",
    ),
    pytest.param(
        "FDIFI", {"s0", "s1", "s2", "s3"}, True, ("s3", "s4"), ("s0", "s1", "s2"),
        {"s3": NEWEST_FULL_FOR_DIFFERENTIAL}, id="only the newest full is kept back",
    ),
    pytest.param(
        "FII", set(), True, ("s0", "s1", "s2"), (), {}, id="restic removes nothing",
    ),
    pytest.param(
        "III", {"s0", "s1"}, True, ("s2",), ("s0", "s1"), {},
        id="no full at all: nothing to keep back",
    ),
    pytest.param(
        "FII", {"s0", "s1", "s2"}, True, ("s0", "s2"), ("s1",),
        {"s0": NEWEST_FULL_FOR_DIFFERENTIAL, "s2": NEWEST_ANY},
        id="a plan removing the newest keeps it for the next incremental",
    ),
    pytest.param(
        "IIF", {"s0", "s1", "s2"}, True, ("s2",), ("s0", "s1"),
        {"s2": NEWEST_FULL_FOR_DIFFERENTIAL}, id="newest is the full: one reason",
    ),
    pytest.param(
        "F?I", {"s0", "s1"}, True, ("s0", "s2"), ("s1",),
        {"s0": NEWEST_FULL_FOR_DIFFERENTIAL}, id="an untagged snapshot is no full",
    ),
    pytest.param("", set(), True, (), (), {}, id="no snapshots"),
]  # fmt: skip


@pytest.mark.parametrize(("levels", "planned", "diff", "keep", "remove", "reasons"), CASES)
def test_item5_level_keeps(
    levels: str,
    planned: set[str],
    diff: bool,
    keep: tuple[str, ...],
    remove: tuple[str, ...],
    reasons: dict[str, str],
) -> None:
    decision = level_keeps(snaps(levels), planned, diff)
    assert (decision.keep, decision.remove, decision.reasons) == (keep, remove, reasons)


def test_item5_order_of_input_does_not_matter() -> None:
    given = snaps("FIII")
    a = level_keeps(given, {"s0", "s1"}, True)
    b = level_keeps(list(reversed(given)), {"s1", "s0"}, True)
    assert a == b
