"""policies.toml `copy_to`: the targets a policy's new snapshots are copied to.

Table-driven like test_loader.py: each case changes one place of a small valid document
and names the exact problem expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_loader import _minimal, _parse, _problems, _with

pytestmark = pytest.mark.unit


def _two_targets() -> dict[str, Any]:
    doc = _minimal()
    doc["targets"]["offsite"] = {
        "kind": "s3",
        "bucket": "acme-backups",
        "password": "secret:pw2",
    }
    doc["targets"]["nas"] = {"kind": "sftp", "host": "h", "path": "/r", "password": "secret:pw3"}
    return doc


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ()),
        ([], ()),
        (["offsite"], ("offsite",)),
        (["nas", "offsite"], ("nas", "offsite")),
    ],
)
def test_copy_to_valid(tmp_path: Path, value: object, expected: tuple[str, ...]) -> None:
    doc = _two_targets() if value is None else _with(_two_targets(), "policies.p.copy_to", value)
    assert _parse(doc, tmp_path).policies["p"].copy_to == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            ["mars"],
            "policies.p.copy_to: unknown target 'mars' (known: nas, offsite, t)",
        ),
        (["offsite", "offsite"], "policies.p.copy_to: 'offsite' is listed twice"),
        (
            ["t"],
            "policies.p.copy_to: 't' is also in targets: a target is either backed up to "
            "or copied to",
        ),
        ("offsite", "policies.p.copy_to: expected an array, got a string"),
        ([3], "policies.p.copy_to[0]: expected a string, got an integer"),
    ],
)
def test_copy_to_problems(tmp_path: Path, value: object, expected: str) -> None:
    problems = _problems(_with(_two_targets(), "policies.p.copy_to", value), tmp_path)
    assert expected in problems, problems


def test_copy_to_typo_is_an_unknown_key(tmp_path: Path) -> None:
    problems = _problems(_with(_two_targets(), "policies.p.copy", ["offsite"]), tmp_path)
    assert "policies.p: unknown key 'copy'; did you mean 'copy_to'?" in problems, problems


def test_every_copy_problem_at_once(tmp_path: Path) -> None:
    doc = _with(_two_targets(), "policies.p.copy_to", ["t", "mars", "nas", "nas"])
    problems = _problems(doc, tmp_path)
    assert len([p for p in problems if p.startswith("policies.p.copy_to")]) == 3, problems
