"""Item 7: `plan` sees only the history before its own moment (a table).

Before the fix, a plan whose start lay before the newest recorded runs (a past
`--from`, or runs recorded by `run --due --now` at a simulated later time) built
a History with a newest full newer than the newest snapshot of "any" level seen
at the plan's start, and crashed with `ValueError: inconsistent history`.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.catalog import RunRecord
from orchestrator.catalog.sqlite import SqliteCatalog
from orchestrator.engine.context import Context
from orchestrator.engine.plan import plan
from orchestrator.policies.loader import load_config
from orchestrator.restic.runner import Runner
from orchestrator.security.secrets import SecretStore

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)  # a Sunday, the 1st: the monthly full

POLICIES = """\
[orchestrator]
state_dir = "var"
timezone = "UTC"

[targets.local]
kind = "local"
path = "repo"
password = "secret:x"

[policies.files]
importance = "normal"
sources = ["data"]
targets = ["local"]
daily   = { at = "01:30", level = "incremental" }
monthly = { day = 1, at = "03:00", level = "full" }
"""


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


# (runs recorded as (start, level, outcome), the plan's start, expected level of its first run)
CASES = [
    # runs after the plan's start are ignored: as of day 5 there is no full yet
    ([(day(10), "full", "success"), (day(11), "incremental", "success")], day(5), "full"),
    # an older incremental and a newer full (the crash): as of day 5 only the incremental
    ([(day(1), "incremental", "success"), (day(10), "full", "success")], day(5), "full"),
    # a full before the start serves; later runs do not matter
    (
        [(day(0), "full", "success"), (day(10), "full", "failed")],
        day(5),
        "incremental",
    ),
    # a failed full after the start does not force a full before it happened
    ([(day(0), "full", "success"), (day(6), "full", "failed")], day(3), "incremental"),
    # a failed full before the start does
    ([(day(0), "full", "success"), (day(2), "full", "failed")], day(3), "full"),
    # a full refused as busy (skipped) was no attempt (item 8)
    ([(day(0), "full", "success"), (day(2), "full", "skipped")], day(3), "incremental"),
    # all history in a simulated future; plan from "now" before it
    ([(day(30), "full", "success")], day(-2), "full"),
]


@pytest.mark.parametrize(("runs", "start", "first_level"), CASES)
def test_item7_plan_uses_history_before_its_start(
    tmp_path: Path, runs: list[tuple[datetime, str, str]], start: datetime, first_level: str
) -> None:
    (tmp_path / "policies.toml").write_text(textwrap.dedent(POLICIES))
    config = load_config(tmp_path / "policies.toml")
    catalog = SqliteCatalog(tmp_path / "var" / "catalog.sqlite")
    for i, (when, level, outcome) in enumerate(runs):
        catalog.start_run(
            RunRecord(
                id=f"run{i}",
                kind="backup",
                policy="files",
                target="local",
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
    ctx = Context(
        config, catalog, Runner(), SecretStore(tmp_path / "var", tmp_path / "keys" / "secrets.key")
    )

    planned = plan(ctx, start, 3)

    assert planned, "the plan has runs"
    assert planned[0].decision.level == first_level, planned[0].decision.reason
    catalog.close()
