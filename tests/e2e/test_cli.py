"""The installed command as a user runs it: plan, validate, demo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Workspace

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def test_plan_resolves_collisions_to_one_run_at_the_highest_level(workspace: Workspace) -> None:
    ws = workspace
    out = ws.orc_json("plan", "--from", "2026-10-31T12:00:00Z", "--days", "9")
    runs = out["runs"]
    # Nov 1 2026 is a Sunday and the 1st: daily, weekly and monthly collide -> one run.
    nov1 = [r for r in runs if r["due"].startswith("2026-11-01")]
    assert len(nov1) == 1
    assert nov1[0]["scheduled_level"] == "full"
    assert set(nov1[0]["schedules"]) == {"daily", "weekly", "monthly"}
    nov8 = [r for r in runs if r["due"].startswith("2026-11-08")]
    assert [r["scheduled_level"] for r in nov8] == ["differential"]
    weekdays = [r for r in runs if r["due"][:10] in ("2026-11-02", "2026-11-03")]
    assert [r["scheduled_level"] for r in weekdays] == ["incremental", "incremental"]
    assert len(runs) == 9  # one a day
    # No backup yet on this target: a plan starting on a weekday upgrades its first run.
    later = ws.orc_json("plan", "--from", "2026-11-02T12:00:00Z", "--days", "2")["runs"]
    assert [(r["scheduled_level"], r["level"]) for r in later] == [
        ("incremental", "full"),
        ("incremental", "incremental"),
    ]
    assert "no snapshot yet" in later[0]["why"]


def test_bundled_policies_validate() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator", "--config", str(ROOT / "policies.toml"), "validate"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def test_design_example_validates() -> None:
    example = ROOT / "tests" / "fixtures" / "design_example.toml"
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator", "--config", str(example), "validate"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_demo_runs_a_month_restores_and_shows_status(restic_bin: str, tmp_path: Path) -> None:
    """Also item 13: `demo --json` prints one JSON document (the tour's text inside)."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "demo",
            "--json",
            "--workdir",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["command"] == "demo" and doc["kept"] is True
    out = doc["output"]
    for level in ("full", "differential", "incremental"):
        assert level in out
    assert "content identical" in out
    assert "shop-uploads" in out.split("status at the end of the month:")[1]
    from orchestrator.security.secrets import SecretStore

    # The demo's password is sealed in its state_dir, its key beside it (outside state_dir).
    assert not (tmp_path / "demo" / "var" / "secrets").exists()
    store = SecretStore(tmp_path / "demo" / "var", tmp_path / "demo" / "secrets.key")
    secret = store.resolve("secret:demo-repo")
    repo = tmp_path / "demo" / "var" / "repos" / "local"
    snaps = subprocess.run(
        ["restic", "--repo", str(repo), "--no-cache", "snapshots", "--json"],
        env={"RESTIC_PASSWORD": secret, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    levels = sorted(
        {t for s in json.loads(snaps.stdout) for t in s["tags"] if t.startswith("level:")}
    )
    assert levels == ["level:differential", "level:full", "level:incremental"]


def test_plan_of_one_policy_is_its_part_of_the_whole_plan(workspace: Workspace) -> None:
    ws = workspace
    ws.config.write_text(
        ws.config.read_text()
        + '\n[policies.other]\nimportance = "normal"\nsources = ["data"]\n'
        + 'targets = ["local"]\ndaily = { at = "04:15", level = "incremental" }\n'
    )
    window = ("--from", "2026-10-31T12:00:00Z", "--days", "5")
    whole = ws.orc_json("plan", *window)["runs"]
    assert {r["policy"] for r in whole} == {"files", "other"}
    for name in ("files", "other"):
        one = ws.orc_json("plan", *window, "--policy", name)["runs"]
        assert one == [r for r in whole if r["policy"] == name]
    both = ws.orc_json("plan", *window, "--policy", "other", "--policy", "files")["runs"]
    assert both == whole
    text = ws.orc("plan", *window, "--policy", "other").stdout
    assert "other" in text and " files " not in text

    bad = ws.orc("plan", "--policy", "nosuch", check=2)
    lines = [ln for ln in bad.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--policy" in lines[0] and "'nosuch'" in lines[0], bad.stderr
    assert "Traceback" not in bad.stderr
