"""`source check`: is each database source reachable, do its credentials work, and are
the client tools able to dump it (a pg_dump older than the server refuses to)? The
parsing of what the tools print is pure (tested with tables); running them is the edge.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.policies.model import DatabaseSpec
from orchestrator.sources.credentials import client_auth

TIMEOUT = 20  # seconds for one client program
_PACKAGE = {"postgres": "postgresql-client", "mariadb": "mariadb-client", "mysql": "mariadb-client"}


@dataclass(frozen=True)
class SourceCheck:
    policy: str
    kind: str
    database: str
    ok: bool
    problem: str  # "" when ok: one sentence, never a secret
    client: str = ""  # the dump tool's version
    server: str = ""  # the server's version


# ------------------------------------------------------------------ pure parsing


def major_of(version: str) -> int | None:
    """The major version in what a tool or server prints ('15.20', '150020', '10.11.19-MariaDB')."""
    if re.fullmatch(r"\d{5,6}", version.strip()):  # PostgreSQL's server_version_num
        return int(version.strip()) // 10000
    match = re.search(r"(\d+)\.\d+", version)
    return int(match[1]) if match else None


def client_version(printed: str) -> str:
    """'pg_dump (PostgreSQL) 15.20 (Debian ...)' -> '15.20';
    mariadb-dump's '... Distrib 10.11.19-MariaDB ...' -> '10.11.19'."""
    match = re.search(r"Distrib (\d+\.\d+\.\d+)", printed) or re.search(
        r"(\d+\.\d+(?:\.\d+)?)", printed
    )
    return match[1] if match else printed.strip()


def tools_match(kind: str, client: str, server: str) -> str:
    """'' when the dump tool can dump this server; else why not."""
    c, s = major_of(client), major_of(server)
    if c is None or s is None:
        return f"cannot tell the versions apart (client {client!r}, server {server!r})"
    if c < s:
        tool = "pg_dump" if kind == "postgres" else "mariadb-dump"
        return f"{tool} {client} is older than the server ({server}): it cannot dump it"
    return ""


def connect_problem(kind: str, stderr: str, where: str) -> str:
    """One sentence from a client's error output (never the password: it is not there)."""
    text = stderr.strip().splitlines()[-1] if stderr.strip() else "no output"
    low = stderr.lower()
    if "connection refused" in low or "can't connect" in low or "could not connect" in low:
        return f"{where}: the server is not reachable (connection refused)"
    if "timeout" in low or "timed out" in low:
        return f"{where}: the server did not answer in time"
    if "password authentication failed" in low or "access denied" in low:
        return f"{where}: the credentials were refused ({text.strip()[:160]})"
    if "does not exist" in low or "unknown database" in low:
        return f"{where}: the database does not exist"
    return f"{where}: {text.strip()[:200]}"


# ------------------------------------------------------------------ the edge


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def check_source(policy: str, db: DatabaseSpec, resolve: Callable[[str], str]) -> SourceCheck:
    if db.kind == "sqlite":
        return _check_sqlite(policy, db)
    where = f"{db.kind} database '{db.name}' on {db.host or 'localhost'}:{db.port or _port(db)}"
    password = resolve(db.password) if db.password else None
    dump, client_cli = _tools(db.kind)
    try:
        printed = _run([dump, "--version"], {}).stdout
    except FileNotFoundError:
        return SourceCheck(
            policy, db.kind, db.name, False,
            f"{dump} is not installed (Debian package {_PACKAGE[db.kind]}; scripts/setup.sh "
            "installs it)",
        )  # fmt: skip
    client = client_version(printed)
    with client_auth(db, password) as auth:
        argv = _server_query(db, client_cli, list(auth.argv))
        try:
            done = _run(argv, {**auth.env, "PGCONNECT_TIMEOUT": str(TIMEOUT // 2)})
        except FileNotFoundError:
            return SourceCheck(policy, db.kind, db.name, False, f"{client_cli} is not installed")
        except subprocess.TimeoutExpired:
            return SourceCheck(
                policy, db.kind, db.name, False, f"{where}: no answer in {TIMEOUT} s"
            )
    if done.returncode != 0:
        problem = connect_problem(db.kind, done.stderr, where)
        return SourceCheck(policy, db.kind, db.name, False, problem, client)
    server = done.stdout.strip()
    if server.isdigit():  # PostgreSQL's server_version_num: 150020 -> 15.20
        server = f"{int(server) // 10000}.{int(server) % 10000}"
    mismatch = tools_match(db.kind, client, server)
    return SourceCheck(policy, db.kind, db.name, not mismatch, mismatch, client, server)


def _port(db: DatabaseSpec) -> int:
    return 5432 if db.kind == "postgres" else 3306


def _tools(kind: str) -> tuple[str, str]:
    """(dump program, query client) of a kind of server."""
    return {
        "postgres": ("pg_dump", "psql"),
        "mariadb": ("mariadb-dump", "mariadb"),
        "mysql": ("mysqldump", "mysql"),
    }[kind]


def _server_query(db: DatabaseSpec, client: str, auth_argv: list[str]) -> list[str]:
    """The client asked for the server's version, in the database named (so a missing
    database or a refused user fails here, as the dump would)."""
    host, port = db.host or "127.0.0.1", str(db.port or _port(db))
    if db.kind == "postgres":
        argv = [client, "-X", "-A", "-t", "-w", "-h", host, "-p", port, "-d", db.name]
        if db.user:
            argv += ["-U", db.user]
        return [*argv, "-c", "show server_version_num"]
    argv = [client, *auth_argv]  # --defaults-extra-file must come first
    if db.user and not auth_argv:
        argv.append(f"--user={db.user}")
    argv += ["--protocol=TCP", f"--host={host}", f"--port={port}"]
    return [
        *argv,
        f"--connect-timeout={TIMEOUT // 2}",
        "-N",
        "-B",
        "-e",
        "select version()",
        db.name,
    ]


def _check_sqlite(policy: str, db: DatabaseSpec) -> SourceCheck:
    import sqlite3

    path = Path(db.path or "")
    client = f"sqlite {sqlite3.sqlite_version} (Python's, online backup API)"
    if not path.is_file():
        return SourceCheck(
            policy, "sqlite", db.name, False, f"sqlite database {path}: no such file", client
        )
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=TIMEOUT)
        try:
            conn.execute("select count(*) from sqlite_master").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return SourceCheck(
            policy, "sqlite", db.name, False, f"sqlite database {path}: {exc}", client
        )
    return SourceCheck(policy, "sqlite", db.name, True, "", client, f"file {path}")
