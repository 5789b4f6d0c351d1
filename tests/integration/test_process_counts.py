"""How many restic processes each operation starts (issue 15): every restic process
that opens a repository pays the key derivation, so the count is the cost.

A wrapper named `restic`, first on PATH, appends each argv to a log and runs the real
binary; the counts below are read from that log, not from the orchestrator's own word.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Workspace, counting_restic, restic_snapshots, restic_verbs, tag

pytestmark = pytest.mark.integration


def counted(log: Path, run: object) -> list[str]:
    """The verbs of the restic processes `run()` started."""
    log.unlink(missing_ok=True)
    run()  # type: ignore[operator]
    return restic_verbs(log)


def test_backup_and_restore_start_one_restic_each(workspace: Workspace) -> None:
    ws = workspace
    log = counting_restic(ws)
    # The first backup of a policy on a target: the catalog knows nothing yet, so the
    # repository is listed once (and `restic version` asked once, then remembered).
    first = counted(log, lambda: ws.orc("backup", "files", "--level", "full"))
    assert first.count("backup") == 1 and len(first) <= 3, first

    assert counted(log, lambda: ws.orc("backup", "files", "--level", "full")) == ["backup"]
    (ws.data / "a.txt").write_text("alpha, changed\n")
    assert counted(log, lambda: ws.orc("backup", "files", "--level", "incremental")) == ["backup"]
    # no change at all: still one process, and restic used the catalog's parent
    assert counted(log, lambda: ws.orc("backup", "files", "--level", "incremental")) == ["backup"]
    assert counted(log, lambda: ws.orc("backup", "files", "--level", "differential")) == ["backup"]
    snaps = restic_snapshots(ws.repo)
    levels = [tag(s, "level") for s in snaps]
    assert levels == ["full", "full", "incremental", "incremental", "differential"]
    assert snaps[2]["parent"] == snaps[1]["id"]  # incremental: the newest of any level
    assert snaps[3]["parent"] == snaps[2]["id"]
    assert snaps[4]["parent"] == snaps[1]["id"]  # differential: the newest full
    # the catalog holds restic's full ids on every version, learned without restic
    ids = [r[0] for r in ws.query("SELECT snapshot_id FROM runs ORDER BY started_at")]
    assert ids == [s["id"] for s in snaps]

    dest = ws.root / "restored"
    assert counted(log, lambda: ws.orc("restore", "files", "--to", str(dest))) == ["restore"]
    assert (dest / str(ws.data).lstrip("/") / "a.txt").read_text() == "alpha, changed\n"
    (row,) = ws.query("SELECT snapshot_id, level FROM runs WHERE kind = 'restore'")
    assert row == (snaps[4]["id"], "differential")

    older = ws.root / "older"
    by_id = counted(
        log,
        lambda: ws.orc("restore", "files", "--to", str(older), "--snapshot", snaps[0]["id"][:8]),
    )
    assert by_id == ["restore"]
    assert (older / str(ws.data).lstrip("/") / "a.txt").read_text() == "alpha\n"


def test_a_parent_removed_behind_our_back_falls_back_to_the_listing(
    workspace: Workspace,
) -> None:
    """The catalog's parent was forgotten by someone else: restic rejects it, the
    repository is listed (the snapshot is marked vanished) and the backup still runs."""
    ws = workspace
    ws.orc("backup", "files", "--level", "full")
    ws.orc("backup", "files", "--level", "incremental")
    first, second = restic_snapshots(ws.repo)
    from conftest import restic

    assert restic(ws.repo, "forget", second["id"]).returncode == 0
    log = counting_restic(ws)
    out = counted(log, lambda: ws.orc("backup", "files", "--level", "incremental"))
    # (`version` once: the wrapper is a new binary to the version cache)
    assert out == ["version", "backup", "snapshots", "backup"], out
    snaps = restic_snapshots(ws.repo)
    assert snaps[-1]["parent"] == first["id"]
    (gone,) = ws.query("SELECT gone_reason FROM runs WHERE snapshot_id = ?", second["id"])
    assert gone == ("vanished",)


def test_restore_of_an_id_the_catalog_does_not_know_lists_first(workspace: Workspace) -> None:
    """An id of another policy's snapshot is never restored under this policy's name."""
    ws = workspace
    ws.orc("backup", "files", "--level", "full")
    from conftest import restic

    stranger = restic(ws.repo, "backup", "--tag", "policy:other", str(ws.data), "--json")
    assert stranger.returncode == 0, stranger.stderr
    other = next(s for s in restic_snapshots(ws.repo) if tag(s, "policy") == "other")
    log = counting_restic(ws)
    dest = ws.root / "x"
    bad = counted(
        log,
        lambda: ws.orc(
            "restore", "files", "--to", str(dest), "--snapshot", other["id"][:8], check=2
        ),
    )
    assert bad == ["version", "snapshots"]
    assert not dest.exists()
