"""The catalog's grouped questions (one statement for every policy) give the answers of
the per-policy ones they replace in `status`, `plan` and each daemon pass, on a real
SQLite catalog with ties, gone snapshots, skipped and failed runs and mixed offsets;
and what every start asks is answered from an index, not by reading every run."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from orchestrator.catalog import RunRecord, SlotRecord
from orchestrator.catalog.sqlite import SqliteCatalog
from orchestrator.engine.plan import history_before
from orchestrator.policies.levels import History

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 1, tzinfo=UTC)
OUTCOMES = ("success", "success", "partial", "failed", "skipped", "running", "cancelled")
LEVELS = ("full", "incremental", "incremental", "differential", None)
PAIRS = [(f"p{i}", t) for i in range(6) for t in ("a", "b")] + [("lonely", "a")]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> SqliteCatalog:
    rng = random.Random(15)
    cat = SqliteCatalog(tmp_path_factory.mktemp("cat") / "catalog.sqlite")
    n = 0
    for policy, target in PAIRS[:-1]:
        for _ in range(rng.randint(0, 40)):
            n += 1
            # some runs share a start (ties broken by rowid), some carry another offset
            when = T0 + timedelta(hours=rng.randint(0, 200))
            if rng.random() < 0.2:
                when = when.astimezone(timezone(timedelta(hours=2)))
            outcome = rng.choice(OUTCOMES)
            cat.start_run(
                RunRecord(
                    id=f"r{n:05d}",
                    kind=rng.choice(("backup", "backup", "backup", "copy")),
                    policy=policy,
                    target=target,
                    started_at=when,
                    host="h",
                    pid=1,
                    level=rng.choice(LEVELS),
                    outcome=outcome,
                    snapshot_id=f"{n:08d}" if outcome in ("success", "partial") else None,
                    gone_at=when if rng.random() < 0.15 else None,
                    gone_reason=rng.choice(("vanished", "forgotten")),
                )
            )
        for k in range(rng.randint(0, 5)):
            due = T0 + timedelta(days=rng.randint(0, 30), minutes=k)
            cat.record_slot(
                SlotRecord(
                    key=f"{policy}-{target}-{k}",
                    kind=rng.choice(("backup", "forget")),
                    policy=policy,
                    due=due,
                    level="full",
                    state="done",
                    recorded_at=due,
                )
            )
    return cat


@pytest.mark.parametrize("level", [None, "full", "incremental", "differential"])
@pytest.mark.parametrize("kind", ["backup", "copy"])
def test_newest_runs_is_newest_run_per_pair(catalog: SqliteCatalog, level, kind) -> None:
    grouped = catalog.newest_runs(PAIRS, kind=kind, level=level)
    for pair in PAIRS:
        one = catalog.newest_run(*pair, kind=kind, level=level)
        assert grouped.get(pair) == one, pair
    assert any(grouped.values())


def test_last_attempts_is_the_newest_run_not_skipped(catalog: SqliteCatalog) -> None:
    grouped = catalog.last_attempts(PAIRS)
    for pair in PAIRS:
        runs = catalog.runs(policy=pair[0], target=pair[1], kind="backup", limit=1000)
        expected = next((r for r in runs if r.outcome != "skipped"), None)
        assert grouped.get(pair) == expected, pair


def test_running_and_gone_runs(catalog: SqliteCatalog) -> None:
    every = catalog.runs(limit=100_000)
    assert catalog.running_runs() == [r for r in every if r.outcome == "running"]
    for target in ("a", "b"):
        assert catalog.gone_runs(target, "vanished") == [
            r for r in every if r.target == target and r.gone_reason == "vanished"
        ]
        assert catalog.gone_runs(target, "vanished", "p1") == [
            r
            for r in every
            if r.target == target and r.gone_reason == "vanished" and r.policy == "p1"
        ]


def test_run_pairs_and_trail_give_the_plan_history(catalog: SqliteCatalog) -> None:
    every = catalog.runs(kind="backup", limit=100_000)
    assert catalog.run_pairs("backup") == {(r.policy, r.target) for r in every}
    for pair in PAIRS:
        for moment in (T0 + timedelta(hours=h) for h in (0, 50, 100, 300)):
            full = catalog.newest_run(*pair, level="full", before=moment)
            anyl = catalog.newest_run(*pair, before=moment)
            attempt = catalog.newest_run(
                *pair, level="full", outcomes=("success", "partial", "failed"), before=moment
            )
            expected = History(
                full.started_at if full else None,
                anyl.started_at if anyl else None,
                attempt is not None and attempt.outcome == "failed",
            )
            assert history_before(catalog.run_trail(*pair), moment) == expected, (pair, moment)


def test_slot_dues_first_seen_and_marks(catalog: SqliteCatalog) -> None:
    names = sorted({p for p, _ in PAIRS})
    for kind in ("backup", "forget"):
        grouped = catalog.newest_slot_dues(kind, names)
        for name in names:
            assert grouped.get(name) == catalog.newest_slot_due(kind, name)
    first = T0 + timedelta(days=3)
    catalog.first_seen("p0", T0)
    seen = catalog.first_seen_all(names, first)
    assert seen["p0"] == T0 and seen["lonely"] == first
    assert catalog.first_seen_all(names, first + timedelta(days=1)) == seen
    catalog.set_mark("rpo-breach:p1@a", "x", T0)
    catalog.set_mark("rpo-breach:p2@b", "y", T0)
    catalog.set_mark("other", "z", T0)
    assert catalog.marks("rpo-breach:") == {"rpo-breach:p1@a": "x", "rpo-breach:p2@b": "y"}


@pytest.mark.parametrize(
    ("sql", "index"),
    [
        ("SELECT * FROM runs WHERE outcome = 'running' AND host = 'h'", "runs_by_outcome"),
        (
            "SELECT * FROM verifications WHERE outcome = 'running' AND host = 'h' AND pid > 0",
            "verifications_by_outcome",
        ),
        ("SELECT * FROM runs WHERE gone_reason = 'vanished' AND target = 'a'", "runs_by_gone"),
    ],
)
def test_what_every_start_asks_is_answered_from_an_index(
    catalog: SqliteCatalog, sql: str, index: str
) -> None:
    plan = " ".join(str(r[3]) for r in catalog.db.execute("EXPLAIN QUERY PLAN " + sql))
    assert f"USING INDEX {index}" in plan, plan


def test_an_old_catalog_is_migrated_with_its_runs(tmp_path: Path) -> None:
    """A catalog at schema 4 (before the indexes) keeps its runs and gains the indexes."""
    import sqlite3

    from orchestrator.catalog.sqlite import MIGRATIONS

    path = tmp_path / "catalog.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    for version, step in enumerate(MIGRATIONS[:4]):
        db.executescript(step)
        db.execute(f"PRAGMA user_version = {version + 1}")
    db.execute(
        "INSERT INTO runs (id, kind, policy, target, started_at, host, pid, outcome) "
        "VALUES ('old', 'backup', 'p', 't', ?, 'h', 1, 'success')",
        (T0.isoformat(),),
    )
    db.close()
    cat = SqliteCatalog(path)
    assert cat.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert cat.newest_runs([("p", "t")])[("p", "t")].id == "old"
    names = {r[0] for r in cat.db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"runs_by_outcome", "runs_by_pair", "runs_by_level", "slots_by_kind_state"} <= names
    cat.close()


def test_newest_verification_times_per_policy_target_tier(tmp_path: Path) -> None:
    from orchestrator.catalog import VerificationRecord

    rng = random.Random(16)
    cat = SqliteCatalog(tmp_path / "catalog.sqlite")
    keys = [(p, t, tier) for p in ("p0", "p1") for t in ("a", "b") for tier in ("check", "drill")]
    for n in range(120):
        policy, target, tier = rng.choice(keys)
        cat.start_verification(
            VerificationRecord(
                id=f"v{n}",
                tier=tier,
                policy=policy,
                target=target,
                started_at=T0 + timedelta(hours=rng.randint(0, 50)),
                outcome=rng.choice(("ok", "damaged", "failed", "running")),
            )
        )
    keys.append(("nobody", "a", "check"))
    for outcomes in (None, ("ok", "damaged"), ("ok",)):
        grouped = cat.newest_verification_times(keys, outcomes)
        records = cat.newest_verifications(keys, outcomes)
        for policy, target, tier in keys:
            found = cat.verifications(
                target=target, tier=tier, policy=policy, outcomes=outcomes, limit=1
            )
            assert grouped.get((policy, target, tier)) == (found[0].started_at if found else None)
            assert records.get((policy, target, tier)) == (found[0] if found else None)
    cat.close()
