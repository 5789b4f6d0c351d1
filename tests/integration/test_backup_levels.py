"""Level semantics proved by what restic itself holds afterwards (design section 5)."""

from __future__ import annotations

import sqlite3

import pytest
from conftest import Workspace, restic_snapshots, tag

pytestmark = pytest.mark.integration


def catalog_runs(ws: Workspace) -> list[sqlite3.Row]:
    db = sqlite3.connect(ws.catalog)
    db.row_factory = sqlite3.Row
    return db.execute("SELECT * FROM runs WHERE kind = 'backup' ORDER BY started_at").fetchall()


def test_three_levels_have_the_parents_restic_shows(workspace: Workspace) -> None:
    ws = workspace
    ws.orc("backup", "files", "--level", "full")
    (ws.data / "a.txt").write_text("alpha, changed\n")
    ws.orc("backup", "files", "--level", "incremental")
    (ws.data / "c.txt").write_text("gamma\n")
    ws.orc("backup", "files", "--level", "incremental")
    ws.orc("backup", "files", "--level", "differential")

    snaps = restic_snapshots(ws.repo)
    assert [tag(s, "level") for s in snaps] == [
        "full",
        "incremental",
        "incremental",
        "differential",
    ]
    full, inc1, inc2, diff = snaps
    assert "parent" not in full or not full["parent"]  # full: --force, no parent
    assert inc1["parent"] == full["id"]  # incremental: the newest snapshot of any level
    assert inc2["parent"] == inc1["id"]
    assert diff["parent"] == full["id"]  # differential: the newest full, not the newest
    assert {tag(s, "policy") for s in snaps} == {"files"}

    runs = catalog_runs(ws)
    assert [r["outcome"] for r in runs] == ["success"] * 4
    # The run tag finds each snapshot again; the catalog's id is restic's (short) id.
    for run, snap in zip(runs, snaps, strict=True):
        assert tag(snap, "run") == run["id"]
        assert snap["id"].startswith(run["snapshot_id"])
        assert run["asked_level"] == run["level"] == tag(snap, "level")
        assert run["files_total"] >= 2 and run["bytes_total"] > 0


def test_first_backup_is_upgraded_to_full_and_says_why(workspace: Workspace) -> None:
    ws = workspace
    out = ws.orc_json("backup", "files", "--level", "incremental")
    (run,) = out["runs"]
    assert run["asked_level"] == "incremental" and run["level"] == "full"
    assert "no snapshot yet" in run["level_reason"]
    (snap,) = restic_snapshots(ws.repo)
    assert tag(snap, "level") == "full"

    ws.orc("backup", "files", "--level", "differential")
    row = catalog_runs(ws)[-1]
    assert (row["asked_level"], row["level"]) == ("differential", "differential")


def test_old_full_forces_a_new_full(workspace: Workspace) -> None:
    ws = workspace
    ws.orc("backup", "files", "--level", "full", "--now", "2026-01-01T03:00:00+00:00")
    ws.orc("backup", "files", "--level", "incremental", "--now", "2026-01-20T01:30:00+00:00")
    out = ws.orc_json("backup", "files", "--level", "incremental", "--now", "2026-02-10T01:30:00Z")
    (run,) = out["runs"]
    assert run["level"] == "full"
    assert "35-day" in run["level_reason"]
    snaps = restic_snapshots(ws.repo)
    assert [tag(s, "level") for s in snaps] == ["full", "incremental", "full"]
    # --now stamps snapshots with the simulated time, so the repository agrees with the plan.
    assert [s["time"][:10] for s in snaps] == ["2026-01-01", "2026-01-20", "2026-02-10"]


def test_failed_full_makes_the_next_run_a_full(workspace: Workspace) -> None:
    ws = workspace
    ws.orc("backup", "files", "--level", "full")
    ws.write_policies(
        ws.config.read_text().replace('sources = ["data"]', 'sources = ["data", "gone"]')
    )
    ws.orc("backup", "files", "--level", "full", check=1)
    ws.write_policies(
        ws.config.read_text().replace('sources = ["data", "gone"]', 'sources = ["data"]')
    )
    out = ws.orc_json("backup", "files", "--level", "incremental")
    (run,) = out["runs"]
    assert run["level"] == "full" and "failed" in run["level_reason"]
    assert [tag(s, "level") for s in restic_snapshots(ws.repo)] == ["full", "full"]


def test_auto_takes_the_calendar_level_of_the_day(workspace: Workspace) -> None:
    ws = workspace
    ws.orc("backup", "files", "--level", "full", "--now", "2026-11-02T03:00:00Z")
    # 2026-11-08 is a Sunday: the weekly differential wins over the daily incremental.
    sunday = ws.orc_json("backup", "files", "--now", "2026-11-08T12:00:00Z")["runs"][0]
    assert (sunday["asked_level"], sunday["level"]) == ("differential", "differential")
    tuesday = ws.orc_json("backup", "files", "--now", "2026-11-10T12:00:00Z")["runs"][0]
    assert tuesday["level"] == "incremental"


def test_repository_is_initialised_on_first_use(workspace: Workspace) -> None:
    ws = workspace
    import shutil

    shutil.rmtree(ws.repo)
    ws.orc("backup", "files")
    assert (ws.repo / "config").is_file()
    assert len(restic_snapshots(ws.repo)) == 1
