"""Restores: the bytes restic writes back are the bytes that were backed up."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Workspace, require, restic_snapshots

pytestmark = pytest.mark.integration


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def backed_up(workspace: Workspace) -> Workspace:
    ws = workspace
    ws.orc("backup", "files", "--level", "full")
    (ws.data / "a.txt").write_text("alpha, second version\n")
    (ws.data / "skip.tmp").write_text("excluded\n")
    ws.orc("backup", "files", "--level", "incremental")
    return ws


def test_restore_latest_gives_back_every_byte(backed_up: Workspace) -> None:
    ws = backed_up
    out = ws.orc_json("restore", "files", "--to", str(ws.root / "back"))
    root = ws.root / "back" / ws.data.relative_to("/")
    assert (root / "a.txt").read_text() == "alpha, second version\n"
    assert digest(root / "sub" / "b.bin") == digest(ws.data / "sub" / "b.bin")
    assert not (root / "skip.tmp").exists()  # excluded by the policy
    assert out["files"] == 2
    assert out["snapshot"] == restic_snapshots(ws.repo)[-1]["id"]
    # The restore is recorded (service standard 6.2: record the recovery).
    db = sqlite3.connect(ws.catalog)
    (outcome, files) = db.execute(
        "SELECT outcome, files_total FROM runs WHERE kind = 'restore'"
    ).fetchone()
    assert (outcome, files) == ("success", 2)
    # No staging directory is left beside the destination.
    assert [p.name for p in ws.root.iterdir() if p.name.startswith(".back")] == []


def test_restore_an_older_snapshot_and_one_path(backed_up: Workspace) -> None:
    ws = backed_up
    first = restic_snapshots(ws.repo)[0]["id"]
    wanted = str(ws.data / "a.txt")
    ws.orc(
        "restore", "files", "--to", str(ws.root / "old"), "--snapshot", first[:8], "--path", wanted
    )
    root = ws.root / "old" / ws.data.relative_to("/")
    assert (root / "a.txt").read_text() == "alpha\n"
    assert not (root / "sub").exists()


def test_restore_refuses_a_non_empty_destination(backed_up: Workspace) -> None:
    ws = backed_up
    dest = ws.root / "busy"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    result = ws.orc("restore", "files", "--to", str(dest), check=2)
    assert "not empty" in result.stderr and "Traceback" not in result.stderr
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]
    ws.orc("restore", "files", "--to", str(dest), "--overwrite")
    assert (dest / "keep.txt").read_text() == "mine"
    assert (dest / ws.data.relative_to("/") / "a.txt").exists()


def test_restore_of_unknown_snapshot_or_path_is_a_clear_error(backed_up: Workspace) -> None:
    ws = backed_up
    bad = ws.orc("restore", "files", "--to", str(ws.root / "x"), "--snapshot", "deadbeef", check=2)
    assert "no snapshot 'deadbeef'" in bad.stderr
    missing = ws.orc(
        "restore", "files", "--to", str(ws.root / "y"), "--path", "/no/such/file", check=1
    )
    assert "matches" in missing.stderr
    assert not (ws.root / "x").exists() and not (ws.root / "y").exists()  # nothing half-written


def test_snapshots_and_status_json(backed_up: Workspace) -> None:
    ws = backed_up
    listing = ws.orc_json("snapshots", "files")
    (target,) = listing["targets"]
    assert target["target"] == "local" and target["error"] is None
    assert [s["level"] for s in target["snapshots"]] == ["full", "incremental"]
    assert [s["id"] for s in target["snapshots"]] == [s["id"] for s in restic_snapshots(ws.repo)]

    status = ws.orc_json("status")
    (row,) = status["policies"]
    assert row["policy"] == "files" and row["health"] == "ok"
    assert row["newest_by_level"]["full"]["outcome"] == "success"
    assert row["newest_by_level"]["differential"] is None
    assert row["rpo_breached"] is False
    text = ws.orc("status").stdout
    assert "files" in text and "ok" in text

    late = ws.orc_json("status", "--now", "2099-01-01T00:00:00Z")["policies"][0]
    assert late["rpo_breached"] is True and late["health"] == "RPO breached"


# -- item 9: restore never writes outside --to, shows restic's reasons, counts what it restored


def _outside(ws: Workspace) -> Path:
    outside = ws.root / "outside"
    outside.mkdir()
    (outside / "a.txt").write_bytes(b"NOT YOURS\n")
    (outside / "b.bin").write_bytes(b"NOT YOURS EITHER\n")
    return outside


def test_item9_overwrite_never_follows_a_symlink_out_of_the_destination(
    backed_up: Workspace,
) -> None:
    """item 9: a symlinked directory and a symlinked file inside --to are replaced, and the
    files they point to keep their bytes."""
    ws = backed_up
    outside = _outside(ws)
    before = {p.name: p.read_bytes() for p in outside.iterdir()}
    rel = ws.data.relative_to("/")
    # A directory of the snapshot's path is a symlink to a folder outside --to.
    dir_link = ws.root / "dirlink"
    (dir_link / rel).parent.mkdir(parents=True)
    (dir_link / rel).symlink_to(outside, target_is_directory=True)
    ws.orc("restore", "files", "--to", str(dir_link), "--overwrite")
    # A file of the snapshot's path is a symlink to a file outside --to.
    file_link = ws.root / "filelink"
    (file_link / rel / "sub").mkdir(parents=True)
    (file_link / rel / "sub" / "b.bin").symlink_to(outside / "b.bin")
    (file_link / rel / "a.txt").symlink_to(outside / "a.txt")
    ws.orc("restore", "files", "--to", str(file_link), "--overwrite")

    assert {p.name: p.read_bytes() for p in outside.iterdir()} == before
    for dest in (dir_link, file_link):
        root = dest / rel
        assert not root.is_symlink() and not (root / "a.txt").is_symlink()
        assert (root / "a.txt").read_text() == "alpha, second version\n"
        assert digest(root / "sub" / "b.bin") == digest(ws.data / "sub" / "b.bin")
        assert [p.name for p in dest.iterdir() if p.name.startswith(".")] == []


def test_item9_a_snapshot_with_symlinks_restores_and_restores_again_over_itself(
    workspace: Workspace,
) -> None:
    """item 9: symlinks in the snapshot (relative, absolute, dangling) come back as links,
    also with --overwrite over an earlier restore (restic 0.14 failed: 'file exists')."""
    ws = workspace
    (ws.data / "rel-link").symlink_to("a.txt")
    (ws.data / "abs-link").symlink_to("/etc/hostname")
    (ws.data / "dangling").symlink_to("/no/such/target")
    ws.orc("backup", "files", "--level", "full")
    dest = ws.root / "back"
    first = ws.orc_json("restore", "files", "--to", str(dest))
    again = ws.orc_json("restore", "files", "--to", str(dest), "--overwrite")
    root = dest / ws.data.relative_to("/")
    for name in ("rel-link", "abs-link", "dangling"):
        assert (root / name).is_symlink()
        assert os.readlink(root / name) == os.readlink(ws.data / name)
    assert (root / "a.txt").read_text() == "alpha\n"
    assert first["files"] == again["files"] == 2


def test_item9_restic_errors_are_shown_not_just_counted(workspace: Workspace) -> None:
    """item 9: a restore restic cannot complete names restic's own reasons, not only
    'There were N errors', and leaves nothing behind."""
    ws = workspace
    ws.orc("backup", "files", "--level", "full")
    pack = max(
        (p for p in (ws.repo / "data").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size
    )
    raw = bytearray(pack.read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 16] = bytes(16)
    pack.chmod(0o644)
    pack.write_bytes(bytes(raw))
    dest = ws.root / "back"
    result = ws.orc("restore", "files", "--to", str(dest), check=1)
    assert "Traceback" not in result.stderr
    assert "b.bin" in result.stderr  # restic's line names the file ...
    assert "ciphertext verification failed" in result.stderr  # ... and why
    assert not dest.exists()
    assert [p.name for p in ws.root.iterdir() if p.name.startswith(".")] == []


def test_item9_overwrite_counts_what_restic_restored_and_refuses_a_missing_path(
    backed_up: Workspace,
) -> None:
    """item 9: files already in the folder are not reported as restored, and a --path the
    snapshot lacks is an error naming it that changes nothing."""
    ws = backed_up
    dest = ws.root / "busy"
    old = dest / ws.data.relative_to("/")
    (old / "sub").mkdir(parents=True)
    for name in ("x1", "x2", "x3"):
        (old / name).write_text("mine\n")
    missing = ws.orc(
        "restore", "files", "--to", str(dest), "--overwrite", "--path", "/no/such/path", check=1
    )
    assert "/no/such/path" in missing.stderr and "Traceback" not in missing.stderr
    assert sorted(p.name for p in old.iterdir()) == ["sub", "x1", "x2", "x3"]
    assert [p.name for p in dest.iterdir()] == [ws.data.relative_to("/").parts[0]]
    out = ws.orc_json(
        "restore", "files", "--to", str(dest), "--overwrite", "--path", str(ws.data / "a.txt")
    )
    assert out["files"] == 1
    assert (old / "a.txt").read_text() == "alpha, second version\n"
    assert (old / "x1").read_text() == "mine\n"


# -- item 12: awkward destinations are one clear line, never a traceback


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory nobody may write into: mode 0555, and immutable when we are root."""
    parent = tmp_path / "ro"
    (parent / "existing").mkdir(parents=True)
    parent.chmod(0o555)
    immutable = os.geteuid() == 0
    if immutable:
        done = subprocess.run(["chattr", "+i", str(parent)], capture_output=True, check=False)
        require(done.returncode == 0, "chattr +i on the test's file system (root)")
    yield parent
    if immutable:
        subprocess.run(["chattr", "-i", str(parent)], check=False)
    parent.chmod(0o755)


