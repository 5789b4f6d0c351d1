"""A crashed restic's lock must not block verification or retention forever,
and a live run's lock must never be removed."""

from __future__ import annotations

import signal
import socket

import pytest
from conftest import Workspace, repo_locks, restic, restic_holding_lock

pytestmark = pytest.mark.integration


def test_stale_lock_of_a_killed_restic_is_removed_before_check(workspace: Workspace) -> None:
    ws = workspace
    ws.orc("backup", "files", "--level", "full")
    proc = restic_holding_lock(ws)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert repo_locks(ws), "the killed restic should have left its lock behind"
    blocked = restic(ws.repo, "check")
    assert blocked.returncode != 0 and "locked" in blocked.stderr

    result = ws.orc("-v", "verify", "files", "--tier", "check")
    assert "removed 1 stale restic lock(s) and retried" in result.stderr
    assert repo_locks(ws) == []


@pytest.mark.parametrize("command", ["verify", "forget"])
def test_a_live_lock_is_never_removed(workspace: Workspace, command: str) -> None:
    """item 8: a live restic lock is `locked`, exit 75 (busy) naming the holder restic
    reports, on 0.14 (stderr text) and 0.18 (exit code 11); the log never claims that
    stale locks were removed when there were none, and the live lock stays."""
    ws = workspace
    if command == "forget":
        ws.write_policies(ws.config.read_text() + "retention = { last = 1 }\n")
        # something to remove: planning reads a listing, removing needs restic's
        # exclusive lock, which the live backup holds off
        ws.orc("backup", "files", "--level", "full")
    ws.orc("backup", "files", "--level", "full")
    proc = restic_holding_lock(ws)
    try:
        held = repo_locks(ws)
        args = ("verify", "files", "--tier", "check") if command == "verify" else ("forget",)
        result = ws.orc("-v", *args, check=75)
        holder = f"held by PID {proc.pid} on host {socket.gethostname()}"
        assert "the repository is locked by another restic process" in result.stdout
        assert holder in result.stdout
        assert holder in result.stderr.splitlines()[-1]  # the command's own last line
        assert "no stale lock to remove" in result.stderr
        assert "removed" not in result.stderr.replace("no stale lock to remove", "")
        assert proc.poll() is None and repo_locks(ws) == held  # still running, lock untouched
        data = ws.orc_json(*args, check=75)
        rows = data["verifications"] if command == "verify" else data["results"]
        assert [r["error_kind"] for r in rows] == ["locked"]
    finally:
        assert proc.stdin is not None
        proc.stdin.write(b"the live run's data\n")
        proc.stdin.close()
        proc.wait(timeout=60)
    assert proc.returncode == 0  # the live backup was not disturbed
    assert repo_locks(ws) == []
