"""Verification tiers and drills against a real local repository and real restic.

Each fault of the issue is injected into a real repository and must be caught by
the right tier, named, and reported with exit 4; an undamaged repository (with a
restic temporary file in it) must raise no alarm.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path

import pytest
from conftest import BASIC_POLICIES, SECRET_ENV, Workspace

pytestmark = pytest.mark.integration

VERIFY_POLICIES = (
    BASIC_POLICIES
    + """\
verify = { read_data_fraction = "1/3", media = true }
drill = { sample_files = 3, rto_minutes = 60 }
"""
)


@pytest.fixture
def ws(workspace: Workspace) -> Workspace:
    """A workspace with a few more files, verify/drill settings and one backup made."""
    for i in range(4):
        (workspace.data / f"f{i}.bin").write_bytes(os.urandom(20_000 + i))
    (workspace.data / "big.bin").write_bytes(os.urandom(400_000))
    workspace.write_policies(VERIFY_POLICIES)
    workspace.orc("backup", "files")
    return workspace


def content_files(repo: Path, folder: str) -> list[Path]:
    return sorted(p for p in (repo / folder).rglob("*") if p.is_file())


def largest_pack(repo: Path) -> Path:
    return max(content_files(repo, "data"), key=lambda p: p.stat().st_size)


def rel(repo: Path, path: Path) -> str:
    return path.relative_to(repo).as_posix()


def damage_of(doc: dict, key: str = "verifications") -> list[dict]:
    return [d for r in doc[key] for d in r["damage"]]


def events(ws: Workspace, kind: str) -> list[dict]:
    db = sqlite3.connect(ws.catalog)
    rows = db.execute("SELECT summary, details FROM events WHERE kind = ?", (kind,)).fetchall()
    db.close()
    return [{"summary": s, "details": json.loads(d)} for s, d in rows]


def test_undamaged_repository_raises_no_alarm(ws: Workspace) -> None:
    pack = largest_pack(ws.repo)
    tmp = pack.parent / (pack.name + "-tmp-123456")  # what restic leaves while writing
    tmp.write_bytes(b"half-written")
    doc = ws.orc_json("verify", "files", "--tier", "all")
    assert doc["schema"] == 1 and doc["exit_code"] == 0
    assert [r["tier"] for r in doc["verifications"]] == ["check", "subset", "media"]
    assert all(r["outcome"] == "ok" and r["damage"] == [] for r in doc["verifications"])
    media = doc["verifications"][2]
    files = sum(len(content_files(ws.repo, f)) for f in ("data", "index", "snapshots", "keys"))
    assert media["files"] == files - 1  # the temporary file is skipped
    assert media["details"]["coverage_percent"] == 100
    # a second media run sees the same listing: nothing vanished
    assert ws.orc_json("verify", "--tier", "media")["exit_code"] == 0
    assert events(ws, "damage.found") == []


def test_flipped_byte_in_a_pack(ws: Workspace) -> None:
    pack = largest_pack(ws.repo)
    os.chmod(pack, 0o600)
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0x01
    pack.write_bytes(data)
    actual = hashlib.sha256(data).hexdigest()

    out = ws.orc("--json", "verify", "--tier", "media", check=4)
    [damage] = damage_of(json.loads(out.stdout))
    assert damage == {
        "kind": "hash_mismatch",
        "path": rel(ws.repo, pack),
        "expected": pack.name,
        "actual": actual,
        "message": damage["message"],
    }
    assert rel(ws.repo, pack) in out.stderr and actual in out.stderr
    [event] = events(ws, "damage.found")
    assert event["details"]["damage"][0]["path"] == rel(ws.repo, pack)

    # subset: within N=3 rotated runs the part holding the pack is read and fails
    found = []
    for _ in range(3):
        res = ws.orc("--json", "verify", "files", "--tier", "subset", check=None)
        assert res.returncode in (0, 4), res.stderr
        if res.returncode == 4:
            found += damage_of(json.loads(res.stdout))
    assert any(pack.name in (d["path"] or "") + d["message"] for d in found), found

    # a drill restores the largest file from that pack and must not believe restic
    res = ws.orc("--json", "drill", "files", check=4)
    kinds = {d["kind"] for d in damage_of(json.loads(res.stdout), "drills")}
    assert kinds & {"content_mismatch", "size_mismatch", "not_restored"}, kinds
    assert list((ws.root / "var" / "drills").iterdir()) == []


@pytest.mark.parametrize("folder", ["data", "index"])
def test_deleted_pack_or_index_is_named(ws: Workspace, folder: str) -> None:
    ws.orc("verify", "--tier", "media")  # records the listing
    victim = largest_pack(ws.repo) if folder == "data" else content_files(ws.repo, "index")[0]
    victim.unlink()
    out = ws.orc("--json", "verify", "--tier", "media", check=4)
    [damage] = damage_of(json.loads(out.stdout))
    assert damage["kind"] == "missing" and damage["path"] == rel(ws.repo, victim)
    assert rel(ws.repo, victim) in out.stderr
    check = ws.orc("--json", "verify", "files", "--tier", "check", check=4)
    assert damage_of(json.loads(check.stdout))[0]["kind"] == "check_error"
    # never silence after one alarm: the next media run reports the same file again ...
    again = ws.orc("--json", "verify", "--tier", "media", check=4)
    assert [d["path"] for d in damage_of(json.loads(again.stdout))] == [rel(ws.repo, victim)]
    # ... until the operator accepts the loss: reported once more, then forgotten
    ws.orc("verify", "--tier", "media", "--accept-missing", check=4)
    assert ws.orc_json("verify", "--tier", "media")["exit_code"] == 0


def test_truncated_snapshot_file(ws: Workspace) -> None:
    [snap] = content_files(ws.repo, "snapshots")
    os.chmod(snap, 0o600)
    with snap.open("r+b") as fh:
        fh.truncate(snap.stat().st_size // 2)
    out = ws.orc("--json", "verify", "--tier", "all", check=4)
    doc = json.loads(out.stdout)
    by_tier = {r["tier"]: r for r in doc["verifications"]}
    [media] = by_tier["media"]["damage"]
    assert media["kind"] == "hash_mismatch" and media["path"] == rel(ws.repo, snap)
    assert media["expected"] == snap.name
    assert media["actual"] == hashlib.sha256(snap.read_bytes()).hexdigest()
    assert by_tier["check"]["outcome"] == "damaged"


def test_subset_coverage_reaches_100_percent_after_n_runs(ws: Workspace) -> None:
    parts = []
    for _ in range(3):
        doc = ws.orc_json("verify", "files", "--tier", "subset")
        parts.append(doc["verifications"][0]["part"])
    assert parts == ["1/3", "2/3", "3/3"]
    assert doc["verifications"][0]["details"]["coverage_percent"] == 100
    status = ws.orc("status").stdout
    assert "100% of data read within the last 3 runs" in status, status
    js = ws.orc_json("status")["policies"][0]
    assert js["subset_coverage"].startswith("100%")
    assert ws.orc_json("verify", "files", "--tier", "subset")["verifications"][0]["part"] == "1/3"


def test_media_budget_rotates_through_the_repository(ws: Workspace) -> None:
    ws.write_policies(VERIFY_POLICIES.replace("media = true", 'media = true, media_budget = "1B"'))
    total = sum(len(content_files(ws.repo, f)) for f in ("data", "index", "snapshots", "keys"))
    seen = []
    for _ in range(total):
        doc = ws.orc_json("verify", "--tier", "media")["verifications"][0]
        assert doc["files"] == 1  # the budget admits one file per run
        seen.append(doc["details"]["coverage_percent"])
    assert seen[-1] == 100 and seen[0] < 100


def test_drill_report(ws: Workspace) -> None:
    doc = ws.orc_json("drill", "files")
    [rec] = doc["drills"]
    d = rec["details"]
    assert rec["outcome"] == "ok" and rec["damage"] == []
    assert d["files_checked"] == 3 and d["mismatches"] == []
    assert "big.bin" in d["sample"][0]  # the largest file is always in the sample
    assert d["bytes_checked"] >= 400_000 and d["bytes_in_snapshot"] > d["bytes_checked"]
    assert d["restore_seconds"] > 0 and d["throughput_bytes_per_second"] > 0
    assert d["extrapolated_full_restore_seconds"] > 0
    assert d["rto_minutes"] == 60 and d["rto_met"] is True
    assert rec["seed"] == d["seed"] and rec["seconds"] > 0
    assert list((ws.root / "var" / "drills").iterdir()) == []
    text = ws.orc("drill", "files").stdout
    assert "mismatches" in text and "vs RTO 60 min (met)" in text
    assert "last good drill" in ws.orc("status").stdout
    assert len(events(ws, "drill.done")) == 2
    # the same seed gives the same sample
    again = ws.orc_json("drill", "files", "--seed", str(rec["seed"]))["drills"][0]
    assert again["details"]["sample"] == d["sample"]


def test_drill_without_live_reference_uses_restic_dump(ws: Workspace) -> None:
    """Live files changed since the snapshot (size, or content with mtime kept): no false
    alarm, because the drill then checks against restic's own record of the content."""
    big = ws.data / "big.bin"
    st = big.stat()
    with big.open("r+b") as fh:  # same size, same mtime, different content
        fh.write(b"\0" * 16)
    os.utime(big, ns=(st.st_atime_ns, st.st_mtime_ns))
    for p in ws.data.glob("f*.bin"):
        p.write_bytes(b"changed")
    doc = ws.orc_json("drill", "files")["drills"][0]
    assert doc["outcome"] == "ok", doc
    assert doc["details"]["checked_against_dump"] >= 1


