"""`run --due` runs copies, verification tiers and drills too, with real restic.

`restic snapshots --json` on the copy repository and the catalog's verifications table
are the witnesses; a second pass at the same time repeats nothing.
"""

from __future__ import annotations

import pytest
from conftest import Workspace, local_head, restic_snapshots, tag

pytestmark = pytest.mark.integration

HEAD = local_head(retry_backoff=0)

COPY = """
[targets.copy]
kind = "local"
path = "repos/copy"
password = "secret:repo-test"

[policies.files]
importance = "critical"
sources = ["data"]
targets = ["local"]
copy_to = ["copy"]
daily = { at = "01:30", level = "incremental" }
"""

CHECKS = """
[policies.files]
importance = "critical"
sources = ["data"]
targets = ["local"]
daily = { at = "01:30", level = "incremental" }
verify = { every = "daily", read_data_fraction = "1/2" }
drill = { every = "weekly", sample_files = 2 }
"""


def verifications(ws: Workspace) -> list[tuple[str, str, str, str]]:
    return ws.query(
        "SELECT tier, policy, target, outcome FROM verifications ORDER BY started_at, tier"
    )


def test_run_due_copies_the_new_snapshot_to_copy_to(workspace: Workspace) -> None:
    ws = workspace
    ws.write_policies(HEAD + COPY)
    out = ws.orc_json("run", "--due", "--now", "2026-03-04T01:30")
    assert [(r["kind"], r["target"], r["outcome"]) for r in out["runs"]] == [
        ("backup", "local", "success"),
        ("copy", "copy", "success"),
    ]
    (made,) = restic_snapshots(ws.repo)
    (copied,) = restic_snapshots(ws.root / "repos" / "copy")
    assert copied["tree"] == made["tree"]
    assert tag(copied, "policy") == "files" and tag(copied, "run") == tag(made, "run")
    assert copied["time"].startswith("2026-03-04T01:30:00")
    # idempotent: nothing runs or is copied again at the same time
    assert ws.orc_json("run", "--due", "--now", "2026-03-04T01:30")["runs"] == []
    assert len(restic_snapshots(ws.root / "repos" / "copy")) == 1
    (row,) = ws.query("SELECT state, outcome FROM slots WHERE kind = 'backup'")
    assert row == ("done", "success")


def test_run_due_runs_due_verify_tiers_and_drill_once(workspace: Workspace) -> None:
    ws = workspace
    ws.write_policies(HEAD + CHECKS)
    out = ws.orc_json("run", "--due", "--now", "2026-03-04T01:30")
    assert [r["outcome"] for r in out["runs"]] == ["success"]
    assert [(c["tier"], c["target"], c["part"], c["outcome"]) for c in out["checks"]] == [
        ("check", "local", None, "ok"),
        ("subset", "local", "1/2", "ok"),
        ("drill", "local", None, "ok"),
    ]
    assert sorted(verifications(ws)) == [
        ("check", "files", "local", "ok"),
        ("drill", "files", "local", "ok"),
        ("subset", "files", "local", "ok"),
    ]
    # the same time again: no backup, no check, no drill
    again = ws.orc_json("run", "--due", "--now", "2026-03-04T01:30")
    assert again["runs"] == [] and again["checks"] == []
    assert len(verifications(ws)) == 3
    # the next day: the daily verify again (the next subset part), the weekly drill not
    nxt = ws.orc_json("run", "--due", "--now", "2026-03-05T01:30")
    assert [(c["tier"], c["part"], c["outcome"]) for c in nxt["checks"]] == [
        ("check", None, "ok"),
        ("subset", "2/2", "ok"),
    ]
    assert len(restic_snapshots(ws.repo)) == 2
