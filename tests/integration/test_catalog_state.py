"""The catalog against the repositories, and what is left when a process dies (issue 14).

Items 7, 8 (busy, cancelled, vanished snapshots), 10 (full state_dir, damaged, deleted
and concurrently created catalogs, kill -9 before the catalog update, `catalog
rebuild`) and 11 (a killed restore's staging directory, a killed drill's record).
Every fault is real: a tmpfs that fills up, garbage in the sqlite file, kill -9 of
the orchestrator, SIGINT to restic, deleted snapshot files. The witnesses are the
catalog's rows read with sqlite3, `restic snapshots --json` and the file system.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import ORCHESTRATOR, Workspace, require, restic_snapshots
from test_faults import (
    alive,
    big_data,  # noqa: F401  (a fixture)
    catalog_runs,
    children,
    one_error_line,
    spawn,  # noqa: F401  (a fixture)
    wait_for_restic_backup,
    wait_until,
)

pytestmark = pytest.mark.integration

Spawn = Callable[..., subprocess.Popen[str]]


def rows(ws: Workspace, table: str) -> list[dict]:
    with contextlib.closing(sqlite3.connect(ws.catalog)) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute(f"SELECT * FROM {table} ORDER BY rowid")]


def events(ws: Workspace, kind: str) -> list[dict]:
    return [e for e in rows(ws, "events") if e["kind"] == kind]


@contextlib.contextmanager
def catalog_write_lock(ws: Workspace) -> Iterator[sqlite3.Connection]:
    """Hold the catalog's write lock from this process: the orchestrator's next catalog
    write waits (its busy timeout is 30 s), so the moment between restic's end and the
    catalog update is certain, not raced."""
    db = sqlite3.connect(ws.catalog, timeout=30, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    finally:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        db.close()


def running_row(ws: Workspace) -> bool:
    try:  # the catalog may be mid-creation
        return any(r["outcome"] == "running" for r in catalog_runs(ws))
    except sqlite3.Error:
        return False


def restic_done(orc: subprocess.Popen[str], ws: Workspace) -> bool:
    """restic wrote its snapshot and exited; the orchestrator is still alive."""
    snaps = ws.repo / "snapshots"
    return (
        snaps.is_dir()
        and any(snaps.iterdir())
        and not [p for p in children(orc.pid) if alive(p)]
        and orc.poll() is None
    )


def full_backup_then_hold(ws: Workspace, start: Spawn) -> subprocess.Popen[str]:
    """A backup whose restic has finished while the catalog update waits on our lock."""
    assert list((ws.repo / "snapshots").iterdir()) == []
    orc = start("backup", "files", "--level", "full")
    assert wait_until(lambda: running_row(ws), 60), "the run was never recorded"
    return orc


# --------------------------------------------------------------------------- item 7


def test_item7_plan_from_before_the_newest_runs_and_after_a_simulated_future(
    workspace: Workspace,
) -> None:
    ws = workspace
    ws.orc("run", "--due", "--now", "2099-12-02T01:35")  # the first: a full, in the future
    ws.orc("run", "--due", "--now", "2099-12-03T01:35")  # an incremental after it
    assert [r["level"] for r in catalog_runs(ws)] == ["full", "incremental"]

    past = ws.orc_json("plan", "--from", "2099-11-20T00:00", "--days", "3")
    now = ws.orc("plan", "--days", "2")  # today is before the simulated runs
    after = ws.orc_json("plan", "--from", "2099-12-03T12:00", "--days", "2")

    assert "Traceback" not in now.stderr
    assert past["runs"][0]["level"] == "full"  # nothing before 20 Nov: a full
    assert "no snapshot yet" in past["runs"][0]["why"]
    assert after["runs"][0]["level"] == "incremental"  # the full of 2 Dec serves


# --------------------------------------------------------------------------- item 8


def test_item8_busy_refusal_is_no_failed_full(workspace: Workspace) -> None:
    ws = workspace
    ws.orc("backup", "files", "--level", "full")
    lock = ws.root / "var" / "locks" / "files_local.lock"
    import fcntl

    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.pwrite(fd, b"pid 1 on test\n", 0)
        refused = ws.orc("backup", "files", "--level", "full", check=75)
    finally:
        os.close(fd)
    assert "already running" in refused.stderr

    runs = catalog_runs(ws)
    assert runs[-1]["outcome"] == "skipped" and runs[-1]["error_kind"] == "busy"
    assert [e["kind"] for e in rows(ws, "events")][-1] == "run.skipped"
    status = ws.orc_json("status")["policies"][0]
    assert status["health"] == "ok", status
    nxt = ws.orc_json("backup", "files", "--level", "incremental")["runs"][0]
    assert nxt["level"] == "incremental", nxt["level_reason"]


def test_item8_restic_stopped_by_sigint_is_cancelled_without_escapes(
    workspace: Workspace,
    big_data: Path,  # noqa: F811
    spawn: Spawn,  # noqa: F811
) -> None:
    """SIGINT that reaches restic from outside our Ctrl-C handling (a daemon stopping, a
    signal to its process): recorded cancelled, published run.cancelled, and restic's
    `ESC[2K` never stored."""
    ws = workspace
    orc = spawn("backup", "files", "--level", "full")
    pid = wait_for_restic_backup(orc, ws.repo, big_data)
    os.kill(pid, signal.SIGINT)
    _out, err = orc.communicate(timeout=120)

    [run] = catalog_runs(ws)
    assert run["outcome"] == "cancelled", run
    assert events(ws, "run.cancelled") and not events(ws, "run.failed")
    stored = json.dumps([rows(ws, "runs"), rows(ws, "events")])
    assert "\x1b" not in stored and "\\u001b" not in stored, stored
    assert "\x1b" not in err


@pytest.mark.parametrize("tier", ["check", "subset", "media"])
def test_item8_every_snapshot_deleted_is_damage_and_status_shows_none(
    workspace: Workspace, tier: str
) -> None:
    ws = workspace
    ws.orc("backup", "files", "--level", "full")
    assert len(restic_snapshots(ws.repo)) == 1
    for f in (ws.repo / "snapshots").iterdir():
        f.unlink()

    res = ws.orc("--json", "verify", "--tier", tier, check=4)

    [rec] = json.loads(res.stdout)["verifications"]
    assert any(d["kind"] == "snapshot_missing" for d in rec["damage"]), rec
    assert "snapshot_missing" in res.stderr
    status = ws.orc_json("status")
    row = status["policies"][0]
    assert row["newest"] is None and row["health"] == "damaged", row
    assert any("lost 1 snapshot" in w for w in status["warnings"]), status["warnings"]
    [run] = catalog_runs(ws)
    assert run["gone_reason"] == "vanished"
    ws.orc("verify", "--tier", tier, check=4)  # still damage until the loss is accepted
    ws.orc("catalog", "rebuild")
    ws.orc("verify", "--tier", "check")


def test_item8_snapshots_removed_by_our_retention_are_no_damage(workspace: Workspace) -> None:
    ws = workspace
    ws.write_policies(ws.config.read_text() + "retention = { last = 1 }\n")
    ws.orc("backup", "files", "--level", "full")
    ws.orc("backup", "files", "--level", "full")
    ws.orc("backup", "files", "--level", "incremental")
    ws.orc("forget", "files", "--max-share", "0.9")  # keeps the newest full and the newest
    assert len(restic_snapshots(ws.repo)) == 2
    ws.orc("verify", "--tier", "check")
    ws.orc("verify", "--tier", "media")
    assert [r["gone_reason"] for r in catalog_runs(ws)] == ["forgotten", None, None]


# --------------------------------------------------------------------------- item 10


@pytest.fixture
def small_state_dir(workspace: Workspace) -> Iterator[Path]:
    """state_dir on a 2 MiB tmpfs (root only; under CI a missing mount fails the test)."""
    state = workspace.root / "var"
    state.mkdir()
    ok = os.geteuid() == 0 and shutil.which("mount") is not None
    if ok:
        ok = (
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=2M", "tmpfs", str(state)],
                capture_output=True,
                check=False,
            ).returncode
            == 0
        )
    require(ok, "root and `mount -t tmpfs` for a small state_dir")
    try:
        yield state
    finally:
        subprocess.run(["umount", "-l", str(state)], check=False)


def fill(folder: Path) -> Path:
    """Write a file until the device is full (to the last byte)."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 16, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    with pytest.raises(OSError) as exc:
        (folder / "probe").write_bytes(b"x" * 4096)
    assert exc.value.errno == errno.ENOSPC
    return filler


