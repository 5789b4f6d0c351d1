"""Issue 14 follow-ups on the catalog: `catalog rebuild` with a missing repository (item 1),
the "catalog was created" warning of `status` (item 2), one-prefix errors and an empty
snapshot id (item 3), a kill -9'd drill's scratch copy (item 4). Real restic, real files;
the witnesses are exit codes, `restic snapshots --json`, the file system and sqlite rows."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import BASIC_POLICIES, LOCAL_HEAD, Workspace, paused, restic_snapshots
from test_faults import (
    alive,
    children,
    spawn,  # noqa: F401  (a fixture)
    wait_until,
)

pytestmark = pytest.mark.integration


def rows(ws: Workspace, table: str) -> list[dict]:
    with contextlib.closing(sqlite3.connect(ws.catalog)) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute(f"SELECT * FROM {table} ORDER BY rowid")]


TWO_TARGETS = """\
[orchestrator]
state_dir = "var"
timezone = "UTC"

[targets.one]
kind = "local"
path = "r1"
password = "secret:repo-test"

[targets.two]
kind = "local"
path = "r2"
password = "secret:repo-test"

[policies.p]
importance = "normal"
sources = ["data"]
targets = ["one", "two"]
daily = { at = "01:30", level = "incremental" }
"""


def two_targets(ws: Workspace, template: Path) -> None:
    for name in ("r1", "r2"):
        shutil.copytree(template, ws.root / name)
    ws.write_policies(TWO_TARGETS)


def test_item1_rebuild_reports_a_missing_repository_and_backup_does_not_recreate_it(
    workspace: Workspace, template_repo: Path
) -> None:
    ws = workspace
    two_targets(ws, template_repo)
    ws.orc("backup", "p")
    (ws.root / "r1").rename(ws.root / "r1.gone")
    ws.catalog.rename(ws.root / "catalog.elsewhere")

    res = ws.orc("catalog", "rebuild", check=3)

    assert f"one: NOT read: repository missing (local:{ws.root / 'r1'})" in res.stdout, res.stdout
    assert "two: 1 snapshot(s) recorded" in res.stdout, res.stdout
    assert "target 'one': target 'one'" not in res.stderr, res.stderr  # item 3: one prefix
    backup = ws.orc("backup", "p", check=None)
    assert backup.returncode != 0, backup.stdout
    assert "no repository at" in backup.stdout + backup.stderr
    assert not (ws.root / "r1").exists()  # nothing re-created over the lost one
    assert len(restic_snapshots(ws.root / "r1.gone")) == 1
    assert len(restic_snapshots(ws.root / "r2")) == 2  # the readable target still backs up


def test_item1_rebuild_exits_1_when_no_target_could_be_read(workspace: Workspace) -> None:
    ws = workspace
    ws.write_policies(LOCAL_HEAD)
    shutil.rmtree(ws.repo)

    res = ws.orc("catalog", "rebuild", check=1)

    assert "local: NOT read: repository missing" in res.stdout, res.stdout


def test_item1_target_init_still_creates_after_a_rebuild_found_it_missing(
    workspace: Workspace, template_repo: Path
) -> None:
    ws = workspace
    two_targets(ws, template_repo)
    shutil.rmtree(ws.root / "r1")
    ws.orc("catalog", "rebuild", check=3)

    assert "repository created" in ws.orc("target", "init", "one").stdout
    ws.orc("backup", "p")
    assert len(restic_snapshots(ws.root / "r1")) == 1


def test_item3_restore_with_an_empty_snapshot_id_says_it_is_empty(workspace: Workspace) -> None:
    ws = workspace
    ws.orc("backup", "files", "--level", "full")

    res = ws.orc("restore", "files", "--to", str(ws.root / "back"), "--snapshot", "", check=2)

    assert "empty" in res.stderr and "ambiguous" not in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert not (ws.root / "back").exists()


def test_item2_fresh_install_status_does_not_warn(workspace: Workspace) -> None:
    ws = workspace
    status = ws.orc_json("status")

    assert status["policies"][0]["health"] == "no backup"
    assert status["warnings"] == [], status
    assert "catalog rebuild" not in ws.orc("status").stdout
    ws.write_policies(
        BASIC_POLICIES
        + '\n[policies.other]\nimportance = "low"\nsources = ["data"]\ntargets = ["local"]\n'
    )
    ws.orc("backup", "files", "--level", "full")  # a run lock now exists, newer than the catalog
    status = ws.orc_json("status")
    assert [p["health"] for p in status["policies"] if p["policy"] == "other"] == ["no backup"]
    assert status["warnings"] == [], status


def test_item2_deleted_catalog_with_older_state_warns(workspace: Workspace) -> None:
    ws = workspace
    ws.orc("backup", "files", "--level", "full")
    for f in ws.catalog.parent.glob("catalog.sqlite*"):
        f.unlink()

    status = ws.orc_json("status")

    assert any("catalog rebuild" in w for w in status["warnings"]), status


def test_item2_damaged_catalog_set_aside_warns(workspace: Workspace) -> None:
    ws = workspace
    ws.orc("status")
    for f in ws.catalog.parent.glob("catalog.sqlite*"):
        f.unlink()
    (ws.catalog.parent / "catalog.sqlite.damaged-20260101T000000").write_bytes(b"junk")

    assert any("catalog rebuild" in w for w in ws.orc_json("status")["warnings"])


def test_item4_kill_9_drill_scratch_copy_removed_at_next_start(
    workspace: Workspace,
    make_file: Callable[[Path, int], Path],
    spawn: Callable[..., subprocess.Popen[str]],  # noqa: F811
) -> None:
    """The drill's restic is held still (SIGSTOP) once it has written into the scratch
    directory, then the orchestrator is killed with -9: the copy is certainly left."""
    ws = workspace
    for i in range(3):
        make_file(ws.data / f"big-{i}.bin", 32 << 20)
    ws.orc("backup", "files", "--level", "full")
    drills = ws.root / "var" / "drills"
    orc = spawn("drill", "files")

    def restoring_child() -> int | None:
        for pid in children(orc.pid):
            with contextlib.suppress(OSError):
                if b"restore" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
        return None

    def scratch_files() -> list[Path]:
        return [p for p in drills.rglob("*") if p.is_file()] if drills.is_dir() else []

    assert wait_until(lambda: restoring_child() is not None, 120)
    restic_pid = restoring_child()
    assert restic_pid is not None
    assert wait_until(lambda: bool(scratch_files()), 60)
    with paused(restic_pid):
        orc.kill()  # SIGKILL
        orc.communicate()
    assert wait_until(lambda: not alive(restic_pid), 60)
    [left] = list(drills.iterdir())
    assert left.is_dir() and [r["outcome"] for r in rows(ws, "verifications")] == ["running"]

    ws.orc("status")  # the next start recovers the record, and removes its scratch copy

    assert [r["outcome"] for r in rows(ws, "verifications")] == ["interrupted"]
    assert not left.exists(), list(left.rglob("*"))[:5]
    # ... and the audit log has a record of it (break-it trial: it had none)
    [check] = rows(ws, "verifications")
    shown = json.loads(ws.orc("--json", "audit", "show", "--what", "verify.failed").stdout)
    [rec] = shown["records"]
    assert (rec["run_id"], rec["outcome"], rec["target"]) == (check["id"], "interrupted", "local")
    assert rec["details"]["tier"] == "drill"


def test_item4_recovery_leaves_a_live_drills_scratch_alone(workspace: Workspace) -> None:
    """Only a dead owner's record is recovered: a running drill's copy is not touched."""
    ws = workspace
    ws.orc("status")
    scratch = ws.root / "var" / "drills" / "local-0123456789ab"
    scratch.mkdir(parents=True)
    (scratch / "f").write_text("x")
    with contextlib.closing(sqlite3.connect(ws.catalog)) as db:
        db.execute(
            "INSERT INTO verifications (id, tier, policy, target, started_at, outcome, host, pid) "
            "VALUES (?, 'drill', 'files', 'local', '2026-01-01T00:00:00+00:00', 'running', ?, ?)",
            ("0123456789ab" + "0" * 20, socket.gethostname(), os.getpid()),
        )
        db.commit()

    ws.orc("status")

    assert (scratch / "f").exists()
    assert [r["outcome"] for r in rows(ws, "verifications")] == ["running"]


def test_item3_rebuild_error_names_the_target_once(
    workspace: Workspace, template_repo: Path
) -> None:
    ws = workspace
    two_targets(ws, template_repo)
    shutil.rmtree(ws.root / "r2")
    (ws.root / "r2").write_text("not a repository\n")  # the target's own preflight refuses

    res = ws.orc("catalog", "rebuild", check=3)

    [line] = [ln for ln in res.stdout.splitlines() if ln.startswith("two:")]
    assert line.startswith("two: NOT read: ") and "target 'two'" not in line, line
    assert res.stderr.count("target 'two'") == 1, res.stderr
