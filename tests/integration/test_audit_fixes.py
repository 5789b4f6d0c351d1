"""Break-it findings on the audit log, each proved through the real command line: runs
killed with -9, commands that change secrets or keys, a log cut at its newest records, a
repository's checkpoint of another key, a bad export place, malformed proofs."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Workspace
from test_audit_tamper import AuditWs, aws  # noqa: F401  (a fixture)
from test_faults import (
    big_data,  # noqa: F401  (a fixture)
    catalog_runs,
    spawn,  # noqa: F401  (a fixture)
    wait_for_restic_backup,
)

pytestmark = pytest.mark.integration


def audit_records(ws: Workspace | AuditWs, *args: str) -> list[dict]:
    return json.loads(ws.orc("--json", "audit", "show", *args).stdout)["records"]


# ----------------------------------------------------------------- A: kill -9


def test_a_run_killed_with_9_is_an_audit_record_at_the_next_start(
    workspace: Workspace,
    big_data: Path,  # noqa: F811
    spawn: Callable[..., subprocess.Popen[str]],  # noqa: F811
) -> None:
    ws = workspace
    orc = spawn("backup", "files", "--level", "full")
    wait_for_restic_backup(orc, ws.repo, big_data)
    orc.kill()
    orc.communicate(timeout=30)
    assert orc.returncode == -signal.SIGKILL
    [run] = catalog_runs(ws)
    assert run["outcome"] == "running"
    assert [r for r in audit_records(ws) if r["what"] == "run.interrupted"] == []

    ws.orc("status")

    [run] = catalog_runs(ws)
    assert run["outcome"] == "interrupted"
    [rec] = [r for r in audit_records(ws) if r["what"] == "run.interrupted"]
    assert rec["run_id"] == run["id"]
    assert (rec["outcome"], rec["policy"], rec["target"]) == ("interrupted", "files", "local")
    ws.orc("status")  # recovered once: the next start records nothing more
    assert len([r for r in audit_records(ws) if r["what"] == "run.interrupted"]) == 1
    assert len(catalog_runs(ws)) == 1  # no second run row in the catalog
