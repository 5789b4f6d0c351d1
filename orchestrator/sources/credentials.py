"""A database password for a client program (pg_dump, mariadb-dump, ...): never on
argv and never in the child's environment, but in a 0600 file in a private 0700
folder that lives as long as the child (`PGPASSFILE` for PostgreSQL's tools,
`--defaults-extra-file` for MariaDB's), overwritten and removed afterwards."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.policies.model import DatabaseSpec
from orchestrator.security.files import destroy, write_private


@dataclass(frozen=True)
class ClientAuth:
    """What a client program is given: extra argv (a path, never the secret) and
    extra environment (a path too)."""

    argv: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


def pgpass_line(host: str, port: int, user: str, password: str) -> str:
    """One line of a PostgreSQL password file (`:` and `\\` escaped in each field)."""

    def esc(text: str) -> str:
        return text.replace("\\", "\\\\").replace(":", "\\:")

    return f"{esc(host)}:{port}:*:{esc(user)}:{esc(password)}\n"


def mariadb_defaults(user: str, password: str) -> str:
    """An option file's [client] group; values quoted, `\\` and `"` escaped."""

    def quote(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return f"[client]\nuser={quote(user)}\npassword={quote(password)}\n"


@contextlib.contextmanager
def client_auth(db: DatabaseSpec, password: str | None) -> Iterator[ClientAuth]:
    """The credentials of `db` for its client programs, for the `with` block only."""
    if db.kind == "sqlite" or password is None:
        yield ClientAuth(
            env={"PGPASSFILE": "/dev/null"} if db.kind == "postgres" else {},
        )
        return
    folder = Path(tempfile.mkdtemp(prefix="orchestrator-db-"))  # 0700, this user's only
    try:
        if db.kind == "postgres":
            path = folder / "pgpass"
            line = pgpass_line(db.host or "localhost", db.port or 5432, db.user or "", password)
            write_private(path, line.encode("utf-8"))
            yield ClientAuth(env={"PGPASSFILE": str(path)})
        else:
            path = folder / "client.cnf"
            write_private(path, mariadb_defaults(db.user or "", password).encode("utf-8"))
            yield ClientAuth(argv=(f"--defaults-extra-file={path}",))
    finally:
        for child in folder.iterdir():
            destroy(child)
        shutil.rmtree(folder, ignore_errors=True)
