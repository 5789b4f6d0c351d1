"""Who may do what (issue 16), through the real command run as other Unix users.

The tests run as root; they create three users and a group once per machine (a session
fixture, `useradd --system`, left in place for the next run: deleting them while a
parallel worker still runs as them would break it; `userdel orctest-alice` etc. removes
them). Commands run as a user through `setpriv --reuid`: the real uid is theirs, so the
orchestrator sees them exactly as it sees a person who logged in. They keep one
capability, CAP_DAC_READ_SEARCH (read any file), because the test's Python lives under
/root; they write only where the files are theirs (the workspace is chowned to
orctest-alice before she acts). There is no way to tell the orchestrator who is acting
but the process's real uid, and root's SUDO_USER (the sudo model, also tested here).
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import (
    LOCAL_HEAD,
    ORCHESTRATOR,
    PASSWORD,
    SECRET_ENV,
    Workspace,
    require,
    restic_snapshots,
)

pytestmark = pytest.mark.e2e

ALICE, BOB, CAROL = "orctest-alice", "orctest-bob", "orctest-carol"
STAFF = "orctest-staff"
CAPS = "+dac_read_search"

POLICIES = (
    LOCAL_HEAD
    + """
[policies.files]
importance = "normal"
sources = ["data"]
targets = ["local"]