def test_item12_restore_into_a_read_only_parent_is_one_line(
    backed_up: Workspace, read_only_dir: Path
) -> None:
    """item 12: restore whose parent is read-only (a new destination, and an existing one)."""
    ws = backed_up
    result = ws.orc("restore", "files", "--to", str(read_only_dir / "new"), check=2)
    assert "Traceback" not in result.stderr
    assert str(read_only_dir / "new") in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    # An existing destination there works: restic stages inside it, not beside it.
    existing = read_only_dir / "existing"
    assert ws.orc_json("restore", "files", "--to", str(existing))["files"] == 2
    assert (existing / ws.data.relative_to("/") / "a.txt").exists()
    assert [p.name for p in read_only_dir.iterdir()] == ["existing"]
    assert [p.name for p in existing.iterdir()] == [ws.data.relative_to("/").parts[0]]


def test_item12_restore_to_a_dangling_symlink_or_a_symlink_to_an_empty_directory(
    backed_up: Workspace,
) -> None:
    """item 12: a dangling link is refused in one line; a link to an empty directory is
    followed (it is what --to names) and the files land in that directory."""
    ws = backed_up
    dangling = ws.root / "dangling"
    dangling.symlink_to(ws.root / "nowhere")
    result = ws.orc("restore", "files", "--to", str(dangling), check=2)
    assert "Traceback" not in result.stderr and "does not exist" in result.stderr
    assert dangling.is_symlink() and not (ws.root / "nowhere").exists()

    empty = ws.root / "empty"
    empty.mkdir()
    link = ws.root / "link"
    link.symlink_to(empty, target_is_directory=True)
    out = ws.orc_json("restore", "files", "--to", str(link))
    assert out["files"] == 2 and out["destination"] == str(empty)
    assert link.is_symlink()
    assert (empty / ws.data.relative_to("/") / "a.txt").read_text() == "alpha, second version\n"


# -- item 13: a restore from another target than the first says why the first failed


def test_item13_restore_fallback_says_why_the_first_target_failed(workspace: Workspace) -> None:
    """item 13: the first target cannot serve the restore; the second does, and a line says
    why the first failed."""
    ws = workspace
    shutil.copytree(ws.repo, ws.root / "repos" / "second")
    ws.write_policies(
        ws.config.read_text()
        .replace('targets = ["local"]', 'targets = ["local", "second"]')
        .replace(
            "[policies.files]",
            '[targets.second]\nkind = "local"\npath = "repos/second"\n'
            'password = "secret:repo-test"\n\n[policies.files]',
        )
    )
    ws.orc("backup", "files", "--level", "full")
    assert len(restic_snapshots(ws.root / "repos" / "second")) == 1
    shutil.rmtree(ws.repo / "snapshots")  # the first target lost its snapshots
    (ws.repo / "snapshots").mkdir()
    dest = ws.root / "back"
    result = ws.orc("restore", "files", "--to", str(dest))
    assert "'second'" in result.stdout
    assert "earlier target failed" in result.stderr and "'local'" in result.stderr
    assert (dest / ws.data.relative_to("/") / "a.txt").read_text() == "alpha\n"
