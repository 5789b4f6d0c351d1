"""Items 12 and 13: bad input is one clear line with the documented exit code, never a
traceback; the command line takes its global options where people type them."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import ORCHESTRATOR, PASSWORD, Workspace

pytestmark = pytest.mark.e2e


def _one_line(result: object, code: int) -> str:
    stderr = result.stderr  # type: ignore[attr-defined]
    assert result.returncode == code, stderr  # type: ignore[attr-defined]
    assert "Traceback" not in stderr
    return stderr


@pytest.mark.parametrize("name", ["..", "."])
def test_item12_secrets_set_dot_names_is_refused_and_leaves_no_temp_file(
    workspace: Workspace, name: str
) -> None:
    ws = workspace
    value = "the-secret-value-7f3a"
    result = ws.orc("secrets", "set", name, input=value + "\n", check=None)
    stderr = _one_line(result, 2)
    assert f"secret name '{name}' is not valid" in stderr and value not in stderr
    assert [p for p in ws.root.rglob("*.tmp") if p.is_file()] == []


def test_item12_a_failed_secrets_set_removes_its_temp_file(workspace: Workspace) -> None:
    """The sealed store cannot be written (a file size limit makes the write fail): one
    line, exit 2, no temporary file left, and the store as it was."""
    import resource

    ws = workspace
    key_file = 'timezone = "UTC"\nsecrets_key_file = "keys/secrets.key"\n'
    ws.config.write_text(ws.config.read_text().replace('timezone = "UTC"\n', key_file))
    ws.orc("secrets", "set", "first", input="v\n")
    before = (ws.root / "var" / "secrets.sealed").read_bytes()
    value = "the-secret-value-9c1d" * 20

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) + 100, len(before) + 100))

    result = ws.orc(
        "secrets", "set", "blocked", input=value + "\n", check=None, preexec_fn=small_files
    )
    stderr = _one_line(result, 2)
    assert "cannot write the secret store" in stderr and value not in stderr
    assert [p for p in ws.root.rglob("*.tmp") if p.is_file()] == []
    assert (ws.root / "var" / "secrets.sealed").read_bytes() == before


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace("secret:repo-test", "secret:.."), "targets.local.password"),
        (lambda t: t + "retention = { daily = 99999999999999999999 }\n", "retention.daily"),
        (lambda t: t.replace('state_dir = "var"', 'state_dir = "state"'), "state_dir"),
        (lambda t: t.replace('path = "repos/local"', 'path = "data/repo"'), "back itself up"),
        (lambda t: t + "x = " + "[" * 100_000 + "]" * 100_000 + "\n", "nested too deeply"),
    ],
    ids=["secret-dotdot", "huge-retention", "state-dir-file", "repo-in-source", "deep-toml"],
)
def test_item12_validate_refuses_what_failed_later(
    workspace: Workspace, edit: object, expected: str
) -> None:
    ws = workspace
    (ws.root / "state").write_text("a file\n")
    ws.config.write_text(edit(ws.config.read_text()))  # type: ignore[operator]
    stderr = _one_line(ws.orc("validate", check=None), 2)
    assert expected in stderr
    as_json = ws.orc("--json", "validate", check=None)
    assert as_json.returncode == 2 and "Traceback" not in as_json.stderr
    assert json.loads(as_json.stdout)["error"]["exit_code"] == 2


def test_item12_validate_warns_about_a_secret_that_is_not_set(workspace: Workspace) -> None:
    ws = workspace
    del ws.env["ORCHESTRATOR_SECRET_REPO_TEST"]
    result = ws.orc("validate")
    assert "warning: targets.local.password: secret 'repo-test' is not set" in result.stderr
    assert "ORCHESTRATOR_SECRET_REPO_TEST" in result.stderr
    assert json.loads(ws.orc("--json", "validate").stdout)["warnings"]
    ws.env["ORCHESTRATOR_SECRET_REPO_TEST"] = PASSWORD
    assert "is not set" not in ws.orc("validate").stderr  # (no [access]: its own warning)


# -- item 13: the command line


def test_item13_global_options_work_after_the_command(workspace: Workspace, tmp_path: Path) -> None:
    """`status --json`, `validate --config X`, `secrets list --json`, `backup P -v` and a JSON
    usage error all work with the option after the command name."""
    ws = workspace
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = [*ORCHESTRATOR]
    env = ws.env

    def orc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*run, *args], env=env, cwd=elsewhere, capture_output=True, text=True, check=False
        )

    config = str(ws.config)
    assert json.loads(orc("status", "--json", "--config", config).stdout)["command"] == "status"
    assert "valid" in orc("validate", "--config", config).stdout
    assert json.loads(orc("secrets", "list", "--config", config, "--json").stdout)["names"] == []
    backup = orc("backup", "files", "--config", config, "-v")
    assert backup.returncode == 0 and "INFO orchestrator.restic: running: restic" in backup.stderr
    plan = orc("plan", "--days", "2", "--json", "--config", config)
    assert json.loads(plan.stdout)["days"] == 2
    bad = orc("plan", "--days", "0", "--json", "--config", config)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert json.loads(bad.stdout)["error"]["kind"] == "usage"


def test_item13_a_missing_config_names_the_option_and_the_variable(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ORCHESTRATOR_CONFIG"}
    result = subprocess.run(
        [*ORCHESTRATOR, "status"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    stderr = _one_line(result, 2)
    assert "--config" in stderr and "$ORCHESTRATOR_CONFIG" in stderr
    assert str(tmp_path / "policies.toml") in stderr


def test_item13_status_labels_its_time_zone_and_uses_it_throughout(workspace: Workspace) -> None:
    ws = workspace
    ws.config.write_text(
        ws.config.read_text().replace('timezone = "UTC"', 'timezone = "Asia/Tokyo"')
    )
    ws.orc("backup", "files", "--now", "2026-11-02T10:00:00+00:00")
    doc = ws.orc_json("status", "--now", "2026-11-02T12:00:00+00:00")
    assert doc["timezone"] == "Asia/Tokyo"
    stamps = re.findall(r'"(\d{4}-\d\d-\d\dT[\d:.]+(?:[+-]\d\d:\d\d|Z)?)"', json.dumps(doc))
    assert stamps and all(s.endswith("+09:00") for s in stamps), stamps
    assert doc["now"] == "2026-11-02T21:00:00+09:00"
    text = ws.orc("status", "--now", "2026-11-02T12:00:00+00:00").stdout
    assert "times in Asia/Tokyo" in text
    assert "11-02 19:00" in text  # the full of 10:00 UTC, shown at 19:00 Tokyo time
    assert "11-03 01:30" in text  # the next daily slot at 01:30 Tokyo time


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("forget", "--max-share", "nan"), "nan is not a number between 0 and 1"),
        (("plan", "--days", "-1"), "-1 is not in the range"),
        (("run", "--due", "--now", "0001-01-02T00:00"), "is outside 1971..9998"),
        (("status", "--now", "0001-01-01T00:00"), "is outside 1971..9998"),
        (("backup", "files", "--now", "9999-12-31T23:00"), "is outside 1971..9998"),
        (("restore", "files", "--to", "", "--overwrite"), "--to: is empty"),
    ],
)
def test_bad_option_values_are_one_line_and_nothing_is_recorded(
    workspace: Workspace, args: tuple[str, ...], says: str
) -> None:
    """A NaN share turned the retention guard off; a pass at year 1 recorded 'first seen'
    there and every later pass failed with a traceback (break-it trial)."""
    ws = workspace
    result = ws.orc(*args, check=None)
    lines = [ln for ln in _one_line(result, 2).splitlines() if ln.strip()]
    assert len(lines) == 1 and says in lines[0], result.stderr
    assert lines[0].startswith("orchestrator: ")
    ws.orc("run", "--due", "--now", "2026-03-04T12:00")  # later passes are unharmed
