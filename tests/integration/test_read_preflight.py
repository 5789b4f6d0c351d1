"""Commands that only read a repository (snapshots, restore, verify, drill) run the target's
cheap preflight first, like `backup`: an unreachable target gives the same clear sentence
naming it, never restic's raw "unable to start the sftp session, error: EOF".
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import servers
from conftest import Workspace
from test_targets import S3_KEY_ID, S3_SECRET, S3_SECRET_ENV, s3_block, sftp_block, write_config

pytestmark = pytest.mark.integration

RESTIC_NOISE = ("unable to start the sftp session", "error: EOF", "Is there a repository")


def _sentence(ws: Workspace, name: str) -> str:
    """What `backup` says about the target: its one line, without the `policy@target: `."""
    err = ws.orc("backup", "files", check=1, timeout=60).stderr
    line = err.strip().splitlines()[-1]
    prefix = f"orchestrator: files@{name}: "
    assert line.startswith(prefix), err
    return line.removeprefix(prefix)


@pytest.fixture(params=["sftp-refused", "s3-no-bucket"])
def down(request: pytest.FixtureRequest, workspace: Workspace) -> str:
    """A policy whose only target cannot be reached; returns the target's name."""
    if request.param == "sftp-refused":
        sshd = request.getfixturevalue("sshd")
        block = sftp_block("nas", sshd, "/srv/nowhere", port=servers.free_port())
        name = "nas"
    else:
        server = request.getfixturevalue("s3_server")
        workspace.env[S3_SECRET_ENV] = f"{S3_KEY_ID}:{S3_SECRET}"
        block = s3_block("offsite", server.endpoint, "no-such-bucket", f"r-{uuid.uuid4().hex[:6]}")
        name = "offsite"
    write_config(workspace, block, targets=(name,))
    return name


def test_reads_fail_with_the_backup_sentence(down: str, workspace: Workspace) -> None:
    ws = workspace
    sentence = _sentence(ws, down)
    assert f"target '{down}'" in sentence

    snaps = ws.orc("snapshots", "files", check=1, timeout=60)
    assert snaps.stderr.strip().splitlines()[-1] == f"orchestrator: {sentence}"
    assert f"target {down}: {sentence}" in snaps.stdout
    doc = ws.orc_json("snapshots", check=1)
    assert doc["targets"] == [{"target": down, "error": sentence, "snapshots": []}]

    restore = ws.orc("restore", "files", "--to", str(ws.root / "back"), check=1, timeout=60)
    assert restore.stderr.strip().splitlines()[-1].endswith(sentence), restore.stderr
    assert not (ws.root / "back").exists()

    check = ws.orc("--json", "verify", "files", "--tier", "check", check=1, timeout=60)
    [rec] = json.loads(check.stdout)["verifications"]
    assert rec["outcome"] == "failed" and rec["message"] == sentence

    drill = ws.orc("--json", "drill", "files", check=1, timeout=60)
    [rec] = json.loads(drill.stdout)["drills"]
    assert rec["outcome"] == "failed" and rec["message"] == sentence

    for out in (snaps, restore, check, drill):
        assert "Traceback" not in out.stderr
        assert not any(noise in out.stdout + out.stderr for noise in RESTIC_NOISE), out.stderr


def test_new_location_is_no_repository_yet_not_an_error(workspace: Workspace, sshd: Any) -> None:
    """The preflight passes for a location restic has not created yet: `snapshots` says so."""
    block = sftp_block("nas", sshd, str(sshd.root / f"none-{uuid.uuid4().hex[:8]}"))
    write_config(workspace, block, targets=("nas",))
    result = workspace.orc("snapshots", check=1, timeout=60)
    assert "target nas: no repository yet (no backup run)" in result.stdout
    assert result.stderr == ""