[policies.other]
importance = "normal"
sources = ["data/sub"]
targets = ["local"]
"""
)


@pytest.fixture(scope="session")
def users() -> dict[str, str]:
    """orctest-alice (in group orctest-staff), orctest-bob, orctest-carol: created once."""
    require(os.geteuid() == 0, "root (to create test users and run commands as them)")
    require(bool(shutil.which("useradd") and shutil.which("setpriv")), "useradd and setpriv")
    with open("/tmp/orchestrator-test-users.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # pytest -n 2: one worker creates them
        if not _exists(grp.getgrnam, STAFF):
            subprocess.run(["groupadd", "--system", STAFF], check=True)
        for name in (ALICE, BOB, CAROL):
            if not _exists(pwd.getpwnam, name):
                subprocess.run(
                    [
                        "useradd",
                        "--system",
                        "--no-create-home",
                        "--shell",
                        "/usr/sbin/nologin",
                        name,
                    ],
                    check=True,
                )
        subprocess.run(["usermod", "-a", "-G", STAFF, ALICE], check=True)
    return {"alice": ALICE, "bob": BOB, "carol": CAROL}


def _exists(lookup: object, name: str) -> bool:
    try:
        lookup(name)  # type: ignore[operator]
    except KeyError:
        return False
    return True


def as_user(
    ws: Workspace, user: str | None, *args: str, check: int | None = 0, env: dict | None = None
) -> subprocess.CompletedProcess[str]:
    """The command run by `user` (None: root), as a person would run it."""
    prefix = []
    if user is not None:
        entry = pwd.getpwnam(user)
        prefix = [
            "setpriv",
            f"--reuid={entry.pw_uid}",
            f"--regid={entry.pw_gid}",
            "--init-groups",
            f"--inh-caps=-all,{CAPS}",
            f"--ambient-caps={CAPS}",
            f"--bounding-set=-all,{CAPS}",
        ]
    result = subprocess.run(
        [*prefix, *ORCHESTRATOR, "--config", str(ws.config), *args],
        env={k: v for k, v in (env or ws.env).items() if not k.startswith("SUDO_")},
        cwd=ws.root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if check is not None:
        assert result.returncode == check, (
            f"exit {result.returncode} != {check}\nstdout:\n{result.stdout}\n"
            f"stderr:\n{result.stderr}"
        )
    return result


def give_to(path: Path, user: str) -> None:
    """Everything under `path` belongs to `user` (the catalog, the repository, the roots)."""
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.lchown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)
    os.lchown(path, entry.pw_uid, entry.pw_gid)


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def ws(template_repo: Path, users: dict[str, str]) -> Iterator[Workspace]:
    """A workspace the test users can reach (pytest's own tmp folders are root's, 0700),
    with a snapshot of each policy (made by root), a restore root and an outside place;
    [access] is written by each test."""
    root = Path(tempfile.mkdtemp(prefix="orctest-access-", dir="/tmp"))
    root.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCHESTRATOR_", "RESTIC_"))}
    ws = Workspace(root, {**env, SECRET_ENV: PASSWORD})
    ws.use_template(template_repo)
    (ws.data / "sub").mkdir(parents=True)
    (ws.data / "a.txt").write_text("alpha\n")
    (ws.data / "sub" / "b.bin").write_bytes(os.urandom(50_000))
    ws.write_policies(POLICIES)
    as_user(ws, None, "backup", "--all")
    (root / "restores").mkdir()
    (root / "outside").mkdir()
    try:
        yield ws
    finally:
        shutil.rmtree(root)


def access(ws: Workspace, body: str) -> None:
    ws.write_policies(POLICIES + f'\n[access]\nrestore_roots = ["{ws.root / "restores"}"]\n' + body)


def test_an_auditor_may_not_back_up_but_may_read(ws: Workspace) -> None:
    access(ws, f'operators = ["{BOB}"]\nauditors = ["{CAROL}"]\n')
    before = restic_snapshots(ws.repo)

    denied = as_user(ws, CAROL, "backup", "files", check=77)

    assert one_line(denied.stderr) == (
        f"orchestrator: not permitted: {CAROL} may not run 'backup files': "
        f"only an operator may backup; {CAROL} is auditor"
    )
    assert restic_snapshots(ws.repo) == before  # restic itself: nothing was made
    assert as_user(ws, CAROL, "--json", "backup", "files", check=77).stdout.count("access_denied")
    for denied_too in (["secrets", "list"], ["forget", "--dry-run"], ["verify"]):
        as_user(ws, CAROL, *denied_too, check=77)
    give_to(ws.root / "var", CAROL)  # status opens the catalog
    status = as_user(ws, CAROL, "--json", "status")
    assert "files" in status.stdout


def test_a_requester_may_not_restore_another_policy(ws: Workspace) -> None:
    access(ws, f'requesters = {{ "@{STAFF}" = ["files"] }}\n')  # alice through her group
    give_to(ws.root, ALICE)

    denied = as_user(
        ws, ALICE, "restore", "other", "--to", str(ws.root / "restores" / "x"), check=77
    )

    assert one_line(denied.stderr) == (
        f"orchestrator: not permitted: {ALICE} may not run 'restore other': "
        f"{ALICE} may restore only files, not 'other'"
    )
    assert list((ws.root / "restores").iterdir()) == []
    as_user(ws, ALICE, "snapshots", "other", check=77)
    as_user(ws, ALICE, "backup", "files", check=77)


def test_a_requester_may_not_restore_into_etc(ws: Workspace) -> None:
    access(ws, f'requesters = ["{ALICE}"]\n')
    give_to(ws.root, ALICE)
    target = Path("/etc") / f"orchestrator-test-{uuid.uuid4().hex[:8]}"

    denied = as_user(ws, ALICE, "restore", "files", "--to", str(target), check=77)

    line = one_line(denied.stderr)
    assert line.startswith(f"orchestrator: not permitted: {ALICE} may not run 'restore files': ")
    assert line.endswith(f"{target} is outside the restore roots ({ws.root / 'restores'})")
    assert not target.exists()


def test_a_requester_restores_into_a_restore_root(ws: Workspace) -> None:
    access(ws, f'requesters = {{ "{ALICE}" = ["files"] }}\n')
    give_to(ws.root, ALICE)
    into = ws.root / "restores" / "mine"

    done = as_user(ws, ALICE, "--json", "restore", "files", "--to", str(into))

    assert '"files": 2' in done.stdout
    restored = into / str(ws.data).lstrip("/")
    assert (restored / "a.txt").read_text() == "alpha\n"
    assert (restored / "sub" / "b.bin").read_bytes() == (ws.data / "sub" / "b.bin").read_bytes()
    assert pwd.getpwuid((restored / "a.txt").stat().st_uid).pw_name == ALICE  # she wrote them
    # and the snapshots of her policy, to choose one
    assert as_user(ws, ALICE, "--json", "snapshots", "files").stdout.count('"policy": "files"')


@pytest.mark.parametrize("how", ["dotdot", "symlink", "symlink-as-destination"])
def test_a_requester_cannot_escape_the_roots(ws: Workspace, how: str) -> None:
    access(ws, f'requesters = ["{ALICE}"]\n')
    roots, outside = ws.root / "restores", ws.root / "outside"
    (roots / "link").symlink_to(outside)
    given = {
        "dotdot": f"{roots}/../outside/x",
        "symlink": f"{roots}/link/x",
        "symlink-as-destination": f"{roots}/link",
    }[how]
    give_to(ws.root, ALICE)  # she could write outside/ herself: only the check stops her

    denied = as_user(ws, ALICE, "restore", "files", "--to", given, check=77)

    line = one_line(denied.stderr)
    route = "(through '..')" if how == "dotdot" else f"(through the symbolic link {roots}/link"
    assert f"{given} resolves to {outside}" in line and route in line, line
    assert line.endswith(f"is outside the restore roots ({roots})")
    assert list(outside.iterdir()) == []


def test_an_operator_restores_anywhere(ws: Workspace) -> None:
    access(ws, f'operators = ["{ALICE}"]\nrequesters = ["{BOB}"]\n')
    give_to(ws.root, ALICE)
    into = ws.root / "outside" / "op"

    as_user(ws, ALICE, "restore", "files", "--to", str(into))

    assert (into / str(ws.data).lstrip("/") / "a.txt").read_text() == "alpha\n"


def test_through_sudo_the_person_is_sudo_user(ws: Workspace) -> None:
    """The sudo model: the process is root (it could write anywhere) and acts for alice."""
    access(ws, f'requesters = ["{ALICE}"]\n')
    sudo = {**ws.env, "SUDO_USER": ALICE, "SUDO_UID": str(pwd.getpwnam(ALICE).pw_uid)}
    outside = ws.root / "outside" / "x"

    denied = _as_root(ws, sudo, "restore", "files", "--to", str(outside), check=77)
    assert f"{ALICE} (through sudo) may not run 'restore files'" in one_line(denied.stderr)
    assert not outside.exists()
    etc = Path("/etc") / f"orchestrator-test-{uuid.uuid4().hex[:8]}"  # root could write it
    _as_root(ws, sudo, "restore", "files", "--to", str(etc), check=77)
    assert not etc.exists()
    _as_root(ws, sudo, "backup", "files", check=77)

    _as_root(ws, sudo, "restore", "files", "--to", str(ws.root / "restores" / "y"))
    assert (ws.root / "restores" / "y" / str(ws.data).lstrip("/") / "a.txt").is_file()
    # root itself (no SUDO_USER) is always an operator
    _as_root(ws, ws.env, "restore", "files", "--to", str(ws.root / "outside" / "z"))
    # every denial is in the audit log, as the person who was refused, and it verifies
    shown = json.loads(_as_root(ws, ws.env, "--json", "audit", "show").stdout)["records"]
    denials = [r for r in shown if r["what"] == "access.denied"]
    assert [(r["who"], r["details"]["action"]) for r in denials] == [
        (ALICE, "restore"),
        (ALICE, "restore"),
        (ALICE, "backup"),
    ]
    _as_root(ws, ws.env, "audit", "verify")


def _as_root(
    ws: Workspace, env: dict[str, str], *args: str, check: int = 0
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*ORCHESTRATOR, "--config", str(ws.config), *args],
        env=env,
        cwd=ws.root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == check, result.stdout + result.stderr
    return result


def test_without_access_root_works_and_validate_says_so(ws: Workspace) -> None:
    checked = as_user(ws, None, "validate")
    assert "no [access] in policies.toml: every user who can run orchestrator" in checked.stderr
    as_user(ws, None, "restore", "files", "--to", str(ws.root / "outside" / "r"))
    assert (ws.root / "outside" / "r" / str(ws.data).lstrip("/") / "a.txt").is_file()
    # with [access], that warning is gone
    access(ws, 'operators = ["root"]\n')
    assert "no [access]" not in as_user(ws, None, "validate").stderr


def test_a_person_without_a_role_may_only_validate(ws: Workspace) -> None:
    access(ws, f'operators = ["{BOB}"]\n')
    for command in (["status"], ["plan"], ["snapshots"], ["backup", "files"]):
        denied = as_user(ws, CAROL, *command, check=77)
        assert f"{CAROL} holds no role in [access]" in one_line(denied.stderr)
    as_user(ws, CAROL, "validate")


def test_a_denial_is_published_as_an_event(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """In process (the audit log subscribes the same way): one access.denied event."""
    from click.testing import CliRunner

    from orchestrator.cli import cli
    from orchestrator.errors import AccessDenied
    from orchestrator.events import EventBus
    from orchestrator.security import access as access_module

    access(ws, f'auditors = ["{CAROL}"]\n')
    seen = []
    monkeypatch.setattr(access_module, "DENIALS", EventBus())  # this test's own listener
    access_module.DENIALS.subscribe(type("Sink", (), {"publish": lambda _, e: seen.append(e)})())
    monkeypatch.setenv("SUDO_USER", CAROL)
    with contextlib.chdir(ws.root):
        result = CliRunner().invoke(cli, ["--config", str(ws.config), "backup", "files"])
    assert isinstance(result.exception, AccessDenied) and result.exception.exit_code == 77
    [event] = seen
    assert (event.kind, event.details["user"], event.details["action"]) == (
        "access.denied",
        CAROL,
        "backup",
    )
    assert event.details["via_sudo"] is True and event.policy == "files"


def test_through_sudo_a_policies_file_the_person_could_write_is_refused(ws: Workspace) -> None:
    """The policies file decides the roles, state_dir and restic_binary of a process that
    runs as root: through sudo, a file (or folder) the person can write is never read."""
    access(ws, f'requesters = {{ "{ALICE}" = ["files"] }}\n')
    sudo = {**ws.env, "SUDO_USER": ALICE, "SUDO_UID": str(pwd.getpwnam(ALICE).pw_uid)}
    theirs = ws.root / "alice-owned"
    theirs.mkdir()
    evil = theirs / "evil.toml"
    # alice makes herself operator and brings her own "restic"
    evil.write_text(
        ws.config.read_text().replace(f'requesters = {{ "{ALICE}" = ["files"] }}\n', "")
        + f'operators = ["{ALICE}"]\n'
    )
    give_to(theirs, ALICE)
    outside = ws.root / "outside" / "x"
    denied = _as_root(
        ws, sudo, "--config", str(evil), "restore", "files", "--to", str(outside), check=77
    )
    line = one_line(denied.stderr)
    assert "only a policies file that root alone can change is honoured" in line
    assert f"owner uid {pwd.getpwnam(ALICE).pw_uid}" in line
    assert not outside.exists()
    # root's own file, but group-writable: refused too
    shared = ws.root / "shared.toml"
    shared.write_text(ws.config.read_text())
    shared.chmod(0o664)
    _as_root(ws, sudo, "--config", str(shared), "status", check=77)
    # root's file, root's folder: honoured
    _as_root(ws, sudo, "status")
