"""Retention with real restic: level-aware keeps (issue 14 item 5) and media verification
that does not take the product's own forget/prune for damage (issue 14 item 4).

`restic snapshots --json` and the repository's files on disk are the witnesses.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest
from conftest import Workspace, local_head, restic_snapshots, tag

pytestmark = pytest.mark.integration

HEAD = local_head(retry_backoff=0)

LEVELS_POLICY = """
[policies.files]
importance = "normal"
sources = ["data"]
targets = ["local"]
daily  = { at = "01:00", level = "incremental" }
weekly = { on = "sun", at = "02:00", level = "differential" }
retention = { last = 2 }
"""


def repo_files(repo: Path) -> set[str]:
    """The content-addressed files restic keeps, as paths relative to the repository."""
    return {
        p.relative_to(repo).as_posix()
        for folder in ("data", "index", "snapshots", "keys")
        for p in (repo / folder).rglob("*")
        if p.is_file()
    }


def test_item5_retention_keeps_the_newest_full_for_the_next_differential(
    workspace: Workspace,
) -> None:
    """Item 5: last = 2 after full, inc, inc, inc keeps the full (restic forgets only an
    incremental), forget --dry-run says why, and the next differential has the full as
    parent instead of being upgraded to an unplanned full."""
    ws = workspace
    ws.write_policies(HEAD + LEVELS_POLICY)
    ws.orc("backup", "files", "--level", "full", "--now", "2026-03-02T01:00")
    for day in (3, 4, 5):
        (ws.data / f"day{day}.txt").write_text(f"day {day}\n")
        ws.orc("backup", "files", "--level", "incremental", "--now", f"2026-03-0{day}T01:00")
    before = restic_snapshots(ws.repo)
    assert [tag(s, "level") for s in before] == ["full"] + ["incremental"] * 3
    full_id = before[0]["id"]

    plan = ws.orc_json("forget", "files", "--dry-run")
    (result,) = plan["results"]
    assert full_id in result["keep"]
    assert result["remove"] == [before[1]["id"]]  # only the oldest incremental goes
    assert result["reasons"] == {full_id: "newest full (needed by the next differential)"}
    text = ws.orc("forget", "files", "--dry-run").stdout
    assert f"kept {full_id[:8]}: newest full (needed by the next differential)" in text

    ws.orc("forget", "files")
    after = restic_snapshots(ws.repo)
    assert [s["id"] for s in after] == [full_id, before[2]["id"], before[3]["id"]]

    diff = ws.orc_json("backup", "files", "--level", "differential", "--now", "2026-03-08T02:00")
    (run,) = diff["runs"]
    assert run["level"] == "differential", run["level_reason"]
    newest = restic_snapshots(ws.repo)[-1]
    assert tag(newest, "level") == "differential"
    assert newest["parent"] == full_id


MEDIA_POLICY = """
[policies.files]
importance = "normal"
sources = ["data"]
targets = ["local"]
daily  = { at = "01:00", level = "full" }
retention = { last = 2 }
verify = { every = "daily", media = true }
"""


def test_item4_media_accepts_our_own_forget_and_prune_but_not_a_stranger(
    workspace: Workspace,
) -> None:
    """Item 4: a simulated week of daily passes (backup, media verification, forget,
    prune) raises no false alarm for the snapshot files our forget removed and the
    packs/indexes our prune removed; a pack deleted by hand afterwards is still damage."""
    ws = workspace
    ws.write_policies(HEAD + MEDIA_POLICY)
    (ws.data / "only-day-1.bin").write_bytes(os.urandom(300_000))
    ws.orc("run", "--due", "--now", "2026-03-02T01:00")  # full, first media listing
    (ws.data / "only-day-1.bin").unlink()  # its pack becomes garbage once day 1 is forgotten
    ws.orc("run", "--due", "--now", "2026-03-03T01:00")
    day1 = restic_snapshots(ws.repo)[0]["id"]
    listed = repo_files(ws.repo)

    # day 3: retention forgets day 1, prune (first one, so due) removes its data
    out = ws.orc_json("run", "--due", "--now", "2026-03-04T01:00")
    assert [r["remove"] for r in out["retention"]] == [[day1]]
    assert [p["error"] for p in out["prunes"]] == [None]
    gone = listed - repo_files(ws.repo)
    assert f"snapshots/{day1}" in gone
    assert any(p.startswith(("data/", "index/")) for p in gone), gone

    # day 4: media verification lists the repository again: no false alarm
    out = ws.orc_json("run", "--due", "--now", "2026-03-05T01:00")
    media = [c for c in out["checks"] if c["tier"] == "media"]
    assert [(c["outcome"], c["damage"]) for c in media] == [("ok", [])]
    assert "removed by our own forget/prune" in media[0]["message"]

    # a pack deleted by someone else is damage, exit 4, named
    pack = max((ws.repo / "data").rglob("*"), key=lambda p: p.stat().st_size if p.is_file() else 0)
    pack.unlink()
    res = ws.orc("--json", "verify", "--tier", "media", check=4)
    damage = [d for r in json.loads(res.stdout)["verifications"] for d in r["damage"]]
    assert [(d["kind"], d["path"]) for d in damage] == [
        ("missing", pack.relative_to(ws.repo).as_posix())
    ]


def test_item4_a_snapshot_file_deleted_by_someone_else_is_still_damage(
    workspace: Workspace,
) -> None:
    """Item 4: only the snapshot files of the ids our forget removed are accepted; one
    deleted by someone else between the media listing and our forget stays damage."""
    ws = workspace
    ws.write_policies(HEAD + MEDIA_POLICY.replace("last = 2", "last = 1"))
    for day in (2, 3, 4):
        (ws.data / "day.txt").write_text(f"day {day}\n")
        ws.orc("backup", "files", "--level", "full", "--now", f"2026-03-0{day}T01:00")
    day2, day3, day4 = (s["id"] for s in restic_snapshots(ws.repo))
    ws.orc("verify", "--tier", "media")  # the listing
    (ws.repo / "snapshots" / day3).unlink()  # not ours
    out = ws.orc_json("forget", "files", "--max-share", "0.9")
    assert [r["remove"] for r in out["results"]] == [[day2]]
    assert [s["id"] for s in restic_snapshots(ws.repo)] == [day4]

    res = ws.orc("--json", "verify", "--tier", "media", check=4)
    (media,) = json.loads(res.stdout)["verifications"]
    assert [(d["kind"], d["path"]) for d in media["damage"]] == [("missing", f"snapshots/{day3}")]
    assert "1 files removed by our own forget/prune" in media["message"]


def test_item4_forget_does_not_delete_under_a_running_media_listing(
    workspace: Workspace,
) -> None:
    """Item 4: a media run lists the repository, then records that listing; a forget that
    deleted files in between would have them reported missing later. While a
    verification holds the target (`verify@local`), forget deletes nothing and says so."""
    ws = workspace
    ws.write_policies(HEAD + MEDIA_POLICY.replace("last = 2", "last = 1"))
    for day in (2, 3):
        ws.orc("backup", "files", "--level", "full", "--now", f"2026-03-0{day}T01:00")
    locks = ws.root / "var" / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with (locks / "verify_local.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        res = ws.orc("forget", "files", "--max-share", "0.9", check=75)  # busy
    assert "verify@local is already running" in res.stderr
    assert len(restic_snapshots(ws.repo)) == 2
    ws.orc("forget", "files", "--max-share", "0.9")
    assert len(restic_snapshots(ws.repo)) == 1
