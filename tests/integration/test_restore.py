"""Restores: the bytes restic writes back are the bytes that were backed up."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from conftest import Workspace, restic_snapshots

pytestmark = pytest.mark.integration


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def backed_up(workspace: Workspace) -> Workspace:
    ws = workspace
    ws.orc("backup", "files", "--level", "full")
    (ws.data / "a.txt").write_text("alpha, second version\n")
    (ws.data / "skip.tmp").write_text("excluded\n")
    ws.orc("backup", "files", "--level", "incremental")
    return ws


def test_restore_latest_gives_back_every_byte(backed_up: Workspace) -> None:
    ws = backed_up
    out = ws.orc_json("restore", "files", "--to", str(ws.root / "back"))
    root = ws.root / "back" / ws.data.relative_to("/")
    assert (root / "a.txt").read_text() == "alpha, second version\n"
    assert digest(root / "sub" / "b.bin") == digest(ws.data / "sub" / "b.bin")
    assert not (root / "skip.tmp").exists()  # excluded by the policy
    assert out["files"] == 2
    assert out["snapshot"] == restic_snapshots(ws.repo)[-1]["id"]
    # The restore is recorded (service standard 6.2: record the recovery).
    db = sqlite3.connect(ws.catalog)
    (outcome, files) = db.execute(
        "SELECT outcome, files_total FROM runs WHERE kind = 'restore'"
    ).fetchone()
    assert (outcome, files) == ("success", 2)
    # No staging directory is left beside the destination.
    assert [p.name for p in ws.root.iterdir() if p.name.startswith(".back")] == []


def test_restore_an_older_snapshot_and_one_path(backed_up: Workspace) -> None:
    ws = backed_up
    first = restic_snapshots(ws.repo)[0]["id"]
    wanted = str(ws.data / "a.txt")
    ws.orc(
        "restore", "files", "--to", str(ws.root / "old"), "--snapshot", first[:8], "--path", wanted
    )
    root = ws.root / "old" / ws.data.relative_to("/")
    assert (root / "a.txt").read_text() == "alpha\n"
    assert not (root / "sub").exists()


def test_restore_refuses_a_non_empty_destination(backed_up: Workspace) -> None:
    ws = backed_up
    dest = ws.root / "busy"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    result = ws.orc("restore", "files", "--to", str(dest), check=2)
    assert "not empty" in result.stderr and "Traceback" not in result.stderr
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]
    ws.orc("restore", "files", "--to", str(dest), "--overwrite")
    assert (dest / "keep.txt").read_text() == "mine"
    assert (dest / ws.data.relative_to("/") / "a.txt").exists()


def test_restore_of_unknown_snapshot_or_path_is_a_clear_error(backed_up: Workspace) -> None:
    ws = backed_up
    bad = ws.orc("restore", "files", "--to", str(ws.root / "x"), "--snapshot", "deadbeef", check=2)
    assert "no snapshot 'deadbeef'" in bad.stderr
    missing = ws.orc(
        "restore", "files", "--to", str(ws.root / "y"), "--path", "/no/such/file", check=1
    )
    assert "matches" in missing.stderr
    assert not (ws.root / "x").exists() and not (ws.root / "y").exists()  # nothing half-written


def test_snapshots_and_status_json(backed_up: Workspace) -> None:
    ws = backed_up
    listing = ws.orc_json("snapshots", "files")
    (target,) = listing["targets"]
    assert target["target"] == "local" and target["error"] is None
    assert [s["level"] for s in target["snapshots"]] == ["full", "incremental"]
    assert [s["id"] for s in target["snapshots"]] == [s["id"] for s in restic_snapshots(ws.repo)]

    status = ws.orc_json("status")
    (row,) = status["policies"]
    assert row["policy"] == "files" and row["health"] == "ok"
    assert row["newest_by_level"]["full"]["outcome"] == "success"
    assert row["newest_by_level"]["differential"] is None
    assert row["rpo_breached"] is False
    text = ws.orc("status").stdout
    assert "files" in text and "ok" in text

    late = ws.orc_json("status", "--now", "2099-01-01T00:00:00Z")["policies"][0]
    assert late["rpo_breached"] is True and late["health"] == "RPO breached"
