"""Issue 14, "Both restic versions": restic 0.14 (Debian 12) and 0.18 (Debian 13).

The suite runs this tier once per version (scripts/test.sh); these tests prove the
switches that make that possible and what differs between the versions: which binary
runs, error messages that restic 0.17+ wraps in JSON, and the snapshot id form.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from conftest import (
    ORCHESTRATOR,
    PASSWORD,
    RESTIC,
    SYSTEM_PATH,
    TEST_RESTIC_ENV,
    Workspace,
    require,
    restic,
)

from orchestrator.restic.features import Version

pytestmark = pytest.mark.integration

PROJECT = Path(__file__).resolve().parents[2]


def restic_version(binary: str) -> Version:
    out = subprocess.run([binary, "version"], capture_output=True, text=True, check=True)
    return Version.parse(out.stdout)


def catalog_rows(ws: Workspace) -> list[dict]:
    db = sqlite3.connect(ws.catalog)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM runs ORDER BY started_at, rowid")]
    finally:
        db.close()


# -- item 1: the second restic --------------------------------------------------------


def test_item1_fetch_restic_gives_the_other_debian_release(restic_bin: str) -> None:
    """item 1: scripts/fetch-restic.sh leaves the other Debian release's restic in tools/
    (0.18 beside Debian 12's 0.14, or 0.14 beside 13's 0.18), and a second call is fast."""
    script = PROJECT / "scripts" / "fetch-restic.sh"
    existing = list((PROJECT / "tools").glob(".suite-*"))
    require(bool(existing) or shutil.which("apt-get") is not None, "apt-get or tools/")
    env = {**os.environ, "PATH": SYSTEM_PATH}  # the machine's restic, not the test's
    first = subprocess.run(
        [script], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert first.returncode == 0, first.stderr
    binary = first.stdout.strip()
    assert Path(binary).is_file() and os.access(binary, os.X_OK)
    assert Path(binary).is_relative_to(PROJECT / "tools")
    system = restic_version(shutil.which("restic", path=SYSTEM_PATH) or restic_bin)
    fetched = restic_version(binary)
    assert {system.at_least(0, 17), fetched.at_least(0, 17)} == {True, False}, (system, fetched)
    again = subprocess.run(
        [script], env=env, capture_output=True, text=True, timeout=10, check=False
    )
    assert again.returncode == 0 and again.stdout.strip() == binary
    assert "downloading" not in again.stderr  # idempotent: nothing fetched the second time


# -- item 2: choosing the binary ------------------------------------------------------


def test_item2_the_chosen_restic_writes_the_products_snapshots(workspace: Workspace) -> None:
    """item 2: with ORCHESTRATOR_TEST_RESTIC (or restic on PATH) the orchestrator under test
    runs that binary: restic 0.17+ records its version in each snapshot, 0.14 records none."""
    ws = workspace
    ws.orc("backup", "files")
    chosen = restic_version(RESTIC or "restic")
    if os.environ.get(TEST_RESTIC_ENV):
        assert Path(RESTIC or "").resolve() == Path(os.environ[TEST_RESTIC_ENV]).resolve()
    out = restic(ws.repo, "snapshots", "--json")
    assert out.returncode == 0, out.stderr
    (snap,) = json.loads(out.stdout)
    if chosen.at_least(0, 17):
        expected = f"restic {chosen.major}.{chosen.minor}.{chosen.patch}"
        assert snap.get("program_version") == expected
    else:
        assert "program_version" not in snap


def test_item2_restic_binary_setting_picks_the_binary(workspace: Workspace) -> None:
    """item 2: `restic_binary` in policies.toml is the binary the product runs (here a
    wrapper that records its calls, then runs the test's restic)."""
    ws = workspace
    calls = ws.root / "calls.log"
    wrapper = ws.root / "bin" / "my-restic"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {RESTIC} "$@"\n')
    wrapper.chmod(0o755)
    body = ws.config.read_text().replace(
        'timezone = "UTC"\n', f'timezone = "UTC"\nrestic_binary = "{wrapper}"\n', 1
    )
    ws.config.write_text(body)
    ws.orc("backup", "files")
    logged = calls.read_text()
    assert "backup" in logged and "snapshots" in logged
    assert PASSWORD not in logged


# -- item 4: restic 0.17+'s JSON errors never reach a person ----------------------------


def test_item4_json_errors_are_unwrapped_in_messages_and_catalog(workspace: Workspace) -> None:
    """item 4: with `--json`, restic 0.17+ prints a fatal error as
    {"message_type":"exit_error",...}; the user's message and the catalog get its text."""
    ws = workspace
    ws.orc("backup", "files")
    (key,) = (ws.repo / "keys").iterdir()
    key.chmod(0o600)
    key.write_text("garbage\n")  # restic: "Fatal: LoadRaw(<key/...>): invalid data returned"
    listed = ws.orc("--json", "snapshots", "files", check=None)
    backup = ws.orc("backup", "files", check=None)
    assert backup.returncode != 0
    rows = catalog_rows(ws)
    texts = [listed.stdout, listed.stderr, backup.stdout, backup.stderr, rows[-1]["message"]]
    for text in texts:
        assert "message_type" not in text and "exit_error" not in text, text
    error = json.loads(listed.stdout)["targets"][0]["error"]
    # restic's own reason, as text: 0.18 "LoadRaw(<key/...>): invalid data returned",
    # 0.14 "Unmarshal: invalid character 'g' ..."
    assert re.fullmatch(r"target 'local': listing snapshots failed: [A-Za-z][^{}\n]+", error)
    assert re.search(r"failed: [A-Za-z][^{}\n]+$", rows[-1]["message"]), rows[-1]["message"]


# -- item 5: one snapshot id form -----------------------------------------------------


def test_item5_one_snapshot_id_form_on_every_version(workspace: Workspace) -> None:
    """item 5: the catalog holds restic's full 64-character id (0.14 reports 8 characters
    after a backup, 0.18 64), text output shows the 8-character short id, and restore
    accepts either form."""
    ws = workspace
    text = ws.orc("backup", "files").stdout
    (snap,) = json.loads(restic(ws.repo, "snapshots", "--json").stdout)
    full = snap["id"]
    assert len(full) == 64
    row = catalog_rows(ws)[-1]
    assert row["snapshot_id"] == full
    assert full[:8] in row["message"] and full not in row["message"]
    assert full[:8] in text and full not in text
    assert re.search(rf"\b{full[:8]}\b", ws.orc("status").stdout)
    assert full not in ws.orc("status").stdout
    listing = ws.orc_json("snapshots", "files")["targets"][0]["snapshots"][0]
    assert (listing["id"], listing["short_id"]) == (full, full[:8])
    runs = ws.orc_json("backup", "files")["runs"]
    assert len(runs[0]["snapshot_id"]) == 64
    for i, given in enumerate([full[:8], full]):
        out = ws.orc("restore", "files", "--snapshot", given, "--to", str(ws.root / f"r{i}"))
        assert full[:8] in out.stdout and full not in out.stdout
        assert (ws.root / f"r{i}" / str(ws.data).lstrip("/") / "a.txt").read_text() == "alpha\n"


# -- item 7: the bundled policies.toml --------------------------------------------------


def test_item7_bundled_policy_does_not_back_up_pycache(tmp_path: Path) -> None:
    """item 7: the bundled orchestrator-source policy leaves Python's byte-code out."""
    root = tmp_path / "project"
    shutil.copytree(PROJECT / "orchestrator", root / "orchestrator")
    cache = root / "orchestrator" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "clock.cpython-311.pyc").write_bytes(b"\0" * 100)
    (root / "orchestrator" / "stray.pyc").write_bytes(b"\0" * 100)
    shutil.copy(PROJECT / "policies.toml", root / "policies.toml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCHESTRATOR_", "RESTIC_"))}
    env["ORCHESTRATOR_SECRET_REPO_LOCAL"] = PASSWORD
    out = subprocess.run(
        [*ORCHESTRATOR, "--config", str(root / "policies.toml"), "backup", "orchestrator-source"],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    listed = restic(root / "var" / "repos" / "local", "ls", "--json", "latest")
    paths = [json.loads(ln).get("path", "") for ln in listed.stdout.splitlines() if ln]
    assert any(p.endswith("/orchestrator/__init__.py") for p in paths)
    assert not [p for p in paths if "__pycache__" in p or p.endswith(".pyc")]
