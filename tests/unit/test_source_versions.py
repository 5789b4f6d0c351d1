"""What the database tools print, read as tables: versions, whether the dump tool can
dump the server, and which sentence a connection error becomes."""

from __future__ import annotations

import pytest

from orchestrator.sources import check
from orchestrator.sources.credentials import mariadb_defaults, pgpass_line


@pytest.mark.parametrize(
    ("printed", "version", "major"),
    [
        ("pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)", "15.20", 15),
        ("mariadb-dump  Ver 10.19 Distrib 10.11.19-MariaDB, for debian-linux-gnu", "10.11.19", 10),
        ("mysqldump  Ver 10.19 Distrib 11.4.2-MariaDB, for Linux", "11.4.2", 11),
    ],
)
def test_client_versions(printed: str, version: str, major: int) -> None:
    assert check.client_version(printed) == version
    assert check.major_of(version) == major


@pytest.mark.parametrize(
    ("kind", "client", "server", "ok"),
    [
        ("postgres", "15.20", "15.20", True),
        ("postgres", "16.2", "15.20", True),  # a newer pg_dump dumps an older server
        ("postgres", "15.20", "16.1", False),  # an older one refuses
        ("postgres", "15.20", "160001", False),  # server_version_num
        ("mariadb", "10.11.19", "10.11.19-MariaDB-0+deb12u1", True),
        ("mariadb", "10.11.19", "11.4.2-MariaDB", False),
        ("mariadb", "garbage", "10.11", False),
    ],
)
def test_tools_match(kind: str, client: str, server: str, ok: bool) -> None:
    assert (check.tools_match(kind, client, server) == "") is ok


@pytest.mark.parametrize(
    ("stderr", "words"),
    [
        ('psql: error: connection to server at "127.0.0.1", port 5999 failed: Connection refused',
         "not reachable"),
        ("ERROR 1045 (28000): Access denied for user 'x'@'localhost' (using password: YES)",
         "credentials were refused"),
        ('psql: error: FATAL:  password authentication failed for user "app"', "credentials"),
        ('psql: error: FATAL:  database "nope" does not exist', "does not exist"),
        ("ERROR 1049 (42000): Unknown database 'nope'", "does not exist"),
        ("ERROR 2002 (HY000): Can't connect to server on '127.0.0.1' (115)", "not reachable"),
        ("", "no output"),
    ],
)  # fmt: skip
def test_connection_errors_are_one_sentence(stderr: str, words: str) -> None:
    line = check.connect_problem("postgres", stderr, "where")
    assert line.startswith("where: ") and words in line and "\n" not in line


@pytest.mark.parametrize(
    ("host", "user", "password", "line"),
    [
        ("db1", "app", "plain", "db1:5432:*:app:plain\n"),
        ("db1", "app", "a:b\\c", "db1:5432:*:app:a\\:b\\\\c\n"),  # : and \\ escaped
    ],
)
def test_pgpass_line(host: str, user: str, password: str, line: str) -> None:
    assert pgpass_line(host, 5432, user, password) == line


def test_mariadb_option_file_quotes_the_password() -> None:
    text = mariadb_defaults("app", 'p"w\\x')
    assert text == '[client]\nuser="app"\npassword="p\\"w\\\\x"\n'