def test_item10_full_state_dir_is_one_line_and_the_run_is_reconciled(
    workspace: Workspace,
    small_state_dir: Path,
    spawn: Spawn,  # noqa: F811
) -> None:
    ws = workspace
    orc = full_backup_then_hold(ws, spawn)
    with catalog_write_lock(ws):
        assert wait_until(lambda: restic_done(orc, ws), 120), "restic never finished"
        filler = fill(small_state_dir)
    _out, err = orc.communicate(timeout=120)

    assert orc.returncode == 1, err
    line = one_error_line(err)
    assert "no space left" in line and str(ws.catalog) in line, line
    [snap] = restic_snapshots(ws.repo)  # restic's snapshot exists
    filler.unlink()

    ws.orc("snapshots", "files")  # the next start reads the target: reconciled

    [run] = catalog_runs(ws)
    assert run["outcome"] == "success", run
    assert snap["id"].startswith(run["snapshot_id"]) or run["snapshot_id"] == snap["id"]
    assert "reconciled" in run["message"]


def test_item10_kill_9_after_restic_finished_is_reconciled_by_run_tag(
    workspace: Workspace,
    spawn: Spawn,  # noqa: F811
) -> None:
    ws = workspace
    orc = full_backup_then_hold(ws, spawn)
    with catalog_write_lock(ws):
        assert wait_until(lambda: restic_done(orc, ws), 120), "restic never finished"
        orc.kill()  # SIGKILL: the catalog update never happens
        orc.communicate()
    [snap] = restic_snapshots(ws.repo)

    status = ws.orc_json("status")  # the next start: interrupted (no target is read)
    assert catalog_runs(ws)[0]["outcome"] == "interrupted"
    assert status["policies"][0]["newest"] is None
    res = ws.orc("--json", "backup", "files", "--level", "incremental")

    first, second = catalog_runs(ws)
    assert first["outcome"] == "success" and snap["id"].startswith(first["snapshot_id"])
    assert first["level"] == "full"
    assert second["level"] == "incremental", second["level_reason"]  # the full was found
    assert "reconciled" in res.stderr
    assert events(ws, "catalog.reconciled")


