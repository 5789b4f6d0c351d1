"""Copies: `copy_to = [...]` backs up once to the policy's first target, then `restic copy`
copies the new snapshot to each copy target (local -> SFTP, local -> S3), creating the
destination with the source's chunker parameters. Each copy is a run in the catalog and an
event; a failed copy exits 3. The copy target's repository has its own password: both reach
restic through pipes, never argv, environment or logs.
"""

from __future__ import annotations

import filecmp
import json
import os
import subprocess
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import servers
from conftest import LOCAL_HEAD, PASSWORD, Workspace
from test_targets import S3_KEY_ID, S3_SECRET, S3_SECRET_ENV, s3_block, sftp_block

pytestmark = pytest.mark.integration

BUCKET = "orc-copies"
COPY_PASSWORD = "another repository's password 7"
COPY_SECRET_ENV = "ORCHESTRATOR_SECRET_REPO_COPY"

CONFIG = (
    LOCAL_HEAD
    + """
{block}
[policies.files]
importance = "critical"
sources = ["data"]
targets = ["local"]
copy_to = ["{name}"]
daily = {{ at = "01:30", level = "incremental" }}
"""
)


@dataclass
class CopyTarget:
    name: str
    restic_args: list[str]
    env: dict[str, str] = field(default_factory=dict)

    def witness(self, *args: str) -> subprocess.CompletedProcess[str]:
        """restic itself on the copy target, independent of the orchestrator's code."""
        return subprocess.run(
            ["restic", *self.restic_args, "--no-cache", *args],
            env={**os.environ, **self.env, "RESTIC_PASSWORD": COPY_PASSWORD},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def local_witness(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["restic", "--repo", str(ws.repo), "--no-cache", *args],
        env={**os.environ, "RESTIC_PASSWORD": PASSWORD},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def copies_bucket(s3_server: Any) -> str:
    servers.s3_client(s3_server.endpoint).create_bucket(Bucket=BUCKET)
    return BUCKET


def _sftp_copy_block(sshd: Any, path: str, **over: object) -> str:
    return sftp_block("nas", sshd, path, password="secret:repo-copy", **over)


@pytest.fixture(params=["sftp", "s3"])
def copy_target(request: pytest.FixtureRequest, workspace: Workspace) -> Iterator[CopyTarget]:
    """A policy backing up to `local` and copying to a new, empty SFTP or S3 location."""
    workspace.env[COPY_SECRET_ENV] = COPY_PASSWORD
    if request.param == "sftp":
        sshd = request.getfixturevalue("sshd")
        path = sshd.root / f"copy-{uuid.uuid4().hex[:8]}"
        block = _sftp_copy_block(sshd, str(path))
        ssh = (
            f"ssh -p {sshd.port} -i {sshd.client_key} -o IdentitiesOnly=yes "
            f"-o UserKnownHostsFile={sshd.known_hosts} -o StrictHostKeyChecking=yes "
            f"-o BatchMode=yes {sshd.user}@127.0.0.1 -s sftp"
        )
        target = CopyTarget(
            "nas", ["--repo", f"sftp:{sshd.user}@127.0.0.1:{path}", "-o", f"sftp.command={ssh}"]
        )
    else:
        server = request.getfixturevalue("s3_server")
        request.getfixturevalue("copies_bucket")
        prefix = f"copy-{uuid.uuid4().hex[:8]}"
        block = s3_block("offsite", server.endpoint, BUCKET, prefix, password="secret:repo-copy")
        workspace.env[S3_SECRET_ENV] = f"{S3_KEY_ID}:{S3_SECRET}"
        target = CopyTarget(
            "offsite",
            ["--repo", f"s3:{server.endpoint}/{BUCKET}/{prefix}"],
            {"AWS_ACCESS_KEY_ID": S3_KEY_ID, "AWS_SECRET_ACCESS_KEY": S3_SECRET},
        )
    workspace.config.write_text(CONFIG.format(block=block, name=target.name))
    yield target


def _config_of(out: subprocess.CompletedProcess[str]) -> dict:
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_backup_is_copied_with_its_tags(copy_target: CopyTarget, workspace: Workspace) -> None:
    ws = workspace
    result = ws.orc("-vv", "--json", "backup", "files", "--level", "full")
    for secret in (PASSWORD, COPY_PASSWORD, S3_SECRET):
        assert secret not in result.stdout + result.stderr
    runs = json.loads(result.stdout)["runs"]
    assert [(r["kind"], r["target"], r["outcome"]) for r in runs] == [
        ("backup", "local", "success"),
        ("copy", copy_target.name, "success"),
    ]
    backup, copy = runs
    assert copy["level"] == "full" and copy["snapshot_id"]
    # issue 14 item 5: full ids in the catalog and --json, the short form in messages
    assert len(backup["snapshot_id"]) == len(copy["snapshot_id"]) == 64
    assert f"snapshot {backup['snapshot_id'][:8]} of 'local' copied as snapshot " in copy["message"]
    assert copy["message"].endswith(copy["snapshot_id"][:8])

    # restic itself: the copy target holds the snapshot with the same tags, and was created
    # with the source's chunker parameters (so copies deduplicate).
    snaps = _config_of(copy_target.witness("snapshots", "--json"))
    [snap] = snaps
    [source] = _config_of(local_witness(ws, "snapshots", "--json"))
    assert sorted(snap["tags"]) == sorted(source["tags"])
    assert f"run:{backup['id']}" in snap["tags"] and snap["id"].startswith(copy["snapshot_id"])
    polynomial = _config_of(copy_target.witness("cat", "config"))["chunker_polynomial"]
    assert polynomial == _config_of(local_witness(ws, "cat", "config"))["chunker_polynomial"]

    # `snapshots` lists both targets, the copy with the same policy/level/run.
    listing = {t["target"]: t for t in ws.orc_json("snapshots", "files")["targets"]}
    assert set(listing) == {"local", copy_target.name}
    [here], [there] = listing["local"]["snapshots"], listing[copy_target.name]["snapshots"]
    for key in ("policy", "level", "run", "paths"):
        assert here[key] == there[key], key
    assert there["run"] == backup["id"] and there["level"] == "full"

    # The catalog knows the copy as a run, and the event went out.
    rows = ws.query("SELECT kind, target, outcome, snapshot_id FROM runs ORDER BY rowid")
    assert rows[-1] == ("copy", copy_target.name, "success", copy["snapshot_id"])
    events = ws.query("SELECT kind, target, details FROM events WHERE kind LIKE 'copy.%'")
    [(kind, target, details)] = events
    assert (kind, target) == ("copy.done", copy_target.name)
    assert json.loads(details)["source_snapshot_id"] == backup["snapshot_id"]

    # A second backup is copied into the existing repository; a restore from the copy
    # target gives back the files.
    (ws.data / "a.txt").write_text("alpha, changed\n")
    doc = ws.orc_json("backup", "files", "--level", "incremental")
    assert [r["outcome"] for r in doc["runs"]] == ["success", "success"]
    assert len(_config_of(copy_target.witness("snapshots", "--json"))) == 2
    dest = ws.root / "restored"
    ws.orc("restore", "files", "--target", copy_target.name, "--to", str(dest))
    restored = next(p for p in dest.rglob("data") if (p / "a.txt").is_file())
    cmp = filecmp.dircmp(ws.data, restored)
    assert not cmp.left_only and not cmp.right_only and not cmp.diff_files
    assert (restored / "sub" / "b.bin").read_bytes() == (ws.data / "sub" / "b.bin").read_bytes()


def test_failed_copy_exits_3(workspace: Workspace, sshd: Any) -> None:
    """The copy target is down: the backup is kept, the copy is a failed run, exit 3."""
    ws = workspace
    ws.env[COPY_SECRET_ENV] = COPY_PASSWORD
    block = _sftp_copy_block(sshd, "/srv/nowhere", port=servers.free_port())
    ws.config.write_text(CONFIG.format(block=block, name="nas"))
    result = ws.orc("backup", "files", check=3, timeout=120)
    rows = {ln.split()[1]: ln for ln in result.stdout.splitlines() if ln.startswith("files")}
    assert "success" in rows["local"] and "failed" in rows["nas"]
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("orchestrator: files@nas: target 'nas'") and "connection refused" in line
    assert ws.query("SELECT kind, outcome FROM runs ORDER BY rowid") == [
        ("backup", "success"),
        ("copy", "failed"),
    ]
    assert ws.query("SELECT kind FROM events WHERE kind LIKE 'copy.%'") == [("copy.failed",)]


def test_no_copy_without_a_new_snapshot(workspace: Workspace, sshd: Any) -> None:
    """A failed backup has nothing to copy: no copy run, exit 1."""
    ws = workspace
    ws.env[COPY_SECRET_ENV] = COPY_PASSWORD
    block = _sftp_copy_block(sshd, str(sshd.root / f"copy-{uuid.uuid4().hex[:8]}"))
    ws.config.write_text(
        CONFIG.format(block=block, name="nas").replace('sources = ["data"]', 'sources = ["gone"]')
    )
    ws.orc("backup", "files", check=1, timeout=60)
    assert ws.query("SELECT kind FROM runs") == [("backup",)]


def test_copy_between_targets_needing_different_ssh_options_is_refused(
    workspace: Workspace, sshd: Any, template_repo: Any
) -> None:
    """restic 0.14 takes one `-o sftp.command` for both repositories of a copy: two SFTP
    targets with different SSH settings are refused with a sentence, never mixed up."""
    import shutil

    ws = workspace
    ws.env[COPY_SECRET_ENV] = COPY_PASSWORD
    src = sshd.root / f"src-{uuid.uuid4().hex[:8]}"
    shutil.copytree(template_repo, src)
    first = sftp_block("nas", sshd, str(src))
    second = _sftp_copy_block(sshd, str(src) + "-copy", connect_timeout=7).replace(
        "[targets.nas]", "[targets.nas2]"
    )
    ws.config.write_text(
        textwrap.dedent(CONFIG.format(block=first + "\n" + second, name="nas2")).replace(
            'targets = ["local"]', 'targets = ["nas"]'
        )
    )
    result = ws.orc("backup", "files", check=3, timeout=120)
    line = result.stderr.strip().splitlines()[-1]
    assert "cannot copy from 'nas' to 'nas2'" in line and "sftp.command" in line
