"""`secrets set/list/remove/rotate/migrate` through the installed command: the store is one
sealed file, its key lives outside state_dir, and every failure is one line naming the
store with the documented exit code (2: the key or passphrase; 1: a damaged store)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from conftest import BASIC_POLICIES, PASSWORD, SECRET_ENV, Workspace

pytestmark = pytest.mark.e2e

VALUE = "s3cr3t-value-7d1f0c9a"
CHEAP = {"ORCHESTRATOR_STORE_SCRYPT_N": "16"}  # scrypt at its cheapest: tests only


@pytest.fixture
def ws(workspace: Workspace) -> Workspace:
    """The workspace, its key file in `keys/` (outside `var/`), its password in the store."""
    workspace.write_policies(
        BASIC_POLICIES.replace(
            'timezone = "UTC"\n', 'timezone = "UTC"\nsecrets_key_file = "keys/secrets.key"\n'
        )
    )
    del workspace.env[SECRET_ENV]
    return workspace


def _store(ws: Workspace) -> Path:
    return ws.root / "var" / "secrets.sealed"


def _key(ws: Workspace) -> Path:
    return ws.root / "keys" / "secrets.key"


KEY = "audit-signing-key"  # sealed beside the secrets by the first audit checkpoint


def _names(ws: Workspace) -> list[str]:
    return ws.orc_json("secrets", "list")["names"]


def _failure(ws: Workspace, code: int, *args: str) -> str:
    """One line on stderr, the exit code, no traceback, no value. A store that cannot be
    opened cannot sign the audit checkpoint either: that is said on a line of its own."""
    result = ws.orc(*(args or ("secrets", "list")), check=code)
    assert "Traceback" not in result.stderr
    assert VALUE not in result.stderr + result.stdout and PASSWORD not in result.stderr
    lines = [
        line
        for line in result.stderr.strip().splitlines()
        if not line.startswith("ERROR orchestrator.audit: audit: records written, checkpoint")
    ]
    assert len(lines) == 1, result.stderr
    return lines[0]


def _no_temp_files(ws: Workspace) -> None:
    assert [p for p in ws.root.rglob("*.tmp")] == []
    assert [p for p in ws.root.rglob("*.new")] == []


def test_set_creates_a_private_key_outside_state_dir_and_seals_the_value(ws: Workspace) -> None:
    first = ws.orc("secrets", "set", "repo-test", input=PASSWORD + "\n")
    assert "created the key file" in first.stderr and str(_key(ws)) in first.stderr
    assert stat.S_IMODE(_key(ws).stat().st_mode) == 0o600
    assert stat.S_IMODE(_key(ws).parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(_store(ws).stat().st_mode) == 0o600
    again = ws.orc("secrets", "set", "other", input=VALUE + "\n")
    assert "created the key file" not in again.stderr
    ws.orc("secrets", "set", "made", "--generate")
    assert _names(ws) == [KEY, "made", "other", "repo-test"]
    assert ws.orc("secrets", "list").stdout.split() == [KEY, "made", "other", "repo-test"]
    blob = _store(ws).read_bytes()
    assert blob.startswith(b"ORCHESTRATOR-SECRETS/1\n")
    assert VALUE.encode() not in blob and PASSWORD.encode() not in blob
    assert not (ws.root / "var" / "secrets").exists()
    # The sealed value really is the password: a backup resolves it from the store.
    ws.orc("backup", "files")
    ws.orc("secrets", "remove", "other")
    assert _names(ws) == [KEY, "made", "repo-test"]
    assert "not in the store" in _failure(ws, 2, "secrets", "remove", "other")
    _no_temp_files(ws)


def test_the_env_variable_still_wins_over_the_store(ws: Workspace) -> None:
    ws.orc("secrets", "set", "repo-test", input="not the password\n")
    ws.env[SECRET_ENV] = PASSWORD
    ws.orc("backup", "files")
    del ws.env[SECRET_ENV]
    failed = ws.orc("backup", "files", check=1)  # the store's value is used now, and wrong
    assert "password" in failed.stderr and "not the password" not in failed.stderr


DAMAGE = [
    ("flipped-last-byte", lambda b: b[:-1] + bytes([b[-1] ^ 1]), 1, "authentication failed"),
    ("flipped-header", lambda b: b.replace(b'"kdf":"key"', b'"kdf":"kez"'), 1, "header"),
    ("truncated", lambda b: b[: len(b) // 2], 1, ""),
    ("empty", lambda b: b"", 1, "the file is empty"),
    ("other-version", lambda b: b.replace(b"/1\n", b"/9\n", 1), 1, "version '9'"),
]


@pytest.mark.parametrize(("what", "damage", "code", "reason"), DAMAGE, ids=[d[0] for d in DAMAGE])
def test_a_damaged_store_is_one_line_naming_it_and_nothing_is_used(
    ws: Workspace, what: str, damage: object, code: int, reason: str
) -> None:
    ws.orc("secrets", "set", "repo-test", input=PASSWORD + "\n")
    _store(ws).write_bytes(damage(_store(ws).read_bytes()))  # type: ignore[operator]
    line = _failure(ws, code)
    assert str(_store(ws)) in line and reason in line, what
    backup = _failure(ws, code, "backup", "files")
    assert str(_store(ws)) in backup
    assert ws.query("SELECT count(*) FROM runs WHERE outcome = 'success'") == [(0,)]


def test_a_wrong_or_missing_key_is_exit_2_naming_the_store(ws: Workspace) -> None:
    ws.orc("secrets", "set", "repo-test", input=PASSWORD + "\n")
    good = _key(ws).read_bytes()
    _key(ws).write_bytes(os.urandom(32).hex().encode())
    line = _failure(ws, 2)
    assert str(_store(ws)) in line and "wrong key" in line and str(_key(ws)) in line
    _key(ws).unlink()
    line = _failure(ws, 2)
    assert "nowhere to be found" in line and str(_key(ws)) in line
    assert not _key(ws).exists()  # never a new key for an existing store
    _key(ws).write_bytes(good)
    os.chmod(_key(ws), 0o644)
    assert "readable by others" in _failure(ws, 2)
    os.chmod(_key(ws), 0o600)
    assert _names(ws) == [KEY, "repo-test"]


def test_a_key_file_inside_state_dir_is_refused(ws: Workspace) -> None:
    text = ws.config.read_text().replace('"keys/secrets.key"', '"var/keys/secrets.key"')
    ws.config.write_text(text)
    for args in (("validate",), ("secrets", "set", "x", "--generate")):
        line = ws.orc(*args, check=2).stderr  # the config's problem list, with its place
        assert "orchestrator.secrets_key_file" in line and "inside state_dir" in line
    assert not (ws.root / "var" / "keys").exists()


def test_passphrase_store_wrong_and_missing_passphrase(ws: Workspace) -> None:
    ws.env.update(CHEAP, ORCHESTRATOR_STORE_PASSPHRASE="the right passphrase")
    ws.orc("secrets", "set", "repo-test", input=PASSWORD + "\n")
    assert not _key(ws).exists()
    header = json.loads(_store(ws).read_bytes().split(b"\n")[1])
    assert header["kdf"] == "scrypt" and header["n"] == 16
    ws.orc("backup", "files")
    ws.env["ORCHESTRATOR_STORE_PASSPHRASE"] = "a wrong passphrase"
    line = _failure(ws, 2)
    assert str(_store(ws)) in line and "wrong key or passphrase" in line
    del ws.env["ORCHESTRATOR_STORE_PASSPHRASE"]
    assert "ORCHESTRATOR_STORE_PASSPHRASE" in _failure(ws, 2)


def test_rotate_to_a_new_key_file_and_to_a_passphrase_and_back(ws: Workspace) -> None:
    ws.orc("secrets", "set", "repo-test", input=PASSWORD + "\n")
    ws.orc("secrets", "set", "other", input=VALUE + "\n")
    old_key, old_store = _key(ws).read_bytes(), _store(ws).read_bytes()
    ws.orc("secrets", "rotate")
    new_key = _key(ws).read_bytes()
    assert new_key != old_key and _store(ws).read_bytes() != old_store
    assert _names(ws) == [KEY, "other", "repo-test"]
    _key(ws).write_bytes(old_key)  # the old key no longer opens the store
    assert "wrong key" in _failure(ws, 2)
    _key(ws).write_bytes(new_key)
    ws.orc("backup", "files")  # the values survived the rotation
    # To a passphrase: the key file is overwritten and removed.
    ws.env.update(CHEAP, ORCHESTRATOR_STORE_NEW_PASSPHRASE="a brand new passphrase")
    ws.orc("secrets", "rotate", "--passphrase")
    assert not _key(ws).exists()
    assert "ORCHESTRATOR_STORE_PASSPHRASE" in _failure(ws, 2)
    ws.env["ORCHESTRATOR_STORE_PASSPHRASE"] = "a brand new passphrase"
    assert _names(ws) == [KEY, "other", "repo-test"]
    ws.env["ORCHESTRATOR_STORE_NEW_PASSPHRASE"] = "short"
    short = _failure(ws, 2, "secrets", "rotate", "--passphrase")
    assert "at least 8 characters" in short
    # Back to a key file: the passphrase no longer opens the store.
    ws.orc("secrets", "rotate")
    assert _key(ws).exists() and _key(ws).read_bytes() != new_key
    assert json.loads(_store(ws).read_bytes().split(b"\n")[1])["kdf"] == "key"
    del ws.env["ORCHESTRATOR_STORE_PASSPHRASE"]
    ws.orc("backup", "files")
    _no_temp_files(ws)


def test_an_interrupted_rotation_is_finished_by_the_next_command(ws: Workspace) -> None:
    """A crash after the store was re-sealed but before the new key replaced the old one:
    the new key waits beside the key file, and the next command installs it."""
    ws.orc("secrets", "set", "repo-test", input=PASSWORD + "\n")
    old_key = _key(ws).read_bytes()
    ws.orc("secrets", "rotate")
    pending = _key(ws).with_name("secrets.key.new")
    os.replace(_key(ws), pending)
    _key(ws).write_bytes(old_key)
    os.chmod(_key(ws), 0o600)
    assert _names(ws) == [KEY, "repo-test"]
    assert not pending.exists() and _key(ws).read_bytes() != old_key
    ws.orc("backup", "files")


def test_migrate_seals_the_plain_files_once_and_plain_files_are_refused(ws: Workspace) -> None:
    plain = ws.root / "var" / "secrets"
    plain.mkdir(parents=True, mode=0o700)
    for name, value in (("repo-test", PASSWORD), ("other", VALUE), (".other.x1.tmp", VALUE)):
        (plain / name).write_text(value + "\n")
        os.chmod(plain / name, 0o600)
    refused = [
        ("secrets", "list", 2),
        ("backup", "files", 1),
        ("secrets", "set", "x", "--generate", 2),
    ]
    for *args, code in refused:  # a backup records a failed run: exit 1
        line = _failure(ws, code, *args)  # type: ignore[arg-type]
        assert "secrets migrate" in line and str(plain) in line
    out = ws.orc("secrets", "migrate")
    assert "sealed 2 secret(s)" in out.stdout and "created the key file" in out.stderr
    assert not plain.exists()
    assert _names(ws) == [KEY, "other", "repo-test"]
    ws.orc("backup", "files")
    assert "nothing to migrate" in ws.orc("secrets", "migrate").stdout
    plain.mkdir()
    (plain / "late").write_text("late value\n")
    assert "secrets migrate" in _failure(ws, 2)
    # A name sealed already with another value is not silently overwritten.
    (plain / "other").write_text("a different value\n")
    assert "different values" in _failure(ws, 2, "secrets", "migrate")
    assert (plain / "other").exists() and (plain / "late").exists()
    (plain / "other").unlink()
    ws.orc("secrets", "migrate")
    assert _names(ws) == [KEY, "late", "other", "repo-test"]
    _no_temp_files(ws)


def test_a_systemd_credential_is_the_first_key_source(ws: Workspace) -> None:
    creds = ws.root / "credentials"
    creds.mkdir()
    credential = creds / "orchestrator-secrets-key"
    credential.write_bytes(os.urandom(32))  # raw bytes, as `systemd-creds` may hand it over
    os.chmod(credential, 0o440)  # systemd's mode: not ours to refuse
    ws.env["CREDENTIALS_DIRECTORY"] = str(creds)
    out = ws.orc("secrets", "set", "repo-test", input=PASSWORD + "\n")
    assert "created the key file" not in out.stderr and not _key(ws).exists()
    ws.orc("backup", "files")
    del ws.env["CREDENTIALS_DIRECTORY"]
    line = _failure(ws, 2)
    assert "nowhere to be found" in line and "orchestrator-secrets-key" in line
    # Rotating under a credential writes the new key to the key file and says so.
    ws.env["CREDENTIALS_DIRECTORY"] = str(creds)
    rotated = ws.orc("secrets", "rotate").stdout
    assert str(_key(ws)) in rotated and "systemd credential" in rotated
    assert _names(ws) == [KEY, "repo-test"]  # the credential's old key is skipped, the file used
    os.replace(_key(ws), creds / "new-key")
    assert "wrong key" in _failure(ws, 2)  # the old credential alone no longer opens it


def test_concurrent_sets_lose_nothing(ws: Workspace) -> None:
    import subprocess

    from conftest import ORCHESTRATOR

    ws.orc("secrets", "set", "first", input="v\n")  # the key file exists before the race
    procs = [
        subprocess.Popen(
            [*ORCHESTRATOR, "--config", str(ws.config), "secrets", "set", f"name{i}"],
            env=ws.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for i in range(6)
    ]
    for i, proc in enumerate(procs):
        _, err = proc.communicate(f"value {i}\n".encode(), timeout=60)
        assert proc.returncode == 0, err
    assert _names(ws) == [KEY, "first", *(f"name{i}" for i in range(6))]
    _no_temp_files(ws)


def test_reading_an_empty_store_creates_nothing(ws: Workspace) -> None:
    assert _names(ws) == []
    assert not _key(ws).parent.exists() and not _store(ws).exists()


def test_rotate_from_one_passphrase_to_another(ws: Workspace) -> None:
    ws.env.update(CHEAP, ORCHESTRATOR_STORE_PASSPHRASE="the first passphrase")
    ws.orc("secrets", "set", "repo-test", input=PASSWORD + "\n")
    salt = json.loads(_store(ws).read_bytes().split(b"\n")[1])["salt"]
    ws.env["ORCHESTRATOR_STORE_NEW_PASSPHRASE"] = "the second passphrase"
    ws.orc("secrets", "rotate", "--passphrase")
    assert json.loads(_store(ws).read_bytes().split(b"\n")[1])["salt"] != salt
    assert "wrong key or passphrase" in _failure(ws, 2)  # the first one no longer opens it
    ws.env["ORCHESTRATOR_STORE_PASSPHRASE"] = "the second passphrase"
    ws.orc("backup", "files")
    assert not _key(ws).exists()


def test_a_key_file_that_cannot_be_created_is_one_line(ws: Workspace) -> None:
    (ws.root / "keys").write_text("a file where the key's folder should be\n")
    line = _failure(ws, 2, "secrets", "set", "x", "--generate")
    assert "cannot create the key file" in line and "secrets_key_file" in line
    assert not _store(ws).exists()
    _no_temp_files(ws)


# ----------------------------------------------------------------- break-it on the audit key


def test_two_configurations_in_one_folder_keep_their_own_keys(workspace: Workspace) -> None:
    """Break-it D1: both defaulted to keys/secrets.key, so rotating one configuration's
    key made the other's store unreadable for good."""
    ws = workspace
    del ws.env[SECRET_ENV]
    text = ws.config.read_text()
    for name in ("a", "b"):
        (ws.root / f"{name}.toml").write_text(text.replace('"var"', f'"var-{name}"'))

    def orc(name: str, *args: str, **kw: object) -> object:
        return ws.orc("--config", str(ws.root / f"{name}.toml"), *args, **kw)

    for name in ("a", "b"):
        orc(name, "secrets", "set", "repo-test", input=PASSWORD + "\n")
    keys = sorted(p.name for p in (ws.root / "keys").iterdir())
    assert keys == ["a.secrets.key", "b.secrets.key"]
    orc("a", "secrets", "rotate")
    orc("b", "backup", "files")  # b's store still opens
    orc("a", "backup", "files")


def test_the_audit_key_is_never_a_password_nor_a_planted_file(ws: Workspace) -> None:
    """Break-it D5 and D6: `migrate` sealed a planted state_dir/secrets/audit-signing-key
    (whoever could write state_dir chose the key); a target could use the key as its
    password."""
    plain = ws.root / "var" / "secrets"
    plain.mkdir(parents=True, mode=0o700)
    (plain / "audit-signing-key").write_text("ed25519:" + "A" * 43 + "=\n")
    line = _failure(ws, 2, "secrets", "migrate")
    assert "audit-signing-key is not migrated" in line
    assert (plain / "audit-signing-key").exists()

    for args in (("set", KEY), ("remove", KEY)):
        assert "audit log's signing key" in _failure(ws, 2, "secrets", *args)

    leaky = ws.config.read_text().replace(
        'password = "secret:repo-test"', f'password = "secret:{KEY}"'
    )
    assert leaky != ws.config.read_text()
    ws.config.write_text(leaky)
    result = ws.orc("validate", check=2)
    assert "is the audit log's signing key, never a password" in result.stderr