def test_item10_damaged_catalog_is_one_line_then_rebuilt(workspace: Workspace) -> None:
    ws = workspace
    ws.orc("backup", "files", "--level", "full")
    ws.orc("backup", "files", "--level", "incremental")
    ws.catalog.write_bytes(b"this is not a database, it was overwritten\n" * 100)
    for side in ("-wal", "-shm"):
        Path(str(ws.catalog) + side).unlink(missing_ok=True)

    for args in (["status"], ["backup", "files"], ["plan"], ["--json", "status"]):
        res = ws.orc(*args, check=1)
        line = one_error_line(res.stderr)
        assert str(ws.catalog) in line and "catalog rebuild" in line, line

    res = ws.orc("catalog", "rebuild")

    assert "moved aside" in res.stdout
    assert list(ws.catalog.parent.glob("catalog.sqlite.damaged-*"))
    runs = catalog_runs(ws)
    assert sorted(r["level"] for r in runs) == ["full", "incremental"]
    assert {r["id"] for r in runs} == {
        next(t[4:] for t in s["tags"] if t.startswith("run:")) for s in restic_snapshots(ws.repo)
    }
    assert ws.orc_json("status")["policies"][0]["health"] == "ok"


def test_item10_damaged_pages_inside_a_catalog_are_one_line(workspace: Workspace) -> None:
    ws = workspace
    ws.orc("backup", "files", "--level", "full")
    data = bytearray(ws.catalog.read_bytes())
    assert len(data) > 8192
    data[100:] = b"\xff" * (len(data) - 100)  # keep the header, ruin every page
    ws.catalog.write_bytes(bytes(data))

    res = ws.orc("status", check=1)

    line = one_error_line(res.stderr)
    assert str(ws.catalog) in line and "catalog rebuild" in line, line
    assert "moved aside" in ws.orc("catalog", "rebuild").stdout
    assert ws.orc_json("status")["policies"][0]["newest"]["level"] == "full"


