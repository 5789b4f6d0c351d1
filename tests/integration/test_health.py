"""Item 6 (issue 14): `status` health reflects the newest verification and drill outcome
of each target (damaged, failed, overdue) besides backups and RPO, with the reason.

Real restic, a real local repository damaged by hand; `status` reads the catalog.
`status` exits 0 whatever the health (README): the health is in its output.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import LOCAL_HEAD, Workspace

pytestmark = pytest.mark.integration

POLICIES = (
    LOCAL_HEAD
    + """
[policies.files]
importance = "critical"
sources = ["data"]
targets = ["local"]
daily = { at = "01:30", level = "incremental" }
verify = { every = "daily", media = true }
"""
)


def row(ws: Workspace, *args: str) -> dict:
    (only,) = ws.orc_json("status", *args)["policies"]
    return only


def at(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat(timespec="minutes")


def test_item6_status_shows_damage_found_by_verification(workspace: Workspace) -> None:
    """Item 6: a repository damaged by hand and verified (exit 4) is `damaged` in
    status, with the tier and the damaged file as the reason (text and --json)."""
    ws = workspace
    ws.write_policies(POLICIES)
    ws.orc("backup", "files")
    ws.orc("verify", "--tier", "media")
    ws.orc("verify", "files", "--tier", "check")
    assert row(ws)["health"] == "ok"

    pack = max((ws.repo / "data").rglob("*"), key=lambda p: p.stat().st_size if p.is_file() else 0)
    pack.unlink()
    ws.orc("verify", "--tier", "media", check=4)
    name = pack.relative_to(ws.repo).as_posix()

    r = row(ws)
    assert r["health"] == "damaged"
    damaged = [p for p in r["health_reasons"] if p["health"] == "damaged"]
    assert [p["tier"] for p in damaged] == ["media"]
    assert name in damaged[0]["reason"] and "missing" in damaged[0]["reason"]
    text = ws.orc("status")  # exit 0: the health is in the output
    assert "damaged" in text.stdout
    assert "files@local: damaged: media" in text.stdout and name in text.stdout


def test_item6_status_shows_a_verification_that_failed(workspace: Workspace) -> None:
    """Item 6: a check that could not run (the repository is gone) is `verify failed`."""
    ws = workspace
    ws.write_policies(POLICIES)
    ws.orc("backup", "files")
    shutil.move(ws.repo, ws.root / "elsewhere")
    ws.orc("verify", "files", "--tier", "check", check=1)
    r = row(ws)
    assert r["health"] == "verify failed"
    [failed] = [p for p in r["health_reasons"] if p["health"] == "verify failed"]
    assert failed["tier"] == "check" and "could not" in failed["reason"]


def test_item6_status_shows_an_overdue_verification(workspace: Workspace) -> None:
    """Item 6: a daily verify configured and not completed within its interval plus a
    day of grace is `verify overdue`; once it ran it is ok until it is late again."""
    ws = workspace
    ws.write_policies(POLICIES)
    ws.orc("backup", "files")
    assert row(ws, "--now", at(timedelta(hours=12)))["health"] == "ok"
    late = row(ws, "--now", at(timedelta(days=2)))
    assert late["health"] == "verify overdue"
    reasons = {p["tier"]: p["reason"] for p in late["health_reasons"]}
    assert set(reasons) == {"check", "media"} and "never completed" in reasons["media"]

    ws.orc("verify", "files")  # check and media (the policy has no subset fraction)
    assert row(ws, "--now", at(timedelta(days=1)))["health"] == "ok"
    again = row(ws, "--now", at(timedelta(days=3)))
    assert again["health"] == "verify overdue"
    assert all("last completed" in p["reason"] for p in again["health_reasons"])
    assert json.dumps(again)  # plain JSON


# --- the health rules on a real catalog (no restic): a table of recorded outcomes ------

TWO_POLICIES = (
    POLICIES.replace('verify = { every = "daily", media = true }', "")
    + """
[policies.other]
importance = "normal"
sources = ["data"]
targets = ["local"]
daily = { at = "01:30", level = "incremental" }
drill = { every = "weekly" }
"""
)
T0 = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)


def _catalog_status(
    tmp_path: Path, records: list[tuple[str, str | None, str, str]]
) -> dict[str, list[tuple[str, str | None]]]:
    """Record a good backup of both policies at T0 and the verifications given as
    (tier, policy, outcome, error_kind or ''), an hour apart; -> policy: problems."""
    from orchestrator.catalog import RunRecord, VerificationRecord
    from orchestrator.catalog.sqlite import SqliteCatalog
    from orchestrator.clock import FixedClock
    from orchestrator.engine.context import Context
    from orchestrator.engine.status import status
    from orchestrator.policies.loader import load_config

    (tmp_path / "data").mkdir()
    config_path = tmp_path / "policies.toml"
    config_path.write_text(TWO_POLICIES)
    cfg = load_config(config_path)
    catalog = SqliteCatalog(tmp_path / "catalog.sqlite")
    for name in ("files", "other"):
        catalog.start_run(
            RunRecord(
                id=f"run-{name}", kind="backup", policy=name, target="local", started_at=T0,
                host="h", pid=1, level="full", outcome="success", finished_at=T0,
                snapshot_id="abcd1234",
            )
        )  # fmt: skip
    for i, (tier, policy, outcome, kind) in enumerate(records):
        when = T0 + timedelta(hours=i + 1)
        catalog.start_verification(
            VerificationRecord(
                id=f"v{i}", tier=tier, policy=policy, target="local", started_at=when,
                outcome=outcome, finished_at=when, error_kind=kind or None,
                message="target unreachable" if outcome == "failed" else "",
                damage=[{"kind": "missing", "path": "data/ab/x", "message": "gone now"}]
                if outcome == "damaged" else [],
            )
        )  # fmt: skip
    now = T0 + timedelta(hours=len(records) + 2)
    ctx = Context(cfg, catalog, runner=None, secrets=None, clock=FixedClock(now))  # type: ignore[arg-type]
    try:
        return {r.policy: [(p.health, p.tier) for p in r.problems] for r in status(ctx, now)}
    finally:
        catalog.close()


HEALTH_TABLE = [
    pytest.param([], {"files": [], "other": []}, id="nothing checked yet, nothing overdue"),
    pytest.param(
        [("media", None, "damaged", "damage")],
        {"files": [("damaged", "media")], "other": [("damaged", "media")]},
        id="target-wide damage is every policy's there",
    ),
    pytest.param(
        [("check", "files", "damaged", "damage"), ("check", "files", "ok", "")],
        {"files": [], "other": []},
        id="a newer clean run of the tier clears it",
    ),
    pytest.param(
        [("check", "files", "damaged", "damage"), ("media", None, "ok", "")],
        {"files": [("damaged", "check")], "other": [("damaged", "check")]},
        id="another tier's clean run does not",
    ),
    pytest.param(
        [("drill", "other", "failed", "network")],
        {"files": [], "other": [("drill failed", "drill")]},
        id="a drill is the policy's own",
    ),
    pytest.param(
        [("drill", "other", "damaged", "damage"), ("subset", None, "failed", "busy")],
        {"files": [("verify failed", "subset")],
         "other": [("damaged", "drill"), ("verify failed", "subset")]},
        id="damage first, then failures",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("records", "expected"), HEALTH_TABLE)
def test_item6_health_table(
    tmp_path: Path,
    records: list[tuple[str, str | None, str, str]],
    expected: dict[str, list[tuple[str, str | None]]],
) -> None:
    """Item 6: which recorded verification outcomes make which health, worst first."""
    assert _catalog_status(tmp_path, records) == expected
