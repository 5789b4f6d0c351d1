"""Verification tiers and drills on remote targets: SFTP (a real sshd on loopback) and S3
(a real moto server on loopback).

The repository is damaged behind restic's back, where it really lives: on the sshd's
directory for SFTP, and through boto3 against the moto server for S3. `verify --tier
media` streams every file from the target (no repository password) and must name each
fault with exit 4; an undamaged repository (with a stray temporary file in it) must raise
no alarm, and a drill must restore, compare and measure on both kinds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import servers
from conftest import Workspace
from test_targets import S3_KEY_ID, S3_SECRET, S3_SECRET_ENV, s3_block, sftp_block, upload_tree

pytestmark = pytest.mark.integration

BUCKET = "orc-verify-remote"
NAMES = {"sftp": "nas", "s3": "offsite"}

CONFIG = """\
[orchestrator]
state_dir = "var"
timezone = "UTC"

{block}
[policies.files]
importance = "critical"
sources = ["data"]
targets = ["{name}"]
daily = {{ at = "01:30", level = "incremental" }}
verify = {{ read_data_fraction = "1/2", media = true }}
drill = {{ sample_files = 3, rto_minutes = 60 }}
"""


@dataclass
class Store:
    """Direct access to the repository's storage, behind restic's and our code's back."""

    kind: str
    name: str
    root: Path | None = None  # SFTP: the directory the sshd serves
    client: Any = None  # S3: a boto3 client of the moto server
    prefix: str = ""

    def files(self, folder: str) -> dict[str, int]:
        """Repository-relative path -> size of every file under `folder`."""
        if self.root is not None:
            return {
                p.relative_to(self.root).as_posix(): p.stat().st_size
                for p in (self.root / folder).rglob("*")
                if p.is_file()
            }
        pages = self.client.get_paginator("list_objects_v2")
        out = {}
        for page in pages.paginate(Bucket=BUCKET, Prefix=f"{self.prefix}/{folder}/"):
            for obj in page.get("Contents") or ():
                out[obj["Key"][len(self.prefix) + 1 :]] = obj["Size"]
        return out

    def read(self, path: str) -> bytes:
        if self.root is not None:
            return (self.root / path).read_bytes()
        return self.client.get_object(Bucket=BUCKET, Key=f"{self.prefix}/{path}")["Body"].read()

    def write(self, path: str, data: bytes) -> None:
        if self.root is not None:
            file = self.root / path
            file.chmod(0o600)  # restic writes its files read-only
            file.write_bytes(data)
        else:
            self.client.put_object(Bucket=BUCKET, Key=f"{self.prefix}/{path}", Body=data)

    def delete(self, path: str) -> None:
        if self.root is not None:
            (self.root / path).unlink()
        else:
            self.client.delete_object(Bucket=BUCKET, Key=f"{self.prefix}/{path}")

    def largest(self, folder: str) -> str:
        files = self.files(folder)
        return max(files, key=lambda p: (files[p], p))


@pytest.fixture(scope="module")
def verify_bucket(s3_server: Any) -> str:
    servers.s3_client(s3_server.endpoint).create_bucket(Bucket=BUCKET)
    return BUCKET


@pytest.fixture(params=("sftp", "s3"))
def remote(
    request: pytest.FixtureRequest, workspace: Workspace, template_repo: Path
) -> Iterator[Store]:
    """A fresh repository (a copy of the template) on an SFTP or S3 target, a policy with
    verify and drill settings backing up `data` to it, and one backup made."""
    kind = request.param
    name = NAMES[kind]
    for i in range(3):
        (workspace.data / f"f{i}.bin").write_bytes(bytes([i]) * (30_000 + i))
    (workspace.data / "big.bin").write_bytes(os.urandom(640_000))
    if kind == "sftp":
        sshd = request.getfixturevalue("sshd")
        root = sshd.root / f"verify-{uuid.uuid4().hex[:8]}"
        shutil.copytree(template_repo, root)
        store = Store(kind, name, root=root)
        block = sftp_block(name, sshd, str(root))
    else:
        server = request.getfixturevalue("s3_server")
        request.getfixturevalue("verify_bucket")
        client = servers.s3_client(server.endpoint)
        prefix = f"verify-{uuid.uuid4().hex[:8]}"
        upload_tree(client, template_repo, BUCKET, prefix)
        store = Store(kind, name, client=client, prefix=prefix)
        block = s3_block(name, server.endpoint, BUCKET, prefix)
        workspace.env[S3_SECRET_ENV] = f"{S3_KEY_ID}:{S3_SECRET}"
    workspace.config.write_text(CONFIG.format(block=block, name=name))
    workspace.orc("backup", "files", "--level", "full")
    yield store


def damage_of(doc: dict, key: str = "verifications") -> list[dict]:
    return [d for r in doc[key] for d in r["damage"]]


def media(ws: Workspace, check: int) -> tuple[dict, str]:
    out = ws.orc("--json", "verify", "files", "--tier", "media", check=check)
    return json.loads(out.stdout), out.stderr