def test_drill_catches_a_changed_restored_file(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restored file that differs is caught by hash (in process: the change is made
    between restore and comparison, through the drill's own seam)."""
    from orchestrator.engine.context import Context
    from orchestrator.engine.verification import drill, exit_code_for
    from orchestrator.policies.loader import load_config

    monkeypatch.setenv(SECRET_ENV, ws.env[SECRET_ENV])
    changed: list[Path] = []

    def corrupt(scratch: Path) -> None:
        restored = max(
            (p for p in scratch.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size
        )
        with restored.open("r+b") as fh:
            fh.seek(1000)
            byte = fh.read(1)
            fh.seek(1000)
            fh.write(bytes([byte[0] ^ 0xFF]))
        changed.append(restored)

    ctx = Context.open(load_config(ws.config))
    try:
        [rec] = drill(ctx, ctx.config.policy("files"), after_restore=corrupt)
    finally:
        ctx.close()
    assert exit_code_for([rec]) == 4
    [damage] = rec.damage
    assert damage["kind"] == "content_mismatch" and damage["path"].endswith("/data/big.bin")
    assert damage["expected"] == hashlib.sha256((ws.data / "big.bin").read_bytes()).hexdigest()
    assert damage["actual"] != damage["expected"] and len(damage["actual"]) == 64
    assert not changed[0].exists()  # the scratch space is gone
    assert events(ws, "damage.found")
