"""Items 12 and 13: bad input is one clear line with the documented exit code, never a
traceback; the command line takes its global options where people type them."""

from __future__ import annotations

import json

import pytest
from conftest import PASSWORD, Workspace

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
    ws = workspace
    (ws.root / "var" / "secrets" / "blocked").mkdir(parents=True)  # os.replace cannot win
    value = "the-secret-value-9c1d"
    result = ws.orc("secrets", "set", "blocked", input=value + "\n", check=None)
    stderr = _one_line(result, 2)
    assert "secret 'blocked': cannot store it" in stderr and value not in stderr
    leftovers = [p for p in (ws.root / "var" / "secrets").iterdir() if p.name != "blocked"]
    assert leftovers == []


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
    assert "warning" not in ws.orc("validate").stderr
