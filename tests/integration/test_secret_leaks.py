"""The repository password, kept in the sealed store, appears in no file under state_dir,
in no output or log, in no argv and no environment of a restic child: a real backup and
restore, then every byte the outside world can see is searched for it."""

from __future__ import annotations

import base64
import hashlib
import stat
from pathlib import Path

import pytest
from conftest import BASIC_POLICIES, PASSWORD, SECRET_ENV, Workspace

pytestmark = pytest.mark.integration

SPY = """#!/bin/sh
# What restic is given: its environment and its argv, as the kernel holds them.
{{ echo "--- pid $$"; tr '\\000' '\\n' < /proc/$$/environ; echo "--- argv";
  tr '\\000' '\\n' < /proc/$$/cmdline; echo; }} >> '{log}'
exec '{restic}' "$@"
"""


def _forms(secret: str) -> list[bytes]:
    """The password as bytes, and the encodings a careless program might write it in."""
    raw = secret.encode()
    return [raw, base64.b64encode(raw), raw.hex().encode(), secret.encode("utf-16-le")]


def _leaks(data: bytes, secret: str) -> bool:
    return any(form in data for form in _forms(secret))


@pytest.mark.parametrize("kind", ["key-file", "passphrase", "env"])
def test_the_store_password_reaches_restic_and_nowhere_else(
    workspace: Workspace, restic_bin: str, kind: str
) -> None:
    ws = workspace
    spy_log = ws.root / "spy.log"
    spy = ws.root / "bin" / "restic-spy"
    spy.parent.mkdir()
    spy.write_text(SPY.format(log=spy_log, restic=restic_bin))
    spy.chmod(spy.stat().st_mode | stat.S_IXUSR)
    extra = f'secrets_key_file = "keys/secrets.key"\nrestic_binary = "{spy}"\n'
    ws.write_policies(BASIC_POLICIES.replace('timezone = "UTC"\n', 'timezone = "UTC"\n' + extra))
    if kind != "env":  # env: ORCHESTRATOR_SECRET_REPO_TEST, which must not reach restic
        del ws.env[SECRET_ENV]
    if kind == "passphrase":
        ws.env["ORCHESTRATOR_STORE_PASSPHRASE"] = "passphrase of this test store"
        ws.env["ORCHESTRATOR_STORE_SCRYPT_N"] = "16"
    outputs = [ws.orc("secrets", "set", "other", input="another secret value\n")]
    if kind != "env":
        outputs.append(ws.orc("secrets", "set", "repo-test", input=PASSWORD + "\n"))
    outputs.append(ws.orc("-vv", "validate"))
    outputs.append(ws.orc("-vv", "backup", "files"))
    outputs.append(ws.orc("-vv", "--json", "backup", "files"))
    dest = ws.root / "back"
    outputs.append(ws.orc("-vv", "restore", "files", "--to", str(dest)))
    outputs.append(ws.orc("-vv", "verify", "files", check=None))
    outputs.append(ws.orc("-vv", "status"))
    outputs.append(ws.orc("secrets", "list"))

    # It worked: restic used the password from the store and every byte came back.
    restored = dest / ws.data.relative_to("/")
    for path in ws.data.rglob("*"):
        if path.is_file():
            copy = restored / path.relative_to(ws.data)
            assert (
                hashlib.sha256(copy.read_bytes()).digest()
                == hashlib.sha256(path.read_bytes()).digest()
            )
    assert ws.query("SELECT count(*) FROM runs WHERE kind = 'backup' AND outcome = 'success'") == [
        (2,)
    ]

    # restic was really run through the spy, and its argv and environment hold no password.
    spied = spy_log.read_bytes()
    assert spied.count(b"--- pid") >= 3 and b"backup" in spied and b"restore" in spied
    assert b"RESTIC_PASSWORD_FILE=/dev/fd/" in spied or b"--password-file" in spied
    assert not _leaks(spied, PASSWORD)
    assert b"ORCHESTRATOR_" not in spied  # no store passphrase either

    # Every file under state_dir, and everything the commands printed.
    state = ws.root / "var"
    files = [p for p in state.rglob("*") if p.is_file()]
    assert (state / "secrets.sealed") in files and len(files) > 5
    assert [p for p in files if _leaks(p.read_bytes(), "another secret value")] == []
    assert [p for p in files if _leaks(p.read_bytes(), PASSWORD)] == []
    for out in outputs:
        assert not _leaks((out.stdout + out.stderr).encode(), PASSWORD), out.args
    assert any("running: " in out.stderr for out in outputs)  # the -vv logs were there
    # The key (kept outside state_dir) is not in state_dir either.
    if kind == "key-file":
        key = (ws.root / "keys" / "secrets.key").read_bytes().strip()
        assert [p for p in files if key in p.read_bytes()] == []
    elif kind == "passphrase":
        phrase = ws.env["ORCHESTRATOR_STORE_PASSPHRASE"]
        assert [p for p in files if _leaks(p.read_bytes(), phrase)] == []


def test_a_wrong_password_in_the_store_is_reported_without_echoing_it(
    workspace: Workspace,
) -> None:
    ws = workspace
    wrong = "a wrong repository password 5b2e"
    ws.write_policies(
        BASIC_POLICIES.replace(
            'timezone = "UTC"\n', 'timezone = "UTC"\nsecrets_key_file = "keys/secrets.key"\n'
        )
    )
    del ws.env[SECRET_ENV]
    ws.orc("secrets", "set", "repo-test", input=wrong + "\n")
    failed = ws.orc("-vv", "backup", "files", check=1)
    assert "password" in failed.stderr
    assert not _leaks((failed.stdout + failed.stderr).encode(), wrong)
    rows = ws.query("SELECT * FROM runs")
    assert rows and not _leaks(repr(rows).encode(), wrong)
    files = [p for p in (ws.root / "var").rglob("*") if p.is_file()]
    assert [p for p in files if _leaks(p.read_bytes(), wrong)] == []


def test_state_dir_alone_does_not_open_the_store(workspace: Workspace, tmp_path: Path) -> None:
    """A copy of state_dir without the key file: the store cannot be read."""
    import shutil

    ws = workspace
    ws.write_policies(
        BASIC_POLICIES.replace(
            'timezone = "UTC"\n', 'timezone = "UTC"\nsecrets_key_file = "keys/secrets.key"\n'
        )
    )
    del ws.env[SECRET_ENV]
    ws.orc("secrets", "set", "repo-test", input=PASSWORD + "\n")
    copy = tmp_path / "elsewhere"
    copy.mkdir()
    shutil.copytree(ws.root / "var", copy / "var")
    (copy / "policies.toml").write_text(ws.config.read_text())
    thief = Workspace(copy, ws.env)
    line = thief.orc("secrets", "list", check=2).stderr
    assert "nowhere to be found" in line and "Traceback" not in line
