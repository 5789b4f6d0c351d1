"""The fast paths `plan` takes for many policies give the answers of the plain ones.

- decide_levels == decide_level run by run, each run's history made by the runs before;
- history_before == the three newest_run questions asked of the same runs;
- render_plan == the generic `table` of the same rows; plan_json == dump_json's document.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from orchestrator.catalog import GOOD_OUTCOMES
from orchestrator.engine.plan import history_before
from orchestrator.policies.levels import History, decide_level, decide_levels
from orchestrator.render import dump_json, table
from orchestrator.render.listing import plan_json, render_plan

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def one_by_one(planned, history, max_full):
    """The loop plan.py ran before decide_levels: the reference."""
    out = []
    for asked, due in planned:
        decision = decide_level(asked, history, due, max_full)
        out.append(decision)
        if decision.level == "full":
            history = History(due, due, False)
        else:
            history = History(history.newest_full, due, history.last_full_failed)
    return out


DAILY = [("incremental", day(n)) for n in range(1, 40)]
WEEKLY_DIFF = [("differential" if n % 7 == 0 else "incremental", day(n)) for n in range(1, 60)]
MONTHLY_FULL = [("full" if n % 30 == 0 else "incremental", day(n)) for n in range(1, 90)]

LEVEL_CASES = [
    # (planned runs, history, max_full_interval_days)
    (DAILY, History(None, None), 35),  # a new target: the first run is a full
    (DAILY, History(None, day(0)), 35),  # snapshots but no full
    (DAILY, History(day(0), day(0), True), 35),  # the last full failed
    (DAILY, History(day(-40), day(0)), 35),  # the full is too old already
    (DAILY, History(day(0), day(0)), 7),  # the full ages past the interval inside the plan
    (DAILY, History(day(-7), day(0)), 7),  # exactly 7 days old at day 0, 8 at day 1
    (WEEKLY_DIFF, History(day(0), day(0)), 10),
    (WEEKLY_DIFF, History(None, None), 3660),
    (MONTHLY_FULL, History(day(0), day(0)), 20),
    (MONTHLY_FULL, History(day(-5), day(0), True), 45),
    ([], History(None, None), 35),
]


@pytest.mark.parametrize(("planned", "history", "max_full"), LEVEL_CASES)
def test_decide_levels_is_decide_level_run_by_run(planned, history, max_full) -> None:
    assert decide_levels(planned, history, max_full) == one_by_one(planned, history, max_full)


def test_decide_levels_refuses_an_unknown_level_as_decide_level_does() -> None:
    with pytest.raises(ValueError, match="level must be one of"):
        decide_levels([("weekly", day(1))], History(day(0), day(0)), 35)


# ---------------------------------------------------------------- history_before

Run = tuple[datetime, str | None, str, bool]  # started_at, level, outcome, gone


def newest(trail: list[Run], moment, level=None, outcomes=GOOD_OUTCOMES):
    """newest_run's answer: the first run (newest first) of the level and outcomes, not
    gone, started before the moment."""
    for started, lv, outcome, gone in trail:
        if (level is None or lv == level) and outcome in outcomes and not gone and started < moment:
            return started, outcome
    return None


def reference_history(trail: list[Run], moment: datetime) -> History:
    full = newest(trail, moment, "full")
    anyl = newest(trail, moment)
    attempt = newest(trail, moment, "full", ("success", "partial", "failed"))
    return History(
        full[0] if full else None,
        anyl[0] if anyl else None,
        attempt is not None and attempt[1] == "failed",
    )


HISTORY_CASES = [
    [],
    [(day(1), "incremental", "success", False), (day(0), "full", "success", False)],
    [(day(2), "full", "failed", False), (day(1), "incremental", "success", False)],
    [(day(2), "full", "skipped", False), (day(0), "full", "success", False)],  # busy: no attempt
    [(day(2), "full", "success", True), (day(0), "full", "success", False)],  # gone
    [(day(2), "full", "failed", True), (day(0), "full", "failed", False)],  # gone, failed
    [(day(9), "full", "success", False), (day(4), "incremental", "partial", False)],
    [
        (day(6), "incremental", "running", False),
        (day(5), "differential", "partial", False),
        (day(3), "full", "partial", False),
        (day(1), "full", "failed", False),
    ],
    [(day(3), None, "failed", False), (day(2), "incremental", "success", False)],
]


@pytest.mark.parametrize("trail", HISTORY_CASES)
@pytest.mark.parametrize("moment", [day(-1), day(1), day(2), day(3) + timedelta(hours=1), day(10)])
def test_history_before_answers_as_three_newest_run_queries(trail, moment) -> None:
    assert history_before(iter(trail), moment) == reference_history(trail, moment)


# ---------------------------------------------------------------- rendering


@dataclass(frozen=True)
class _Slot:
    policy: str
    key: str
    due: datetime
    level: str
    schedules: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class _Decision:
    level: str
    reason: str


@dataclass(frozen=True)
class _Run:
    slot: _Slot
    target: str
    decision: _Decision


BERLIN = ZoneInfo("Europe/Berlin")
# The fall-back night: 02:30 CEST, then 02:30 CET an hour later (two different rows).
FIRST = datetime(2026, 10, 25, 0, 30, tzinfo=UTC).astimezone(BERLIN)
SECOND = datetime(2026, 10, 25, 1, 30, tzinfo=UTC).astimezone(BERLIN)
RUNS = [
    _Run(
        _Slot("a", "a@2026-10-25T02:30", FIRST, "incremental", ("daily",), "daily incremental"),
        "local",
        _Decision("full", "upgraded to full: no snapshot yet on this target"),
    ),
    _Run(
        _Slot("long-policy-name", "x", SECOND, "full", ("monthly", "daily"), "monthly full"),
        "offsite-target",
        _Decision("full", "full as asked"),
    ),
    _Run(
        _Slot("b", "b@2026-10-26T00:00", SECOND + timedelta(days=1), "differential", (), "w d"),
        "t",
        _Decision("differential", "differential as asked"),
    ),
]


@pytest.mark.parametrize("count", [0, 1, 2, 3, 10])
def test_render_plan_draws_the_generic_table(count: int) -> None:
    runs = (RUNS * 4)[:count]
    expected = (
        table(
            ["due", "policy", "target", "level", "why"],
            [
                [
                    r.slot.due,
                    r.slot.policy,
                    r.target,
                    r.decision.level,
                    f"{r.slot.reason}; {r.decision.reason}",
                ]
                for r in runs
            ],
        )
        if runs
        else "nothing scheduled in this window"
    )
    assert render_plan(runs) == expected


@pytest.mark.parametrize("count", [0, 1, 3, 10_000, 10_001, 20_003])
def test_plan_json_is_the_dump_json_document(count: int) -> None:
    runs = (RUNS * (count // len(RUNS) + 1))[:count]  # past 10,000: written in pieces
    rows = [
        {
            "due": r.slot.due,
            "policy": r.slot.policy,
            "target": r.target,
            "level": r.decision.level,
            "scheduled_level": r.slot.level,
            "schedules": list(r.slot.schedules),
            "slot": r.slot.key,
            "why": f"{r.slot.reason}; {r.decision.reason}",
        }
        for r in runs
    ]
    expected = dump_json("plan", {"from": T0, "days": 3, "runs": rows})
    text = plan_json(T0, 3, runs)
    assert json.loads(text) == json.loads(expected)
    assert text.count("\n") >= count  # one run a line


# ---------------------------------------------------------------- ordering


def _at(policy: str, target: str, due: datetime) -> _Run:
    slot = _Slot(policy, f"{policy}@x", due, "incremental", ("daily",), "daily incremental")
    return _Run(slot, target, _Decision("incremental", "as asked"))


def test_ordered_is_by_instant_then_policy_and_target() -> None:
    from orchestrator.engine.plan import ordered

    noon = datetime(2026, 11, 2, 11, 0, tzinfo=UTC).astimezone(BERLIN)
    same_noon = datetime(2026, 11, 2, 11, 0, tzinfo=UTC).astimezone(BERLIN)  # another object
    buckets = [
        [_at("b", "t1", SECOND), _at("c", "t0", SECOND)],  # 02:30 CET, the later one
        [_at("a", "t1", noon), _at("c", "t0", noon)],
        [_at("a", "t0", same_noon), _at("b", "t0", same_noon)],  # the same instant
        [_at("z", "t0", FIRST)],  # 02:30 CEST: the same wall time, an hour earlier
    ]
    got = [(r.slot.due.astimezone(UTC), r.slot.policy, r.target) for r in ordered(buckets)]
    everything = [r for b in buckets for r in b]
    expected = sorted((r.slot.due.astimezone(UTC), r.slot.policy, r.target) for r in everything)
    assert got == expected
    assert [p for _, p, _ in got] == ["z", "b", "c", "a", "a", "b", "c"]
    assert ordered([]) == []


# ---------------------------------------------------------------- calendar rules

RULE_CASES = [
    # (cron, month_day): the shapes the loader makes, and others croniter must decide
    ("30 2 * * *", None),
    ("0 0 * * *", None),
    ("59 23 * * *", None),
    ("05 04 * * *", None),
    ("7 3 * * 1", None),
    ("7 3 * * 0", None),
    ("7 3 * * 7", None),
    ("0 1 15 * *", None),
    ("0 1 31 * *", None),
    ("0 1 1 * *", 1),
    ("0 1 31 * *", 31),
    ("0 1 29 * *", 29),
    ("0 1 * * *", 30),
    ("0 1 15 * 2", 15),
    ("0 1 15 * 2", None),
    ("*/5 1 * * *", None),
    ("0 1-3 * * *", None),
    ("0 1 * 2 *", None),
    ("0 1 L * *", None),
    ("0 1 * * 1#2", None),
    ("0 1 * * mon", None),
    ("0 1 1,15 * *", None),
]


@pytest.mark.parametrize(("cron", "month_day"), RULE_CASES)
def test_plain_rule_reads_what_croniter_reads(cron: str, month_day: int | None) -> None:
    from orchestrator.policies.schedule import _croniter_rule, _plain_rule

    plain = _plain_rule(cron, month_day)
    assert plain is None or plain == _croniter_rule(cron, month_day)
    # the loader's shapes never need croniter
    minute, hour, *rest = cron.split()
    if minute.isdigit() and hour.isdigit() and rest in (["*", "*", "*"], ["*", "*", "1"]):
        assert plain is not None


# Runs for the shortcut of decide_levels (no run after the first can be upgraded).
SHORT = [("incremental", day(n)) for n in range(1, 20)]
SHORT_MIXED = [(("full", "differential", "incremental")[n % 3], day(n)) for n in range(1, 30)]
SHORTCUT_CASES = [
    (SHORT, History(None, None), 35),  # new target: first upgraded, rest as asked
    (SHORT, History(None, None), 18),  # the first full ages past the interval: no shortcut
    (SHORT, History(None, None), 17),
    (SHORT, History(day(0), day(0)), 19),  # the full serves to the last run
    (SHORT, History(day(0), day(0)), 18),  # ... but for the last
    (SHORT, History(None, day(0)), 35),  # snapshots but no full
    (SHORT, History(day(0), day(0), True), 35),  # failed full
    (SHORT_MIXED, History(None, None), 35),
    (SHORT_MIXED, History(day(-10), day(0)), 35),
    (SHORT_MIXED, History(day(-10), day(0)), 5),
    (SHORT_MIXED[1:], History(None, None), 0),
    (SHORT[:1], History(None, None), 0),
]


@pytest.mark.parametrize(("planned", "history", "max_full"), SHORTCUT_CASES)
def test_decide_levels_shortcut_is_decide_level_run_by_run(planned, history, max_full) -> None:
    from orchestrator.policies.levels import decide_levels_of

    expected = one_by_one(planned, history, max_full)
    assert decide_levels(planned, history, max_full) == expected
    levels, dues = [a for a, _ in planned], [d for _, d in planned]
    assert decide_levels_of(levels, dues, history, max_full) == expected


def test_decide_levels_of_refuses_an_unknown_level_as_decide_level_does() -> None:
    from orchestrator.policies.levels import decide_levels_of

    with pytest.raises(ValueError, match="level must be one of"):
        decide_levels_of(["incremental", "weekly"], [day(1), day(2)], History(None, None), 35)


# A fall-back night (Europe/Berlin, 25 Oct 2026): dues in the zone subtract as wall times.
FALL_BACK = [
    ("incremental", datetime(2026, 10, 25, 0, 45, tzinfo=UTC).astimezone(BERLIN)),  # 02:45 CEST
    ("incremental", datetime(2026, 10, 25, 1, 15, tzinfo=UTC).astimezone(BERLIN)),  # 02:15 CET
]


@pytest.mark.parametrize("hours", [-3, -2, -1.5, -1, -0.75, -0.5, -0.25, 0])
def test_decide_levels_shortcut_across_a_fall_back_night(hours: float) -> None:
    """A full whose age limit falls inside the repeated hour: the shortcut must not
    answer from the last run alone. (A first run upgraded to full there is left out:
    the run-by-run rules then see a newest snapshot older, as wall time, than the
    newest full, and refuse the history.)"""
    full = FALL_BACK[0][1].astimezone(UTC) - timedelta(days=1, hours=hours)
    history = History(full, full)
    assert decide_levels(FALL_BACK, history, 1) == one_by_one(FALL_BACK, history, 1)


# ---------------------------------------------------------------- the whole plan

PLAN_POLICIES = """\
[orchestrator]
state_dir = "var"
timezone = "Europe/Berlin"
max_full_interval_days = 10

