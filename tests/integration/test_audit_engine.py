"""The audit log as the engine writes it: a real backup and restore with real restic leave
their records (who, what, policy, target, snapshot, run id, outcome), the config load and
the secret's use by name, a checkpoint next to the snapshots, and `audit verify` passes."""

from __future__ import annotations

import json

import pytest
from conftest import PASSWORD, Workspace, restic_snapshots, tag

from orchestrator.audit.identity import current_identity

pytestmark = pytest.mark.integration


def records(ws: Workspace) -> list[dict]:
    return [
        json.loads(line)
        for line in (ws.root / "var" / "audit" / "log.jsonl").read_text().splitlines()
    ]


def test_a_backup_and_a_restore_leave_their_audit_records(workspace: Workspace) -> None:
    ws = workspace
    ws.orc("audit", "init")
    ws.orc("backup", "files", "--level", "full")
    snap = restic_snapshots(ws.repo)[-1]
    recs = records(ws)
    backup = [r for r in recs if r["what"] == "run.succeeded"]
    assert len(backup) == 1
    (b,) = backup
    assert (b["policy"], b["target"], b["outcome"]) == ("files", "local", "success")
    assert b["snapshot"] == snap["id"]  # what restic itself shows
    assert b["run_id"] == tag(snap, "run")
    assert b["who"] == current_identity()["who"]
    config = [r for r in recs if r["what"] == "config.loaded"]
    assert (
        config
        and config[0]["sha256"] == __import__("hashlib").sha256(ws.config.read_bytes()).hexdigest()
    )
    used = [r for r in recs if r["what"] == "secret.used"]
    assert [(r["secret"], r["source"]) for r in used] == [("repo-test", "env")]
    assert PASSWORD not in (ws.root / "var" / "audit" / "log.jsonl").read_text()

    ws.orc("restore", "files", "--to", str(ws.root / "back"))
    restore = [r for r in records(ws) if r["what"] == "restore.done"]
    assert len(restore) == 1 and restore[0]["snapshot"] == snap["id"]

    ws.orc("verify", "files", "--tier", "check")
    checked = [r for r in records(ws) if r["what"] == "verify.done"]
    assert [(r["target"], r["outcome"], r["details"]["tier"]) for r in checked] == [
        ("local", "ok", "check")
    ]

    out = ws.orc("audit", "verify").stdout
    assert f"audit log intact: {len(records(ws))} records" in out
    # The checkpoint next to the snapshots is signed by the key the auditor holds.
    copy = ws.repo / "orchestrator-audit" / "checkpoint"
    assert copy.is_file()
    pub = ws.root / "var" / "audit" / "audit-key.pub"
    assert (ws.repo / "orchestrator-audit" / "audit-key.pub").read_text() == pub.read_text()
    ws.orc("audit", "verify", "--checkpoint", str(copy), "--key", str(pub))
    # restic still sees a sound repository with our folder in it.
    from conftest import restic

    assert restic(ws.repo, "check").returncode == 0

    shown = ws.orc_json("audit", "show", "--policy", "files")
    assert [r["what"] for r in shown["records"]] == ["run.succeeded", "restore.done", "verify.done"]
    assert ws.orc_json("audit", "show", "--who", "nobody-at-all")["records"] == []


def test_the_daemon_records_its_runs_and_each_config_it_loads(workspace: Workspace) -> None:
    import hashlib
    import signal
    import subprocess
    import time

    from conftest import ORCHESTRATOR

    ws = workspace
    log = ws.root / "daemon.log"
    first = hashlib.sha256(ws.config.read_bytes()).hexdigest()
    with log.open("w") as err:
        proc = subprocess.Popen(
            [
                *ORCHESTRATOR,
                "--config",
                str(ws.config),
                "-v",
                "daemon",
                "--now",
                "2026-03-04T01:29:57",
            ],
            env=ws.env,
            cwd=ws.root,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:

        def wait_for(text: str, seconds: float = 60) -> None:
            deadline = time.monotonic() + seconds
            while text not in log.read_text():
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, f"no {text!r} in:\n{log.read_text()}"
                time.sleep(0.1)

        wait_for("slot files@2026-03-04T01:30 done: success")
        ws.config.write_text(ws.config.read_text() + "\n# changed\n")
        proc.send_signal(signal.SIGHUP)
        wait_for("reloaded")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    recs = records(ws)
    second = hashlib.sha256(ws.config.read_bytes()).hexdigest()
    assert [r["sha256"] for r in recs if r["what"] == "config.loaded"] == [first, second]
    (run,) = [r for r in recs if r["what"] == "run.succeeded"]
    assert run["snapshot"] == restic_snapshots(ws.repo)[0]["id"]
    assert run["pid"] == proc.pid
    ws.orc("audit", "verify")