def test_undamaged_repository_raises_no_alarm(remote: Store, workspace: Workspace) -> None:
    """Every tier passes; restic's temporary files and our probe objects are not damage."""
    pack = remote.largest("data")
    remote_tmp = f"{pack}-tmp-4242"
    if remote.root is not None:
        (remote.root / remote_tmp).write_bytes(b"half-written")
    else:
        remote.client.put_object(Bucket=BUCKET, Key=f"{remote.prefix}/{remote_tmp}", Body=b"x")
    doc = workspace.orc_json("verify", "files", "--tier", "all")
    assert doc["exit_code"] == 0, doc
    assert [r["tier"] for r in doc["verifications"]] == ["check", "subset", "media"]
    assert all(r["outcome"] == "ok" and r["damage"] == [] for r in doc["verifications"])
    listed = sum(len(remote.files(f)) for f in ("data", "index", "snapshots", "keys"))
    rec = doc["verifications"][2]
    assert rec["target"] == remote.name
    assert rec["files"] == listed - 1  # the temporary file is skipped
    assert rec["bytes"] == sum(
        size for f in ("data", "index", "snapshots", "keys") for size in remote.files(f).values()
    ) - len(remote.read(remote_tmp))
    assert rec["details"]["coverage_percent"] == 100
    again, _ = media(workspace, check=0)  # the same listing again: nothing vanished
    assert damage_of(again) == []


def test_flipped_byte_in_a_pack(remote: Store, workspace: Workspace) -> None:
    pack = remote.largest("data")
    data = bytearray(remote.read(pack))
    data[len(data) // 2] ^= 0x01
    remote.write(pack, bytes(data))
    actual = hashlib.sha256(data).hexdigest()

    doc, stderr = media(workspace, check=4)
    assert damage_of(doc) == [
        {
            "kind": "hash_mismatch",
            "path": pack,
            "expected": pack.rsplit("/", 1)[1],
            "actual": actual,
            "message": damage_of(doc)[0]["message"],
        }
    ]
    assert f"media@{remote.name}" in stderr and pack in stderr and actual in stderr

    # A drill over the network restores the largest file from that pack and must not
    # believe restic's exit code.
    res = workspace.orc("--json", "drill", "files", check=4)
    kinds = {d["kind"] for d in damage_of(json.loads(res.stdout), "drills")}
    assert kinds & {"content_mismatch", "size_mismatch", "not_restored", "restore_error"}, kinds
    assert list((workspace.root / "var" / "drills").iterdir()) == []


@pytest.mark.parametrize("folder", ["data", "index"])
def test_deleted_pack_or_index_is_named(remote: Store, workspace: Workspace, folder: str) -> None:
    media(workspace, check=0)  # records the listing
    victim = remote.largest(folder)
    remote.delete(victim)
    doc, stderr = media(workspace, check=4)
    [damage] = damage_of(doc)
    assert damage["kind"] == "missing" and damage["path"] == victim
    assert victim in stderr


def test_truncated_snapshot_file(remote: Store, workspace: Workspace) -> None:
    [snap] = remote.files("snapshots")
    data = remote.read(snap)
    remote.write(snap, data[: len(data) // 2])
    doc, stderr = media(workspace, check=4)
    [damage] = damage_of(doc)
    assert damage["kind"] == "hash_mismatch" and damage["path"] == snap
    assert damage["expected"] == snap.rsplit("/", 1)[1]
    assert damage["actual"] == hashlib.sha256(data[: len(data) // 2]).hexdigest()
    assert snap in stderr


def test_drill_report(remote: Store, workspace: Workspace) -> None:
    doc = workspace.orc_json("drill", "files")
    [rec] = doc["drills"]
    d = rec["details"]
    assert rec["outcome"] == "ok" and rec["damage"] == [] and rec["target"] == remote.name
    assert d["files_checked"] == 3 and d["mismatches"] == []
    assert d["sample"][0].endswith("/big.bin")  # the largest file is always in the sample
    assert d["bytes_checked"] >= 640_000
    assert d["throughput_bytes_per_second"] > 0 and d["extrapolated_full_restore_seconds"] > 0
    assert d["rto_met"] is True
    assert list((workspace.root / "var" / "drills").iterdir()) == []
    assert "last good drill" in workspace.orc("status").stdout


def test_item4_own_forget_and_prune_are_not_damage(remote: Store, workspace: Workspace) -> None:
    """Issue 14 item 4 on SFTP and S3: the snapshot file our forget removed and the packs
    and indexes our prune removed are not reported missing; a pack deleted behind our
    back afterwards is."""
    ws = workspace
    ws.config.write_text(ws.config.read_text() + "retention = { last = 1 }\n")
    media(ws, check=0)  # the listing
    first = remote.files("snapshots")
    (ws.data / "big.bin").unlink()  # its pack becomes garbage once the first is forgotten
    ws.orc("backup", "files", "--level", "full")
    before = {f: s for d in ("data", "index", "snapshots") for f, s in remote.files(d).items()}
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT01:30")
    out = ws.orc_json("run", "--due", "--now", tomorrow)  # backup, checks, forget, prune
    assert [len(r["remove"]) for r in out["retention"]] == [1], out["retention"]
    assert out["prunes"] == [{"target": remote.name, "error": None}]
    after = {f: s for d in ("data", "index", "snapshots") for f, s in remote.files(d).items()}
    gone = set(before) - set(after)
    assert set(first) <= gone and any(p.startswith(("data/", "index/")) for p in gone), gone

    doc, _ = media(ws, check=0)
    assert damage_of(doc) == []
    assert "removed by our own forget/prune" in doc["verifications"][0]["message"]
    pack = remote.largest("data")
    remote.delete(pack)
    doc, _ = media(ws, check=4)
    assert [(d["kind"], d["path"]) for d in damage_of(doc)] == [("missing", pack)]