[targets.local]
kind = "local"
path = "repo"
password = "secret:x"

[targets.offsite]
kind = "local"
path = "repo2"
password = "secret:x"

[policies.files]
importance = "normal"
sources = ["data"]
targets = ["local", "offsite"]
daily   = { at = "02:30", level = "incremental" }
weekly  = { on = "sun", at = "01:00", level = "differential" }
monthly = { day = 31, at = "02:30", level = "full" }

[policies.db]
importance = "normal"
sources = ["data"]
targets = ["local"]
daily = { at = "02:30", level = "incremental" }
schedules = [
  { cron = "30 2 * * *", level = "differential" },
  { cron = "15 */6 * * *", level = "incremental" },
]

[policies.a-long-policy-name]
importance = "normal"
sources = ["data"]
targets = ["offsite"]
weekly  = { on = "mon", at = "23:59", level = "incremental" }

[policies.quiet]
importance = "normal"
sources = ["data"]
targets = ["local"]
monthly = { day = 15, at = "00:00", level = "full" }
"""


def _plan_context(tmp_path, runs):
    from orchestrator.catalog import RunRecord
    from orchestrator.catalog.sqlite import SqliteCatalog
    from orchestrator.engine.context import Context
    from orchestrator.policies.loader import load_config
    from orchestrator.restic.runner import Runner
    from orchestrator.security.secrets import SecretStore

    (tmp_path / "policies.toml").write_text(PLAN_POLICIES)
    config = load_config(tmp_path / "policies.toml")
    catalog = SqliteCatalog(tmp_path / "var" / "catalog.sqlite")
    for i, (policy, target, when, level, outcome) in enumerate(runs):
        catalog.start_run(
            RunRecord(
                id=f"run{i}",
                kind="backup",
                policy=policy,
                target=target,
                started_at=when,
                host="h",
                pid=1,
                asked_level=level,
                level=level,
                outcome=outcome,
                finished_at=when + timedelta(minutes=5),
                snapshot_id=f"{i:08d}" if outcome == "success" else None,
            )
        )
    return Context(
        config, catalog, Runner(), SecretStore(tmp_path / "var", tmp_path / "keys" / "secrets.key")
    )


PLAN_HISTORIES = [
    [],
    [("files", "local", datetime(2026, 10, 20, 1, tzinfo=UTC), "full", "success")],
    [
        ("files", "offsite", datetime(2026, 10, 1, 1, tzinfo=UTC), "full", "success"),
        ("files", "offsite", datetime(2026, 10, 19, 1, tzinfo=UTC), "full", "failed"),
        ("db", "local", datetime(2026, 10, 19, 1, tzinfo=UTC), "incremental", "success"),
    ],
]
# Windows across the fall-back night (25 Oct 2026), the spring-forward night (28 Mar
# 2027), month ends and one short window.
PLAN_WINDOWS = [
    (datetime(2026, 10, 21, 10, tzinfo=UTC), 31),
    (datetime(2027, 3, 20, 23, 30, tzinfo=UTC), 14),
    (datetime(2026, 11, 24, 10, tzinfo=UTC), 3),
    (datetime(2026, 10, 24, 23, 59, tzinfo=UTC), 1),
]


@pytest.mark.parametrize("history", range(len(PLAN_HISTORIES)))
@pytest.mark.parametrize(("start", "days"), PLAN_WINDOWS)
def test_plan_parts_and_table_are_the_run_by_run_plan(tmp_path, history, start, days) -> None:
    """plan_parts (shared calendar rows, decide_levels' shortcut) and plan_table_pieces
    (no object per run) give the plan made the plain way: slots_between per policy,
    decide_level run by run, ordered by instant, policy, target, drawn by `table`."""
    from orchestrator.engine.plan import history_before, plan, plan_parts
    from orchestrator.policies.schedule import slots_between
    from orchestrator.render.listing import plan_json_parts_pieces, plan_table_pieces

    ctx = _plan_context(tmp_path, PLAN_HISTORIES[history])
    settings = ctx.config.settings
    expected = []
    for name, policy in ctx.config.policies.items():
        slots = slots_between(policy, settings.timezone, start, start + timedelta(days=days))
        for target in policy.targets:
            trail = ctx.catalog.run_trail(name, target, "backup")
            known = history_before(trail, start)
            made = one_by_one([(s.level, s.due) for s in slots], known, 10)
            expected += [(s, target, d) for s, d in zip(slots, made, strict=True)]
    expected.sort(key=lambda r: (r[0].due.astimezone(UTC), r[0].policy, r[1]))
    got = plan(ctx, start, days)
    assert [(r.slot, r.target, r.decision) for r in got] == expected
    assert len(expected) > days  # every window has runs
    text = "".join(plan_table_pieces(plan_parts(ctx, start, days), settings.timezone))
    drawn = table(
        ["due", "policy", "target", "level", "why"],
        [[s.due, s.policy, t, d.level, f"{s.reason}; {d.reason}"] for s, t, d in expected],
    )
    assert text == drawn + "\n"
    parts = plan_parts(ctx, start, days)
    as_json = "".join(plan_json_parts_pieces(start, days, parts, settings.timezone))
    assert as_json == plan_json(start, days, got)  # byte for byte
    assert json.loads(as_json)["runs"][0]["slot"].startswith(expected[0][0].policy + "@")
    ctx.catalog.close()


def test_plan_table_of_nothing(tmp_path) -> None:
    from orchestrator.render.listing import plan_json_parts_pieces, plan_table_pieces

    assert "".join(plan_table_pieces([], "UTC")) == "nothing scheduled in this window\n"
    assert "".join(plan_json_parts_pieces(T0, 3, [], "UTC")) == plan_json(T0, 3, [])
