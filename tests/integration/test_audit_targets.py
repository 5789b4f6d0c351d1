"""Checkpoints leave the host: `audit checkpoint` writes the signed checkpoint and the
public key next to the snapshots of every kind of repository (local, SFTP, S3), restic
still finds the repository sound, and the copy read back from the storage verifies the
log (`audit verify --checkpoint`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import servers
import test_targets
from conftest import Workspace
from test_targets import BUCKET, Remote

remote = test_targets.remote  # the fixtures: a fresh repository of each kind
bucket = test_targets.bucket

pytestmark = pytest.mark.integration


def _read_back(rem: Remote, ws: Workspace, name: str, request: pytest.FixtureRequest) -> str:
    """The file as the storage holds it, read without the orchestrator."""
    if rem.storage is not None:
        return (rem.storage / "orchestrator-audit" / name).read_text()
    server: Any = request.getfixturevalue("s3_server")
    prefix = rem.restic_args[1].rsplit("/", 1)[1]
    body = servers.s3_client(server.endpoint).get_object(
        Bucket=BUCKET, Key=f"{prefix}/orchestrator-audit/{name}"
    )["Body"]
    return body.read().decode()


def test_a_checkpoint_reaches_every_kind_of_repository(
    remote: Remote, workspace: Workspace, request: pytest.FixtureRequest
) -> None:
    ws = workspace
    ws.orc("audit", "init")
    ws.orc("backup", "files", "--level", "full")
    out = ws.orc_json("audit", "checkpoint")
    assert out["published"] == [f"target '{remote.name}'"]
    text = _read_back(remote, ws, "checkpoint", request)
    assert text == out["checkpoint"]
    size = out["tree_size"]
    records = (ws.root / "var" / "audit" / "log.jsonl").read_text().count("\n")
    # all records at signing; S3 then records its credentials' use; then the command's own
    assert size == records - 1 - (remote.kind == "s3")
    pub = _read_back(remote, ws, "audit-key.pub", request)
    assert pub == (ws.root / "var" / "audit" / "audit-key.pub").read_text()
    kept = ws.root / "from-repository"
    kept.write_text(text)
    (ws.root / "auditor.pub").write_text(pub)
    ws.orc("audit", "verify", "--checkpoint", str(kept), "--key", str(ws.root / "auditor.pub"))
    # restic, unaware of the folder, still finds the repository sound.
    check = remote.witness("check")
    assert check.returncode == 0, check.stderr
    # A log cut short is caught by the copy the repository holds.
    log = ws.root / "var" / "audit" / "log.jsonl"
    log.write_text("".join(log.read_text().splitlines(keepends=True)[: size - 1]))
    for folder in ("checkpoints", "export"):
        import shutil

        shutil.rmtree(ws.root / "var" / "audit" / folder)
    (ws.root / "var" / "audit" / "checkpoint").unlink()
    if remote.storage is not None and remote.kind == "local":
        (remote.storage / "orchestrator-audit" / "checkpoint").unlink()
    result = ws.orc("audit", "verify", "--checkpoint", str(kept), check=4)
    assert f"but {kept} (signed) covers {size}" in result.stderr


def test_no_checkpoint_is_written_where_no_repository_is(
    workspace: Workspace, tmp_path: Path
) -> None:
    ws = workspace
    import shutil

    shutil.rmtree(ws.repo)
    ws.orc("audit", "init")
    ws.orc("audit", "checkpoint")
    assert not ws.repo.exists()  # a vanished repository is never re-created, not even a folder


@pytest.mark.parametrize("remote", ["sftp", "s3"], indirect=True)
def test_the_daemon_publishes_a_checkpoint_to_every_repository_daily(
    remote: Remote, workspace: Workspace, request: pytest.FixtureRequest
) -> None:
    """Automatic checkpoints reach local repositories only (no network wait inside an
    audited action); the daemon's pass sends one to SFTP and S3 too, once a day."""
    ws = workspace
    ws.orc("audit", "init")  # the operator's step that makes the signing key
    ws.orc("run", "--due", "--now", "2026-03-04T12:00")
    first = _read_back(remote, ws, "checkpoint", request)
    ws.orc("backup", "files", "--level", "full")
    ws.orc("run", "--due", "--now", "2026-03-04T18:00")  # the same day: not again
    assert _read_back(remote, ws, "checkpoint", request) == first
    ws.orc("run", "--due", "--now", "2026-03-05T12:00")  # a day later: the log's new state
    later = _read_back(remote, ws, "checkpoint", request)
    assert later != first and int(later.splitlines()[1]) > int(first.splitlines()[1])


def test_a_repository_checkpoint_of_another_key_is_kept_on_every_kind(
    remote: Remote, workspace: Workspace, request: pytest.FixtureRequest
) -> None:
    """Break-it trials: `audit checkpoint` overwrote a repository's checkpoint signed by
    another key (the evidence against a replaced log); now it keeps it and exits 4. A
    local repository's copy even stops `audit init` from making the new key."""
    import shutil

    ws = workspace
    ws.orc("audit", "init")
    ws.orc("backup", "files", "--level", "full")
    ws.orc("audit", "checkpoint")
    kept = _read_back(remote, ws, "checkpoint", request)
    shutil.rmtree(ws.root / "var" / "audit")  # the log and the key replaced: the key is
    shutil.rmtree(ws.root / "keys")  # sealed in the store, so the store goes too
    (ws.root / "var" / "secrets.sealed").unlink()
    if remote.kind == "local":
        refused = ws.orc("audit", "init", check=1)
        assert "but this log has a checkpoint in the repository" in refused.stderr
        assert not (ws.root / "var" / "audit" / "audit-key.pub").exists()
    else:
        ws.orc("audit", "init")  # a new key: the remote copy is not read until published
        result = ws.orc("audit", "checkpoint", check=4)
        last = result.stderr.strip().splitlines()[-1]
        assert f"target '{remote.name}'" in last and "signed by another key" in last, last
        assert "Traceback" not in result.stderr
    assert _read_back(remote, ws, "checkpoint", request) == kept
