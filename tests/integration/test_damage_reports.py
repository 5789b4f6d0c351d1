"""Item 8: a damaged repository is reported as damage of the repository, with restic's
meaningful line (never a Go stack frame), and only what restic calls an error is damage.

The damage is real: the repository's index files are deleted, as a disk or a careless
clean-up would; restic's own `check` is the witness of what is wrong.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

import pytest
from conftest import Workspace, restic, restic_snapshots

pytestmark = pytest.mark.integration


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def _delete_index(ws: Workspace) -> None:
    for path in _files(ws.repo / "index"):
        path.unlink()


def _no_stack_trace(text: str) -> None:
    """Nothing of a Go stack trace reaches the user."""
    for line in text.splitlines():
        assert not line.startswith("\t"), line
        assert ".go:" not in line and "goroutine" not in line and "panic:" not in line, line


def _catalog_rows(ws: Workspace, table: str) -> list[sqlite3.Row]:
    with contextlib.closing(sqlite3.connect(ws.catalog)) as db:
        db.row_factory = sqlite3.Row
        return db.execute(f"SELECT * FROM {table} ORDER BY started_at").fetchall()


@pytest.fixture
def damaged(workspace: Workspace) -> Workspace:
    """One full backup, then every index file deleted: restic lists the snapshot but
    cannot load its trees (restic's own check says so)."""
    workspace.orc("backup", "files", "--level", "full")
    _delete_index(workspace)
    witness = restic(workspace.repo, "check")
    assert witness.returncode == 1 and "not found in repository" in witness.stdout + witness.stderr
    return workspace


def test_drill_of_a_repository_without_its_index_is_damage(damaged: Workspace) -> None:
    """item 8: a deleted index makes `drill` exit 4 (not 1), with restic's line naming the
    missing tree, never the last line of a Go stack trace."""
    ws = damaged
    result = ws.orc("drill", "files", check=4)
    _no_stack_trace(result.stdout + result.stderr)
    [line] = [ln for ln in result.stderr.splitlines() if "DAMAGE" in ln]
    assert "drill@local" in line and "the repository is damaged" in line
    assert "not found in repository" in line
    [row] = _catalog_rows(ws, "verifications")
    assert (row["tier"], row["outcome"], row["error_kind"]) == ("drill", "damaged", "damage")


def test_backup_on_a_damaged_repository_blames_the_repository(damaged: Workspace) -> None:
    """item 8: the backup after the index was deleted names the repository as damaged, not
    the source as unreadable; restic's snapshot is kept and recorded."""
    ws = damaged
    result = ws.orc("backup", "files", "--level", "incremental", check=3)
    _no_stack_trace(result.stdout + result.stderr)
    message = result.stderr.splitlines()[-1]
    assert "repository of target 'local' is damaged" in message
    assert "unreadable" not in message and "could not be read" not in message
    run = _catalog_rows(ws, "runs")[-1]
    assert (run["outcome"], run["error_kind"]) == ("partial", "repository_damaged")
    ids = [s["id"] for s in restic_snapshots(ws.repo)]
    assert run["snapshot_id"] and any(i.startswith(run["snapshot_id"][:8]) for i in ids)


def test_check_counts_only_what_restic_calls_an_error(damaged: Workspace) -> None:
    """item 8: restic's non-critical "not referenced in any index" / "additional files"
    lines are not damage; each tree restic reports missing is one damage."""
    ws = damaged
    witness = restic(ws.repo, "check")
    text = witness.stdout + witness.stderr
    trees = [ln for ln in text.splitlines() if ln.startswith("error for tree")]
    assert trees and "additional files were found" in text  # both kinds of line are there

    doc = ws.orc_json("verify", "files", "--tier", "check", check=4)
    damage = [d for r in doc["verifications"] for d in r["damage"]]
    assert len(damage) == len(trees)
    for d in damage:
        assert d["kind"] == "check_error" and "not found in repository" in d["message"]
        assert "referenced" not in d["message"] and "non-critical" not in d["message"]


def test_unindexed_packs_alone_are_no_damage(workspace: Workspace) -> None:
    """item 8: a pack no index references (a backup whose index and snapshot were lost) is
    what restic calls non-critical: check exits 0 on 0.14 and 0.18, and so do we."""
    ws = workspace
    ws.orc("backup", "files", "--level", "full")
    index, snaps = _files(ws.repo / "index"), _files(ws.repo / "snapshots")
    (ws.data / "more.bin").write_bytes(os.urandom(200_000))
    ws.orc("backup", "files")
    for path in (_files(ws.repo / "index") - index) | (_files(ws.repo / "snapshots") - snaps):
        path.unlink()
    witness = restic(ws.repo, "check")
    assert witness.returncode == 0 and "additional files" in witness.stdout + witness.stderr
    doc = ws.orc_json("verify", "files", "--tier", "check")
    assert [r["outcome"] for r in doc["verifications"]] == ["ok"]
