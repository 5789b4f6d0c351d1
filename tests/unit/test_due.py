"""The daemon's pure core: what is due at `now`, catch-up, retention, prune and RPO rules."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from orchestrator.engine.due_rules import (
    Job,
    PolicyState,
    due_work,
    forget_due,
    prune_due,
    rpo_breaches,
    share_refusal,
)
from orchestrator.policies.model import Policy, Retention, ScheduleEntry

pytestmark = pytest.mark.unit

GRACE = timedelta(minutes=60)
UTCZ = "UTC"


def policy(name: str = "p", catch_up: str = "once", **kw: object) -> Policy:
    schedules = (
        ScheduleEntry("daily", "30 1 * * *", "incremental"),
        ScheduleEntry("weekly", "0 2 * * 0", "differential"),
        ScheduleEntry("monthly", "0 3 1 * *", "full"),
    )
    return Policy(
        name=name,
        importance="normal",
        targets=kw.pop("targets", ("local",)),  # type: ignore[arg-type]
        schedules=kw.pop("schedules", schedules),  # type: ignore[arg-type]
        catch_up=catch_up,  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def t(text: str, tz: str = UTCZ) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz))


def apply(state: dict[str, PolicyState], jobs: list[Job]) -> dict[str, PolicyState]:
    """What run_due writes to the catalog, as the pure state the next pass reads."""
    new = dict(state)
    for job in jobs:
        ps = new.get(job.slot.policy, PolicyState())
        newest = max(filter(None, [ps.newest_due, job.slot.due]), key=lambda d: d.astimezone(UTC))
        reopen = tuple(s for s in ps.reopen if s.key != job.slot.key)
        new[job.slot.policy] = dataclasses.replace(ps, newest_due=newest, reopen=reopen)
    return new


def summary(jobs: list[Job]) -> list[tuple[str, str, str]]:
    return [(j.action if j.action == "run" else j.state, j.slot.key, j.slot.level) for j in jobs]


# --------------------------------------------------------------------------- first sight


@pytest.mark.parametrize(
    ("seen", "now", "expected"),
    [
        # seen long after the slot: its calendar starts now, nothing is missed
        ("2026-03-04T12:00", "2026-03-04T12:00", []),
        # seen within the grace after a slot: that slot is on time and runs
        ("2026-03-04T01:50", "2026-03-04T01:50", [("run", "p@2026-03-04T01:30", "incremental")]),
        # seen before the slot, pass at the slot
        ("2026-03-04T01:00", "2026-03-04T01:30", [("run", "p@2026-03-04T01:30", "incremental")]),
    ],
)
def test_calendar_starts_when_first_seen(seen: str, now: str, expected: list) -> None:
    state = {"p": PolicyState(first_seen=t(seen))}
    assert summary(due_work([policy()], state, t(now), UTCZ, GRACE)) == expected


def test_unknown_policy_is_seen_now() -> None:
    assert due_work([policy()], {}, t("2026-03-04T12:00"), UTCZ, GRACE) == []


def test_second_pass_at_the_same_time_does_nothing() -> None:
    state = {"p": PolicyState(first_seen=t("2026-03-04T00:00"))}
    now = t("2026-03-04T01:30")
    jobs = due_work([policy()], state, now, UTCZ, GRACE)
    assert summary(jobs)[-1] == ("run", "p@2026-03-04T01:30", "incremental")
    assert due_work([policy()], apply(state, jobs), now, UTCZ, GRACE) == []


# --------------------------------------------------------------------------- catch-up

# Last slot decided: Monday 2026-03-02 01:30. Down until Thursday: the slots of Tue, Wed
# and Thu are in the window; at 12:00 all three are past grace, at 01:45 Thu is on time.
DOWN = {"p": PolicyState(first_seen=t("2026-02-01T00:00"), newest_due=t("2026-03-02T01:30"))}
TUE, WED, THU = "p@2026-03-03T01:30", "p@2026-03-04T01:30", "p@2026-03-05T01:30"


@pytest.mark.parametrize(
    ("mode", "now", "expected"),
    [
        (
            "once",
            "2026-03-05T12:00",
            [
                ("missed", TUE, "incremental"),
                ("missed", WED, "incremental"),
                ("run", THU, "incremental"),
            ],
        ),
        (
            "all",
            "2026-03-05T12:00",
            [("run", TUE, "incremental"), ("run", WED, "incremental"), ("run", THU, "incremental")],
        ),
        (
            "skip",
            "2026-03-05T12:00",
            [
                ("skipped", TUE, "incremental"),
                ("skipped", WED, "incremental"),
                ("skipped", THU, "incremental"),
            ],
        ),
        (
            "once",
            "2026-03-05T01:45",
            [
                ("missed", TUE, "incremental"),
                ("missed", WED, "incremental"),
                ("run", THU, "incremental"),
            ],
        ),
        (
            "all",
            "2026-03-05T01:45",
            [("run", TUE, "incremental"), ("run", WED, "incremental"), ("run", THU, "incremental")],
        ),
        (
            "skip",
            "2026-03-05T01:45",
            [
                ("skipped", TUE, "incremental"),
                ("skipped", WED, "incremental"),
                ("run", THU, "incremental"),
            ],
        ),
    ],
)
def test_catch_up_after_three_days_down(mode: str, now: str, expected: list) -> None:
    jobs = due_work([policy(catch_up=mode)], DOWN, t(now), UTCZ, GRACE)
    assert summary(jobs) == expected
    assert due_work([policy(catch_up=mode)], apply(DOWN, jobs), t(now), UTCZ, GRACE) == []


@pytest.mark.parametrize(
    ("now", "expected_level"),
    [
        # the missed Sunday differential (03-01 is a Sunday AND the 1st: a full) lifts the run
        ("2026-03-01T12:00", "full"),
        # missed Sunday 03-08 differential, on-time Monday incremental -> run at differential
        ("2026-03-09T01:45", "differential"),
    ],
)
def test_catch_up_once_runs_at_the_highest_level_missed(now: str, expected_level: str) -> None:
    state = {"p": PolicyState(first_seen=t("2026-02-01T00:00"), newest_due=t("2026-02-27T01:30"))}
    if now.startswith("2026-03-09"):
        state = {
            "p": PolicyState(first_seen=t("2026-02-01T00:00"), newest_due=t("2026-03-07T01:30"))
        }
    jobs = due_work([policy()], state, t(now), UTCZ, GRACE)
    runs = [j for j in jobs if j.action == "run"]
    assert len(runs) == 1
    assert runs[0].slot.level == expected_level


def test_interrupted_slot_is_caught_up_by_the_rule() -> None:
    base = due_work(
        [policy()],
        {"p": PolicyState(first_seen=t("2026-03-04T00:00"))},
        t("2026-03-04T01:30"),
        UTCZ,
        GRACE,
    )[-1].slot
    state = {"p": PolicyState(t("2026-03-04T00:00"), base.due, reopen=(base,))}
    # back within grace: the interrupted slot runs again under its own key
    assert summary(due_work([policy()], state, t("2026-03-04T02:00"), UTCZ, GRACE)) == [
        ("run", base.key, "incremental")
    ]
    # found the next day after its slot: once -> one run, the interrupted one recorded missed
    jobs = due_work([policy()], state, t("2026-03-05T01:40"), UTCZ, GRACE)
    assert summary(jobs) == [
        ("missed", base.key, "incremental"),
        ("run", "p@2026-03-05T01:30", "incremental"),
    ]
    # skip: recorded skipped, nothing runs late
    jobs = due_work([policy(catch_up="skip")], state, t("2026-03-04T09:00"), UTCZ, GRACE)
    assert summary(jobs) == [("skipped", base.key, "incremental")]


def test_records_come_before_runs_and_policies_are_independent() -> None:
    a, b = policy("a", catch_up="skip"), policy("b", catch_up="all")
    state = {
        n: PolicyState(first_seen=t("2026-02-01T00:00"), newest_due=t("2026-03-02T01:30"))
        for n in ("a", "b")
    }
    jobs = due_work([b, a], state, t("2026-03-04T01:40"), UTCZ, GRACE)
    actions = [j.action for j in jobs]
    assert actions == sorted(actions, key=lambda x: x != "record")
    assert Counter((j.slot.policy, j.action) for j in jobs) == {
        ("a", "record"): 1,
        ("a", "run"): 1,
        ("b", "run"): 2,
    }


# --------------------------------------------------------------------------- simulated clock


def simulate(
    pol: Policy,
    tz: str,
    start: datetime,
    end: datetime,
    step: timedelta,
    down: tuple[datetime, datetime] | None = None,
) -> list[Job]:
    state = {pol.name: PolicyState(first_seen=start)}
    done: list[Job] = []
    now = start
    while now <= end:
        if not (down and down[0] <= now < down[1]):
            jobs = due_work([pol], state, now, tz, GRACE)
            state = apply(state, jobs)
            done += jobs
        now += step
    return done


@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin"])
def test_a_month_hour_by_hour_runs_each_day_once_at_the_highest_level(tz: str) -> None:
    pol = policy(
        schedules=(
            ScheduleEntry("daily", "30 2 * * *", "incremental"),
            ScheduleEntry("weekly", "0 2 * * 0", "differential"),
            ScheduleEntry("monthly", "0 3 1 * *", "full"),
        )
    )
    # March 2026 in Berlin: 02:30 does not exist on the 29th (spring forward).
    start = t("2026-02-28T12:00", tz)
    jobs = simulate(pol, tz, start, t("2026-04-01T00:00", tz), timedelta(minutes=20))
    runs = [j for j in jobs if j.action == "run"]
    assert all(j.action == "run" for j in jobs), "a daemon passing every 20 min misses nothing"
    days = Counter(j.slot.key.split("@")[1][:10] for j in runs)
    assert len(days) == 31 and set(days.values()) == {1}
    levels = {j.slot.key.split("@")[1][:10]: j.slot.level for j in runs}
    assert levels["2026-03-01"] == "full"  # Sunday the 1st: monthly wins
    assert [d for d, lv in levels.items() if lv == "differential"] == [
        "2026-03-08",
        "2026-03-15",
        "2026-03-22",
        "2026-03-29",
    ]
    assert "2026-03-29" in days  # the spring-forward day still has its run


@pytest.mark.parametrize(
    ("mode", "late_runs", "recorded"),
    [("once", 1, 2), ("all", 3, 0), ("skip", 0, 3)],
)
def test_a_month_with_three_days_down(mode: str, late_runs: int, recorded: int) -> None:
    pol = policy(catch_up=mode)
    start = t("2026-03-01T00:00")
    down = (t("2026-03-10T00:00"), t("2026-03-12T12:00"))
    jobs = simulate(pol, UTCZ, start, t("2026-03-31T23:00"), timedelta(hours=1), down)
    keys = Counter(j.slot.key for j in jobs)
    assert set(keys.values()) == {1}, "every slot decided exactly once"
    assert len(keys) == 31
    first_back = [
        j
        for j in jobs
        if j.slot.due.date().isoformat() in ("2026-03-10", "2026-03-11", "2026-03-12")
    ]
    assert sum(j.action == "run" for j in first_back) == late_runs
    assert sum(j.action == "record" for j in first_back) == recorded


# --------------------------------------------------------------------------- retention, prune, RPO


@pytest.mark.parametrize(
    ("retention", "good", "last", "now", "expected"),
    [
        (Retention(daily=7), None, None, "2026-03-04T02:00", False),  # nothing to keep yet
        (Retention(), "2026-03-04T01:30", None, "2026-03-04T02:00", False),  # no rules
        (Retention(daily=7), "2026-03-04T01:30", None, "2026-03-04T02:00", True),
        (Retention(daily=7), "2026-03-04T01:30", "2026-03-04T01:40", "2026-03-04T05:00", False),
        (Retention(daily=7), "2026-03-05T01:30", "2026-03-04T01:40", "2026-03-05T01:40", True),
        (Retention(daily=7), "2026-03-04T01:30", "2026-03-04T01:40", "2026-03-06T01:40", False),
    ],
)
def test_forget_due(
    retention: Retention, good: str | None, last: str | None, now: str, expected: bool
) -> None:
    pol = policy(retention=retention)
    assert (
        forget_due(pol, t(good) if good else None, t(last) if last else None, t(now), UTCZ)
        is expected
    )


@pytest.mark.parametrize(
    ("removed", "last", "now", "expected"),
    [
        (0, None, "2026-03-04T00:00", False),
        (2, None, "2026-03-04T00:00", True),
        (2, "2026-03-01T00:00", "2026-03-04T00:00", False),
        (2, "2026-03-01T00:00", "2026-03-08T00:00", True),
    ],
)
def test_prune_due(removed: int, last: str | None, now: str, expected: bool) -> None:
    assert prune_due(removed, t(last) if last else None, t(now)) is expected


@pytest.mark.parametrize(
    ("total", "remove", "share", "refused"),
    [
        (0, 0, 0.5, False),
        (4, 0, 0.5, False),
        (4, 2, 0.5, False),
        (4, 3, 0.5, True),
        (4, 4, 1.0, True),  # never everything, whatever the share
        (1, 1, 1.0, True),
        (10, 9, 0.9, False),
    ],
)
def test_share_refusal(total: int, remove: int, share: float, refused: bool) -> None:
    assert (share_refusal(total, remove, share) is not None) is refused


def test_rpo_breach_without_any_failed_run() -> None:
    pol = policy(rpo_hours=26, targets=("a", "b"))  # type: ignore[call-arg]
    seen = {"p": t("2026-03-01T00:00")}
    now = t("2026-03-05T12:00")
    newest = {("p", "a"): t("2026-03-05T01:30"), ("p", "b"): t("2026-03-03T01:30")}
    breaches = rpo_breaches([pol], newest, seen, now)
    assert [(b.target, round(b.age_hours, 1)) for b in breaches] == [("b", 58.5)]
    # never backed up: measured from first sight, so a new policy is not breached at once
    assert rpo_breaches([pol], {}, {"p": now - timedelta(hours=2)}, now) == []
    assert len(rpo_breaches([pol], {}, seen, now)) == 2
    assert rpo_breaches([policy()], {}, seen, now) == []  # no rpo_hours, no alert
