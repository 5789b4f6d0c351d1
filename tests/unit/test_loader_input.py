"""Item 12: what `validate` used to accept, or crash on, is one problem with its place."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from orchestrator.errors import ConfigError, ExitCode
from orchestrator.policies.loader import load_config

BASE = """\
[orchestrator]
state_dir = "var"

[targets.t]
kind = "local"
path = "repo"
password = "secret:pw"

[policies.p]
importance = "normal"
sources = ["data"]
targets = ["t"]
"""


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "policies.toml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.exit_code == ExitCode.USAGE
    return info.value.problems


def _valid(tmp_path: Path, text: str) -> None:
    path = tmp_path / "policies.toml"
    path.write_text(textwrap.dedent(text))
    load_config(path)


def test_item12_a_toml_array_nested_100000_deep_is_a_problem_not_a_recursion_error(
    tmp_path: Path,
) -> None:
    depth = 100_000
    (problem,) = _problems(tmp_path, BASE + "x = " + "[" * depth + "]" * depth + "\n")
    assert "nested too deeply" in problem and str(tmp_path / "policies.toml") in problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            BASE + "retention = { daily = 99999999999999999999 }\n",
            "policies.p.retention.daily: 99999999999999999999 is out of range: "
            "must be between 0 and 1000000",
        ),
        (
            BASE.replace('state_dir = "var"', 'state_dir = "var"\nmax_parallel = 100000'),
            "orchestrator.max_parallel: 100000 is out of range: must be between 1 and 64",
        ),
        (
            BASE.replace('state_dir = "var"', 'state_dir = "var"\ntimeout = "99999999999d"'),
            "orchestrator.timeout: 8639999999913600 seconds is too long: at most 366 days",
        ),
        (
            BASE.replace('state_dir = "var"', 'state_dir = "var"\nmisfire_grace = 10000000000'),
            "orchestrator.misfire_grace: 10000000000 is out of range: must be between 0 and 527040",
        ),
        (BASE + "rpo_hours = inf\n", "policies.p.rpo_hours: inf must be a positive number"),
        (
            BASE + "drill = { rto_minutes = 99999999999999 }\n",
            "policies.p.drill.rto_minutes: 99999999999999 is out of range: "
            "must be between 1 and 527040",
        ),
    ],
)
def test_item12_integers_and_durations_are_bounded(
    tmp_path: Path, text: str, expected: str
) -> None:
    problems = _problems(tmp_path, text)
    assert any(p.startswith(expected) for p in problems), problems


@pytest.mark.parametrize("name", ["..", ".", ".hidden", "a..b", "a/b"])
def test_item12_secret_references_cannot_name_a_path(tmp_path: Path, name: str) -> None:
    (problem,) = _problems(tmp_path, BASE.replace("secret:pw", f"secret:{name}"))
    assert problem.startswith("targets.t.password: the NAME of a 'secret:NAME' reference")


def test_item12_a_state_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "var").write_text("not a directory\n")
    (problem,) = _problems(tmp_path, BASE)
    assert problem == f"orchestrator.state_dir: {tmp_path / 'var'} is a file, not a directory"
    (problem,) = _problems(tmp_path, BASE.replace('"var"', '"var/sub"'))
    assert problem == f"orchestrator.state_dir: {tmp_path / 'var'} is a file, not a directory"


def test_item12_a_repository_inside_its_own_source_is_refused(tmp_path: Path) -> None:
    inside = BASE.replace('path = "repo"', 'path = "data/repo"')
    (problem,) = _problems(tmp_path, inside)
    assert problem.startswith("policies.p.sources[0]: holds the repository of target 't'")
    assert "back itself up" in problem
    # The same source as the repository, and the repository's folder as a source.
    (problem,) = _problems(tmp_path, BASE.replace('sources = ["data"]', 'sources = ["repo"]'))
    assert problem.startswith("policies.p.sources[0]:")
    # Excluded (by absolute path or by name), it is fine.
    _valid(tmp_path, inside + f'exclude = ["{tmp_path}/data/repo"]\n')
    _valid(tmp_path, inside + 'exclude = ["repo"]\n')
    _valid(tmp_path, BASE)
