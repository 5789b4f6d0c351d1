"""`source check` against the PostgreSQL and MariaDB servers running on this machine
and a real SQLite file: reachable, refused credentials, a missing database, a server
down; the password never in the output, and its file gone afterwards."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import LOCAL_HEAD, Workspace, require
from servers import free_port

pytestmark = pytest.mark.integration

PASSWORD = 'Db-pa55:word\\with"quotes'


def _sql(argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=30).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False


@pytest.fixture
def mariadb_user() -> Iterator[str]:
    """A MariaDB user with a password (the server's root has none), dropped afterwards."""
    name = f"orctest_{uuid.uuid4().hex[:8]}"
    base = ["mariadb", "-h", "127.0.0.1", "-u", "root", "-e"]
    escaped = PASSWORD.replace("\\", "\\\\").replace("'", "\\'")
    require(
        _sql(
            [
                *base,
                f"CREATE USER '{name}'@'%' IDENTIFIED BY '{escaped}'; "
                f"GRANT SELECT ON mysql.* TO '{name}'@'%'",
            ]
        ),
        "MariaDB on 127.0.0.1:3306 (root without a password)",
    )
    yield name
    _sql([*base, f"DROP USER '{name}'@'%'"])


def test_each_source_says_what_is_wrong(workspace: Workspace, mariadb_user: str) -> None:
    require(_sql(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", "select 1"]),
            "PostgreSQL on 127.0.0.1:5432 (trust)")  # fmt: skip
    ws = workspace
    app = ws.root / "app.db"
    with sqlite3.connect(app) as conn:
        conn.execute("create table t (a)")
    down = free_port()
    ws.config.write_text(
        LOCAL_HEAD
        + f"""
[policies.pg]
importance = "high"
targets = ["local"]
database = {{ kind = "postgres", name = "postgres", host = "127.0.0.1", user = "postgres" }}

[policies.pg-missing]
importance = "high"
targets = ["local"]
database = {{ kind = "postgres", name = "no_such_db", host = "127.0.0.1", user = "postgres" }}

[policies.pg-down]
importance = "high"
targets = ["local"]
database = {{ kind = "postgres", name = "postgres", host = "127.0.0.1", port = {down} }}

[policies.maria]
importance = "high"
targets = ["local"]
[policies.maria.database]
kind = "mariadb"
name = "mysql"
host = "127.0.0.1"
user = "{mariadb_user}"
password = "secret:db-pw"

[policies.maria-wrong]
importance = "high"
targets = ["local"]
[policies.maria-wrong.database]
kind = "mariadb"
name = "mysql"
host = "127.0.0.1"
user = "{mariadb_user}"
password = "secret:db-wrong"

[policies.lite]
importance = "low"
targets = ["local"]
database = {{ kind = "sqlite", path = "app.db" }}

[policies.lite-gone]
importance = "low"
targets = ["local"]
database = {{ kind = "sqlite", path = "gone.db" }}
"""
    )
    ws.env["ORCHESTRATOR_SECRET_DB_PW"] = PASSWORD
    ws.env["ORCHESTRATOR_SECRET_DB_WRONG"] = "not-the-password"
    before = set(Path(tempfile.gettempdir()).glob("orchestrator-db-*"))

    result = ws.orc("--json", "source", "check", check=1)

    found = {s["policy"]: s for s in json.loads(result.stdout)["sources"]}
    assert found["pg"]["ok"] and found["pg"]["server"].startswith(found["pg"]["client"][:2])
    assert "does not exist" in found["pg-missing"]["problem"]
    assert "not reachable" in found["pg-down"]["problem"]
    assert found["maria"]["ok"], found["maria"]
    assert "credentials were refused" in found["maria-wrong"]["problem"]
    assert found["lite"]["ok"] and "no such file" in found["lite-gone"]["problem"]
    assert PASSWORD not in result.stdout + result.stderr
    assert set(Path(tempfile.gettempdir()).glob("orchestrator-db-*")) == before  # removed
    assert ws.orc("source", "check", "pg").returncode == 0
    one = ws.orc("source", "check", "nope", check=2)
    assert "unknown policy 'nope'" in one.stderr and "Traceback" not in one.stderr


def test_a_missing_dump_tool_is_named_with_its_package(workspace: Workspace) -> None:
    ws = workspace
    bare = ws.root / "bin"
    bare.mkdir()
    for tool in ("psql",):  # the query client, but not pg_dump
        real = shutil.which(tool)
        if real:
            (bare / tool).symlink_to(real)
    ws.config.write_text(
        LOCAL_HEAD + '\n[policies.pg]\nimportance = "high"\ntargets = ["local"]\n'
        'database = { kind = "postgres", name = "postgres", host = "127.0.0.1" }\n'
    )
    ws.env["PATH"] = f"{bare}:/nonexistent"
    result = ws.orc("source", "check", check=1)
    assert "pg_dump is not installed (Debian package postgresql-client" in result.stdout
