"""The parse cache's pure parts: where the state directory probably is (read without a
TOML parser), where the parsed document says it is, and which documents JSON keeps
exactly. The cache is used only when the hint and the document agree."""

from __future__ import annotations

import math
from datetime import date, datetime, time
from pathlib import Path

import pytest

from orchestrator.policies.parse_cache import document_state_dir, json_exact, state_dir_hint

pytestmark = pytest.mark.unit

BASE = Path("/etc/orc")

HINTS = [
    ("", BASE / "var"),  # no [orchestrator]: the default
    ("[orchestrator]\ntimezone = 'UTC'\n", BASE / "var"),
    ('[orchestrator]\nstate_dir = "state"\n', BASE / "state"),
    ('[orchestrator]\nstate_dir = "/srv/orc"  # absolute\n', Path("/srv/orc")),
    ('  [ orchestrator ]  \n  state_dir="s"\n[targets.x]\nstate_dir = "no"\n', BASE / "s"),
    ('[targets.x]\npath = "p"\n[orchestrator]\nstate_dir = "late"\n', BASE / "late"),
    # not plainly written: parse the TOML (None)
    ("[orchestrator]\nstate_dir = 'literal'\n", None),
    ('[orchestrator]\nstate_dir = "~/state"\n', None),
    ('[orchestrator]\nstate_dir = "a\\u0041"\n', None),
    ('orchestrator.state_dir = "dotted"\n', None),
    ('[orchestrator]\nstate_dir = "a"\nstate_dir = "b"\n', None),
    ('[orchestrator]\nstate_dir = """multi"""\n', None),
]


@pytest.mark.parametrize(("text", "expected"), HINTS)
def test_state_dir_hint(text: str, expected: Path | None) -> None:
    assert state_dir_hint(text, BASE) == expected


DOCS = [
    ({}, BASE / "var"),
    ({"orchestrator": {"timezone": "UTC"}}, BASE / "var"),
    ({"orchestrator": {"state_dir": "state"}}, BASE / "state"),
    ({"orchestrator": {"state_dir": "/srv/orc"}}, Path("/srv/orc")),
    ({"orchestrator": {"state_dir": "~/x"}}, None),
    ({"orchestrator": {"state_dir": ""}}, None),
    ({"orchestrator": {"state_dir": 3}}, None),
    ({"orchestrator": "not a table"}, None),
]


@pytest.mark.parametrize(("doc", "expected"), DOCS)
def test_document_state_dir(doc: dict, expected: Path | None) -> None:
    assert document_state_dir(doc, BASE) == expected


EXACT = [
    ({"a": [1, 2.5, True, "x", {"b": None}], "c": math.inf}, True),
    ({"a": -0.0, "b": 10**30}, True),
    ({"at": time(2, 30)}, False),  # an unquoted TOML time
    ({"x": [date(2026, 1, 1)]}, False),
    ({"x": {"y": datetime(2026, 1, 1)}}, False),
    ({1: "x"}, False),
    ({"t": (1, 2)}, False),
]


@pytest.mark.parametrize(("doc", "expected"), EXACT)
def test_json_exact(doc: dict, expected: bool) -> None:
    assert json_exact(doc) is expected