def test_item10_deleted_catalog_warns_and_rebuild_restores_status(workspace: Workspace) -> None:
    ws = workspace
    ws.orc("backup", "files", "--level", "full")
    for f in ws.catalog.parent.glob("catalog.sqlite*"):
        f.unlink()

    status = ws.orc_json("status")
    assert status["policies"][0]["health"] == "no backup"
    assert any("catalog rebuild" in w for w in status["warnings"]), status
    assert "catalog rebuild" in ws.orc("status").stdout
    assert "catalog rebuild" in ws.orc("snapshots", "files").stderr  # unknown snapshots

    ws.orc("catalog", "rebuild")

    row = ws.orc_json("status")["policies"][0]
    assert row["health"] == "ok" and row["newest"]["level"] == "full", row
    again = ws.orc("--json", "catalog", "rebuild")  # idempotent
    assert json.loads(again.stdout)["targets"][0]["added"] == []


def test_item10_two_first_starts_at_once_both_work(workspace: Workspace) -> None:
    """Both processes find schema version 0 while we hold the write lock, then race."""
    ws = workspace
    ws.catalog.parent.mkdir()
    db = sqlite3.connect(ws.catalog, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("BEGIN IMMEDIATE")
    procs = [
        subprocess.Popen(
            [*ORCHESTRATOR, "--config", str(ws.config), "status"],
            env=ws.env,
            cwd=ws.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    time.sleep(3)  # each has read user_version 0 and waits for the lock
    db.execute("ROLLBACK")
    db.close()
    results = [p.communicate(timeout=120) for p in procs]

    for proc, (_out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
    assert [r["name"] for r in rows(ws, "sqlite_master") if r["type"] == "table"].count("runs") == 1


# --------------------------------------------------------------------------- item 11


@pytest.mark.parametrize("dest_exists", [False, True])
def test_item11_killed_restore_leaves_no_staging_after_the_next_restore(
    workspace: Workspace,
    big_data: Path,  # noqa: F811
    spawn: Spawn,  # noqa: F811
    dest_exists: bool,
) -> None:
    """A new destination stages beside it; an existing empty one stages inside it (and
    the leftover must not make it 'not empty' for the next restore)."""
    ws = workspace
    ws.orc("backup", "files", "--level", "full")
    dest = ws.root / "back"
    if dest_exists:
        dest.mkdir()
    orc = spawn("restore", "files", "--to", str(dest))

    def staging() -> list[Path]:
        return [*ws.root.glob(".back.restoring-*"), *dest.glob(".orchestrator.restoring-*")]

    assert wait_until(lambda: bool(staging()) and any(alive(p) for p in children(orc.pid)), 60)
    time.sleep(0.5)  # restic writes into it
    orc.kill()
    orc.communicate()
    [left] = staging()
    assert left.is_dir()

    ws.orc("restore", "files", "--to", str(dest))

    assert staging() == []
    assert (dest / str(ws.data).lstrip("/") / "a.txt").read_text() == "alpha\n"
    outcomes = [r["outcome"] for r in catalog_runs(ws) if r["kind"] == "restore"]
    assert outcomes == ["interrupted", "success"]


def test_item11_killed_drill_is_recorded_interrupted(
    workspace: Workspace,
    big_data: Path,  # noqa: F811
    spawn: Spawn,  # noqa: F811
) -> None:
    ws = workspace
    ws.orc("backup", "files", "--level", "full")
    orc = spawn("drill", "files")

    def drilling() -> bool:
        try:
            return any(r["outcome"] == "running" for r in rows(ws, "verifications"))
        except sqlite3.Error:
            return False

    assert wait_until(drilling, 60)
    orc.kill()
    orc.communicate()
    assert [r["outcome"] for r in rows(ws, "verifications")] == ["running"]

    ws.orc("status")  # the next start

    [rec] = rows(ws, "verifications")
    assert rec["outcome"] == "interrupted" and rec["finished_at"], rec
