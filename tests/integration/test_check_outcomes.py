"""How verification tiers and drills end when they could not really run: busy is not an
attempt (`skipped`), a SIGTERM is `cancelled`; neither is a health problem. And a drill
whose policy's snapshots were all deleted from the repository reports the loss (exit 4).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import (
    ORCHESTRATOR,
    Workspace,
    paused,
    restic_holding_lock,
    wait_for_pending,
)

pytestmark = pytest.mark.integration

POLICIES_WITH_CHECKS = """
verify = { every = "daily", media = true }
drill = { every = "weekly" }
"""


def _release(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdin is not None
    proc.stdin.write(b"the live run's data\n")
    proc.stdin.close()
    proc.wait(timeout=60)


def _health(ws: Workspace) -> list[dict]:
    doc = ws.orc_json("status", check=None)
    return [p for row in doc["policies"] for p in row["health_reasons"]]


def _rows(ws: Workspace, tier: str) -> list[tuple]:
    return ws.query(
        "SELECT outcome, error_kind FROM verifications WHERE tier = ? ORDER BY started_at",
        tier,
    )


def _start(ws: Workspace, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*ORCHESTRATOR, "--config", str(ws.config), *args],
        env=ws.env,
        cwd=ws.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _wait_for_restic(orc: subprocess.Popen[str], verb: str, seconds: float = 60) -> int:
    deadline = time.monotonic() + seconds
    while True:
        for child in _children(orc.pid):
            if f" {verb} " in _cmdline(child):
                return child
        assert orc.poll() is None, f"the orchestrator ended before restic {verb}: {orc.stderr}"
        assert time.monotonic() < deadline, f"restic {verb} never started"
        time.sleep(0.005)


def test_busy_check_is_skipped_not_failed(workspace: Workspace) -> None:
    """item 1: a check refused by a live restic lock exits 75 and is recorded `skipped`
    (busy is not an attempt): `status` reports no "verify failed", and the check stays
    due (the next `run --due` runs it)."""
    ws = workspace
    ws.write_policies(ws.config.read_text() + POLICIES_WITH_CHECKS)
    ws.orc("backup", "files", "--level", "full")
    proc = restic_holding_lock(ws)
    try:
        ws.orc("verify", "files", "--target", "local", "--tier", "check", check=75)
    finally:
        _release(proc)
    assert _rows(ws, "check") == [("skipped", "locked")]
    assert not [p for p in _health(ws) if p["health"] == "verify failed"]
    ws.orc("run", "--due", check=None)
    assert ("ok", None) in _rows(ws, "check")[1:]  # still due: it ran at the next pass


def test_busy_drill_is_skipped_not_failed(workspace: Workspace) -> None:
    """item 1: a drill refused because another drill holds our run lock is `skipped`."""
    ws = workspace
    ws.orc("backup", "files", "--level", "full")
    lock_dir = ws.root / "var" / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    import fcntl

    with (lock_dir / "drill_local.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        ws.orc("drill", "files", "--target", "local", check=75)
    assert _rows(ws, "drill") == [("skipped", "busy")]
    assert not [p for p in _health(ws) if p["health"] == "drill failed"]


def test_sigterm_drill_is_cancelled_not_failed(workspace: Workspace, make_file) -> None:
    """item 1: a drill stopped by SIGTERM mid-restore exits 130 and is recorded
    `cancelled`; `status` reports no "drill failed"."""
    ws = workspace
    make_file(ws.data / "big.bin", 40 << 20)
    ws.orc("backup", "files", "--level", "full")
    orc = _start(ws, "drill", "files", "--target", "local")
    restic_pid = _wait_for_restic(orc, "restore")
    with paused(restic_pid):
        orc.send_signal(signal.SIGTERM)
        wait_for_pending(restic_pid, signal.SIGINT)
    orc.communicate(timeout=120)
    assert orc.returncode == 130
    assert _rows(ws, "drill") == [("cancelled", "interrupted")]
    assert not [p for p in _health(ws) if p["health"] == "drill failed"]


def test_sigterm_media_is_cancelled_not_left_running(workspace: Workspace, make_file) -> None:
    """item 1: `verify --tier media` hashes in Python (no restic): SIGTERM while it reads
    the repository's packs records it `cancelled`, not left `running`."""
    ws = workspace
    for i in range(6):
        make_file(ws.data / f"big{i}.bin", 12 << 20)
    ws.orc("backup", "files", "--level", "full")
    orc = _start(ws, "verify", "files", "--tier", "media")
    packs = str(ws.repo / "data")
    deadline = time.monotonic() + 60
    while True:  # it opened a pack: it is hashing
        fds = Path(f"/proc/{orc.pid}/fd")
        try:
            opened = [os.readlink(fds / fd) for fd in os.listdir(fds)]
        except OSError:
            opened = []
        if any(p.startswith(packs) for p in opened):
            break
        assert orc.poll() is None, f"media ended before the test saw it hashing: {orc.stderr}"
        assert time.monotonic() < deadline
        time.sleep(0.001)
    orc.send_signal(signal.SIGTERM)
    orc.communicate(timeout=120)
    assert orc.returncode == 130
    assert _rows(ws, "media") == [("cancelled", "interrupted")]
    assert not [p for p in _health(ws) if p["health"] == "verify failed"]


def test_drill_reports_snapshots_deleted_from_the_repository(workspace: Workspace) -> None:
    """item 2: every snapshot of the policy deleted from the repository while the catalog
    knows good ones: the drill exits 4 with snapshot_missing naming the lost snapshot."""
    ws = workspace
    doc = ws.orc_json("backup", "files", "--level", "full")
    sid = doc["runs"][0]["snapshot_id"]
    for f in (ws.repo / "snapshots").iterdir():
        f.unlink()
    out = ws.orc_json("drill", "files", "--target", "local", check=4)
    [rec] = out["drills"]
    assert rec["outcome"] == "damaged"
    assert [d["kind"] for d in rec["damage"]] == ["snapshot_missing"]
    assert sid[:8] in rec["damage"][0]["message"]
    assert ws.query("SELECT outcome FROM verifications WHERE tier = 'drill'") == [("damaged",)]


def test_drill_with_no_snapshot_ever_is_a_plain_failure(workspace: Workspace) -> None:
    """item 2: the catalog never had a snapshot there: nothing to drill stays exit 1."""
    ws = workspace
    result = ws.orc("drill", "files", "--target", "local", check=1)
    assert "holds no snapshot of policy 'files' to drill" in result.stderr + result.stdout
