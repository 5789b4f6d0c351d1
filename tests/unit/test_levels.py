"""Level decisions (design section 5): every rule, its parent and its reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.policies.levels import History, LevelDecision, Parent, decide_level
from orchestrator.policies.model import Level

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
MAX_DAYS = 35


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


EMPTY = History(newest_full=None, newest_any=None)
NO_FULL = History(newest_full=None, newest_any=ago(1))
FRESH = History(newest_full=ago(6), newest_any=ago(1))
FULL_FAILED = History(newest_full=ago(6), newest_any=ago(1), last_full_failed=True)
FAILED_NEVER_FULL = History(newest_full=None, newest_any=None, last_full_failed=True)
OLD_FULL = History(newest_full=ago(40), newest_any=ago(1))
FULL_AT_LIMIT = History(newest_full=ago(MAX_DAYS), newest_any=ago(1))
FULL_PAST_LIMIT = History(newest_full=ago(MAX_DAYS) - timedelta(minutes=1), newest_any=ago(1))

AS_ASKED_FULL = "full as asked: every file is re-read and re-hashed, with no parent"
AS_ASKED_DIFF = "differential as asked: changes since the newest full snapshot"
AS_ASKED_INCR = "incremental as asked: changes since the newest snapshot of any level"
NO_SNAPSHOT = "upgraded to full: no snapshot yet on this target"
NO_FULL_YET = "upgraded to full: no full snapshot yet on this target"
LAST_FAILED = "upgraded to full: the last full backup failed"
TOO_OLD_40 = (
    "upgraded to full: the newest full is 40.0 days old, "
    "older than the 35-day maximum full interval"
)
TOO_OLD_35 = (
    "upgraded to full: the newest full is 35.0 days old, "
    "older than the 35-day maximum full interval"
)

CASES: list[tuple[str, Level, History, Level, Parent, str]] = [
    # A full is always a full, whatever the history.
    ("full, empty", "full", EMPTY, "full", "none", AS_ASKED_FULL),
    ("full, fresh", "full", FRESH, "full", "none", AS_ASKED_FULL),
    ("full, failed", "full", FULL_FAILED, "full", "none", AS_ASKED_FULL),
    # As asked, with the parent restic needs.
    ("diff, fresh", "differential", FRESH, "differential", "newest_full", AS_ASKED_DIFF),
    ("incr, fresh", "incremental", FRESH, "incremental", "newest_any", AS_ASKED_INCR),
    # Nothing on this target yet.
    ("diff, empty", "differential", EMPTY, "full", "none", NO_SNAPSHOT),
    ("incr, empty", "incremental", EMPTY, "full", "none", NO_SNAPSHOT),
    ("incr, failed, empty", "incremental", FAILED_NEVER_FULL, "full", "none", NO_SNAPSHOT),
    # Snapshots, but no full among them.
    ("diff, no full", "differential", NO_FULL, "full", "none", NO_FULL_YET),
    ("incr, no full", "incremental", NO_FULL, "full", "none", NO_FULL_YET),
    # The last full failed.
    ("diff, failed", "differential", FULL_FAILED, "full", "none", LAST_FAILED),
    ("incr, failed", "incremental", FULL_FAILED, "full", "none", LAST_FAILED),
    # The newest full is older than max_full_interval.
    ("diff, old full", "differential", OLD_FULL, "full", "none", TOO_OLD_40),
    ("incr, old full", "incremental", OLD_FULL, "full", "none", TOO_OLD_40),
    ("incr, past limit", "incremental", FULL_PAST_LIMIT, "full", "none", TOO_OLD_35),
    # Exactly at the limit is not older than it.
    ("incr, at limit", "incremental", FULL_AT_LIMIT, "incremental", "newest_any", AS_ASKED_INCR),
    ("diff, at limit", "differential", FULL_AT_LIMIT, "differential", "newest_full", AS_ASKED_DIFF),
]


@pytest.mark.parametrize(
    ("asked", "history", "level", "parent", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_decide_level(
    asked: Level, history: History, level: Level, parent: Parent, reason: str
) -> None:
    decision = decide_level(asked, history, NOW, MAX_DAYS)
    assert decision == LevelDecision(asked=asked, level=level, parent=parent, reason=reason)


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_reason_is_one_sentence(case: tuple[str, Level, History, Level, Parent, str]) -> None:
    reason = decide_level(case[1], case[2], NOW, MAX_DAYS).reason
    assert reason.startswith((f"{case[1]} as asked: ", "upgraded to full: "))
    assert "\n" not in reason and ". " not in reason


def test_interval_comes_from_the_setting() -> None:
    assert decide_level("incremental", OLD_FULL, NOW, 60).level == "incremental"
    assert decide_level("incremental", FRESH, NOW, 5).level == "full"


@pytest.mark.parametrize(
    ("newest_full", "newest_any"),
    [(ago(1), None), (ago(1), ago(2))],
)
def test_inconsistent_history_is_refused(
    newest_full: datetime, newest_any: datetime | None
) -> None:
    with pytest.raises(ValueError, match="inconsistent history"):
        History(newest_full=newest_full, newest_any=newest_any)


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="level must be one of"):
        decide_level("auto", FRESH, NOW, MAX_DAYS)  # type: ignore[arg-type]
