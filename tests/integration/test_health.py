"""Item 6 (issue 14): `status` health reflects the newest verification and drill outcome
of each target (damaged, failed, overdue) besides backups and RPO, with the reason.

Real restic, a real local repository damaged by hand; `status` reads the catalog.
`status` exits 0 whatever the health (README): the health is in its output.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta

import pytest
from conftest import Workspace

pytestmark = pytest.mark.integration

POLICIES = """\
[orchestrator]
state_dir = "var"
timezone = "UTC"

[targets.local]
kind = "local"
path = "repos/local"
password = "secret:repo-test"

[policies.files]
importance = "critical"
sources = ["data"]
targets = ["local"]
daily = { at = "01:30", level = "incremental" }
verify = { every = "daily", media = true }
"""


def row(ws: Workspace, *args: str) -> dict:
    (only,) = ws.orc_json("status", *args)["policies"]
    return only


def at(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat(timespec="minutes")


def test_item6_status_shows_damage_found_by_verification(workspace: Workspace) -> None:
    """Item 6: a repository damaged by hand and verified (exit 4) is `damaged` in
    status, with the tier and the damaged file as the reason (text and --json)."""
    ws = workspace
    ws.write_policies(POLICIES)
    ws.orc("backup", "files")
    ws.orc("verify", "--tier", "media")
    ws.orc("verify", "files", "--tier", "check")
    assert row(ws)["health"] == "ok"

    pack = max((ws.repo / "data").rglob("*"), key=lambda p: p.stat().st_size if p.is_file() else 0)
    pack.unlink()
    ws.orc("verify", "--tier", "media", check=4)
    name = pack.relative_to(ws.repo).as_posix()

    r = row(ws)
    assert r["health"] == "damaged"
    damaged = [p for p in r["health_reasons"] if p["health"] == "damaged"]
    assert [p["tier"] for p in damaged] == ["media"]
    assert name in damaged[0]["reason"] and "missing" in damaged[0]["reason"]
    text = ws.orc("status")  # exit 0: the health is in the output
    assert "damaged" in text.stdout
    assert "files@local: damaged: media" in text.stdout and name in text.stdout


def test_item6_status_shows_a_verification_that_failed(workspace: Workspace) -> None:
    """Item 6: a check that could not run (the repository is gone) is `verify failed`."""
    ws = workspace
    ws.write_policies(POLICIES)
    ws.orc("backup", "files")
    shutil.move(ws.repo, ws.root / "elsewhere")
    ws.orc("verify", "files", "--tier", "check", check=1)
    r = row(ws)
    assert r["health"] == "verify failed"
    [failed] = [p for p in r["health_reasons"] if p["health"] == "verify failed"]
    assert failed["tier"] == "check" and "could not" in failed["reason"]


def test_item6_status_shows_an_overdue_verification(workspace: Workspace) -> None:
    """Item 6: a daily verify configured and not completed within its interval plus a
    day of grace is `verify overdue`; once it ran it is ok until it is late again."""
    ws = workspace
    ws.write_policies(POLICIES)
    ws.orc("backup", "files")
    assert row(ws, "--now", at(timedelta(hours=12)))["health"] == "ok"
    late = row(ws, "--now", at(timedelta(days=2)))
    assert late["health"] == "verify overdue"
    reasons = {p["tier"]: p["reason"] for p in late["health_reasons"]}
    assert set(reasons) == {"check", "media"} and "never completed" in reasons["media"]

    ws.orc("verify", "files")  # check and media (the policy has no subset fraction)
    assert row(ws, "--now", at(timedelta(days=1)))["health"] == "ok"
    again = row(ws, "--now", at(timedelta(days=3)))
    assert again["health"] == "verify overdue"
    assert all("last completed" in p["reason"] for p in again["health_reasons"])
    assert json.dumps(again)  # plain JSON
