"""When verification tiers and drills are due: `every` against the last completed check."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from orchestrator.engine.checks_due import (
    CheckJob,
    LastCheck,
    checks_due,
    is_due,
    overdue,
    verify_tiers,
)
from orchestrator.policies.model import DrillSpec, Policy, ScheduleEntry, VerifySpec
from orchestrator.policies.schedule import cron_fired

pytestmark = pytest.mark.unit

BERLIN = "Europe/Berlin"


def t(text: str, tz: str = "UTC") -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz))


def policy(name: str = "p", **kw: object) -> Policy:
    return Policy(
        name=name,
        importance="normal",
        targets=("local",),
        schedules=(ScheduleEntry("daily", "0 1 * * *", "incremental"),),
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("every", "done", "now", "due"),
    [
        # never completed: due at once
        ("daily", None, "2026-03-04T01:00", True),
        ("0 4 * * sun", None, "2026-03-04T01:00", True),
        # daily: the next local day, whatever the hour (no drift)
        ("daily", "2026-03-04T01:05", "2026-03-04T23:59", False),
        ("daily", "2026-03-04T01:05", "2026-03-05T01:00", True),
        ("daily", "2026-03-04T23:30", "2026-03-05T00:10", True),
        # weekly: seven local days later
        ("weekly", "2026-03-04T01:00", "2026-03-10T23:00", False),
        ("weekly", "2026-03-04T01:00", "2026-03-11T00:00", True),
        # monthly: the same day next month, the last day of a shorter one
        ("monthly", "2026-03-04T01:00", "2026-04-03T23:00", False),
        ("monthly", "2026-03-04T01:00", "2026-04-04T00:00", True),
        ("monthly", "2026-01-31T01:00", "2026-02-27T12:00", False),
        ("monthly", "2026-01-31T01:00", "2026-02-28T00:00", True),
        ("monthly", "2026-12-15T01:00", "2027-01-15T00:00", True),
        # cron: a cron time fell due since the last completed check
        ("0 4 * * sun", "2026-03-01T04:00", "2026-03-08T03:59", False),
        ("0 4 * * sun", "2026-03-01T04:00", "2026-03-08T04:00", True),
        ("0 */6 * * *", "2026-03-04T06:00", "2026-03-04T11:59", False),
        ("0 */6 * * *", "2026-03-04T06:00", "2026-03-04T12:00", True),
    ],
)
def test_is_due_table(every: str, done: str | None, now: str, due: bool) -> None:
    last = LastCheck(done=t(done) if done else None, attempt=t(done) if done else None)
    assert (is_due(every, last, t(now), "UTC") is not None) is due


def test_daily_counts_local_days() -> None:
    # 23:30 UTC on 4 March is 00:30 on 5 March in Berlin: the next Berlin day is the 6th.
    last = LastCheck(done=t("2026-03-04T23:30"), attempt=t("2026-03-04T23:30"))
    assert is_due("daily", last, t("2026-03-05T22:00"), BERLIN) is None
    assert is_due("daily", last, t("2026-03-05T23:00"), BERLIN) is not None


def test_a_failed_attempt_is_retried_at_the_next_pass_but_not_at_the_same_now() -> None:
    last = LastCheck(done=None, attempt=t("2026-03-04T01:00"))
    assert is_due("weekly", last, t("2026-03-04T01:00"), "UTC") is None
    assert is_due("weekly", last, t("2026-03-04T02:00"), "UTC") is not None
    # a completed one the same day, then a failed one: the period still counts from done
    last = LastCheck(done=t("2026-03-04T01:00"), attempt=t("2026-03-04T02:00"))
    assert is_due("daily", last, t("2026-03-04T03:00"), "UTC") is None


def test_cron_fired_across_spring_forward() -> None:
    # 02:30 does not exist in Berlin on 2026-03-29; it falls due at 03:00 CEST (01:00 UTC).
    assert cron_fired("30 2 * * *", BERLIN, t("2026-03-29T00:59"), t("2026-03-29T01:00"))
    assert not cron_fired("30 2 * * *", BERLIN, t("2026-03-29T01:00"), t("2026-03-30T00:29"))


@pytest.mark.parametrize(
    ("verify", "tiers"),
    [
        (None, ()),
        (VerifySpec(), ("check",)),
        (VerifySpec(read_data_fraction="1/4"), ("check", "subset")),
        (VerifySpec(read_data_fraction="10%", media=True), ("check", "subset", "media")),
        (VerifySpec(media=True), ("check", "media")),
    ],
)
def test_verify_tiers(verify: VerifySpec | None, tiers: tuple[str, ...]) -> None:
    assert verify_tiers(policy(verify=verify)) == tiers


def test_checks_due_per_policy_target_and_tier() -> None:
    both = policy(
        "a", verify=VerifySpec(every="daily", read_data_fraction="1/4"), drill=DrillSpec()
    )
    none = policy("b")
    holders = {"a": ["local", "nas"], "b": ["local"]}
    now = t("2026-03-04T01:00")
    jobs = checks_due([none, both], holders, {}, now, "UTC")
    assert [(j.policy, j.target, j.tier) for j in jobs] == [
        ("a", "local", "check"),
        ("a", "local", "subset"),
        ("a", "local", "drill"),
        ("a", "nas", "check"),
        ("a", "nas", "subset"),
        ("a", "nas", "drill"),
    ]
    # after they ran: nothing at the same time; the daily verify the next day; the
    # monthly drill a month later
    done = LastCheck(now, now)
    last = {(j.policy, j.target, j.tier): done for j in jobs}
    assert checks_due([both], holders, last, now, "UTC") == []
    next_day = checks_due([both], holders, last, t("2026-03-05T01:00"), "UTC")
    assert {j.tier for j in next_day} == {"check", "subset"}
    next_month = checks_due([both], holders, last, t("2026-04-04T01:00"), "UTC")
    assert {j.tier for j in next_month} == {"check", "subset", "drill"}
    assert all(isinstance(j, CheckJob) and j.reason for j in next_month)


@pytest.mark.parametrize(
    ("every", "done", "since", "now", "expected"),
    [
        # never completed: overdue a day (the grace) after the first good backup
        ("weekly", None, None, "2026-03-20T00:00", None),
        ("weekly", None, "2026-03-04T01:00", "2026-03-05T01:00", None),
        ("weekly", None, "2026-03-04T01:00", "2026-03-05T01:01", "never completed"),
        # daily: due the next local day (00:00), overdue a day later
        ("daily", "2026-03-04T01:05", "2026-03-01T00:00", "2026-03-05T23:59", None),
        ("daily", "2026-03-04T01:05", "2026-03-01T00:00", "2026-03-06T00:00", "last completed"),
        # weekly: due seven local days later, overdue on the eighth
        ("weekly", "2026-03-04T01:00", None, "2026-03-11T23:00", None),
        ("weekly", "2026-03-04T01:00", None, "2026-03-12T00:00", "last completed"),
        # monthly, from the 31st: due on the last day of February, overdue a day later
        ("monthly", "2026-01-31T01:00", None, "2026-02-28T23:00", None),
        ("monthly", "2026-01-31T01:00", None, "2026-03-01T00:00", "last completed"),
        # cron: a cron time passed more than a day ago
        ("0 4 * * sun", "2026-03-01T05:00", None, "2026-03-09T03:59", None),
        ("0 4 * * sun", "2026-03-01T05:00", None, "2026-03-09T04:00", "last completed"),
    ],
)
def test_item6_overdue(
    every: str, done: str | None, since: str | None, now: str, expected: str | None
) -> None:
    """Item 6 (issue 14): `status` calls a configured check overdue when it fell due more
    than a day ago and has not completed since."""
    found = overdue(every, t(done) if done else None, t(since) if since else None, t(now), "UTC")
    if expected is None:
        assert found is None
    else:
        assert found is not None and expected in found, found


def test_item6_overdue_counts_local_days() -> None:
    """Daily in Berlin: completed 23:30 local on the 4th, due 00:00 local on the 5th,
    overdue from 00:00 local on the 6th (23:00 UTC on the 5th)."""
    done = t("2026-03-04T23:30", BERLIN)
    assert overdue("daily", done, None, t("2026-03-05T23:59", BERLIN), BERLIN) is None
    assert overdue("daily", done, None, t("2026-03-06T00:00", BERLIN), BERLIN) is not None
