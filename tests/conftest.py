"""Shared fixtures: real restic, real repositories, the installed command.

`restic init` costs seconds (it calibrates the key derivation), so one template
repository is initialised per test run and copied for each test that needs a
fresh one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cheap_key import cheapen_keys

# Which restic the whole test run uses: ORCHESTRATOR_TEST_RESTIC (a path to a restic
# binary, e.g. tools/restic-0.18.0/restic from scripts/fetch-restic.sh) or restic on PATH.
TEST_RESTIC_ENV = "ORCHESTRATOR_TEST_RESTIC"
# PATH as the machine has it, before the chosen restic is put first (for the tests of the
# scripts, which must see the machine's own restic).
SYSTEM_PATH = os.environ.get("PATH", "")


def _chosen_restic() -> str | None:
    """The chosen binary, put first on PATH for this process and every child.

    The product's default `restic_binary` is "restic" looked up on PATH, so putting the
    chosen binary's directory first makes the orchestrator under test, the daemon, the
    witness `restic()` and every policies.toml the tests write use it, with no test
    having to name it."""
    chosen = os.environ.get(TEST_RESTIC_ENV)
    if not chosen:
        return shutil.which("restic")
    path = Path(chosen).resolve()
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise pytest.UsageError(f"{TEST_RESTIC_ENV}={chosen}: not an executable file")
    directory = path.parent
    if path.name != "restic":  # PATH finds "restic" only: give it that name
        import tempfile

        directory = Path(tempfile.mkdtemp(prefix="test-restic-"))
        (directory / "restic").symlink_to(path)
    os.environ["PATH"] = f"{directory}{os.pathsep}{os.environ.get('PATH', '')}"
    return str(directory / "restic")


RESTIC = _chosen_restic()

PASSWORD = "correct horse battery staple 42"
SECRET_ENV = "ORCHESTRATOR_SECRET_REPO_TEST"
ORCHESTRATOR = [sys.executable, "-m", "orchestrator"]


def require(condition: bool, what: str) -> None:
    """A test that needs a real part fails under CI when it is missing; elsewhere it skips."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"required for this test and missing under CI: {what}")
    pytest.skip(f"missing: {what}")


@pytest.fixture(scope="session")
def restic_bin() -> str:
    """The restic every test uses (see RESTIC above)."""
    require(RESTIC is not None, "restic on PATH (scripts/setup.sh installs it)")
    return RESTIC  # type: ignore[return-value]


def pytest_report_header() -> str:
    """Say which restic ran the tests: the two-version pass must be visible in the log."""
    if RESTIC is None:
        return "restic: none found"
    out = subprocess.run([RESTIC, "version"], capture_output=True, text=True, check=False)
    return f"restic: {RESTIC} ({out.stdout.strip()})"


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory: pytest.TempPathFactory, restic_bin: str) -> Path:
    repo = tmp_path_factory.mktemp("template") / "repo"
    subprocess.run(
        [restic_bin, "init", "--repo", str(repo)],
        env={**os.environ, "RESTIC_PASSWORD": PASSWORD},
        check=True,
        capture_output=True,
    )
    cheapen_keys(repo, PASSWORD)  # each restic process then skips ~0.6 s of key derivation
    return repo


def restic(repo: Path | str, *args: str) -> subprocess.CompletedProcess[str]:
    """restic itself, as a witness independent of the orchestrator's code."""
    return subprocess.run(
        [RESTIC or "restic", "--repo", str(repo), "--no-cache", *args],
        env={**os.environ, "RESTIC_PASSWORD": PASSWORD},
        capture_output=True,
        text=True,
        check=False,
    )


def restic_snapshots(repo: Path | str) -> list[dict]:
    out = restic(repo, "snapshots", "--json")
    assert out.returncode == 0, out.stderr
    return sorted(json.loads(out.stdout), key=lambda s: s["time"])


def tag(snapshot: dict, key: str) -> str | None:
    for t in snapshot.get("tags") or []:
        if t.startswith(key + ":"):
            return t.split(":", 1)[1]
    return None


_VALUED_OPTIONS = {"--repo", "-r", "--option", "-o", "--from-repo", "--password-file"}


def counting_restic(ws: Workspace) -> Path:
    """Put a wrapper of the real restic first on the workspace's PATH: it appends each
    process's argv (words separated by 0x1f) to the returned log, then execs restic. The
    count of restic processes is then what the operating system saw."""
    real = shutil.which("restic", path=ws.env.get("PATH"))
    assert real, "restic is not on PATH"
    wrapper_dir = ws.root / "counting-bin"
    wrapper_dir.mkdir(exist_ok=True)
    log = ws.root / "restic-argv.log"
    wrapper = wrapper_dir / "restic"
    wrapper.write_text(
        f"#!/bin/sh\n(IFS=$(printf '\\037'); printf '%s\\n' \"$*\") >> {log}\nexec {real} \"$@\"\n"
    )
    wrapper.chmod(0o755)
    ws.env["PATH"] = f"{wrapper_dir}{os.pathsep}{ws.env.get('PATH', '')}"
    return log


def restic_verbs(log: Path) -> list[str]:
    """The restic command (backup, restore, snapshots, ...) of each logged process."""
    found = []
    for line in log.read_text().splitlines() if log.exists() else ():
        skip = False
        for word in line.split("\x1f"):
            if skip:
                skip = False
            elif word in _VALUED_OPTIONS:
                skip = True
            elif not word.startswith("-"):
                found.append(word)
                break
    return found


def repo_locks(ws: Workspace) -> list[str]:
    return sorted(p.name for p in (ws.repo / "locks").iterdir())


def restic_holding_lock(ws: Workspace) -> subprocess.Popen[bytes]:
    """A plain restic (not ours) holding its lock for as long as we keep its stdin open."""
    proc = subprocess.Popen(
        ["restic", "--repo", str(ws.repo), "--no-cache", "backup", "--stdin"],
        env={**os.environ, "RESTIC_PASSWORD": PASSWORD},
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not repo_locks(ws):
        assert time.monotonic() < deadline, "restic never took its lock"
        assert proc.poll() is None, "restic stopped before it took its lock"
        time.sleep(0.05)
    time.sleep(0.5)  # past restic's own start-up window
    return proc


@contextmanager
def paused(pid: int) -> Iterator[None]:
    """Hold process `pid` still (SIGSTOP) while the test arranges an interrupt, then let it
    go (SIGCONT). A test that interrupts restic must not race it: a stopped restic cannot
    finish its backup between "the test saw it working" and "the signal arrived"."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 10
    while _state(pid) not in ("T", "t", "Z", "") and time.monotonic() < deadline:
        time.sleep(0.005)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def signal_pending(pid: int, signum: int) -> bool:
    """`signum` waits for delivery to `pid` (sent while it is stopped)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    bit = 1 << (signum - 1)
    for line in status.splitlines():
        if line.startswith(("SigPnd:", "ShdPnd:")) and int(line.split()[1], 16) & bit:
            return True
    return False


def wait_for_pending(pid: int, signum: int, seconds: float = 30) -> None:
    """Wait until the orchestrator has forwarded `signum` to the (stopped) restic `pid`."""
    deadline = time.monotonic() + seconds
    while not signal_pending(pid, signum):
        if _state(pid) in ("", "Z"):
            return  # it is gone: nothing more to wait for
        assert time.monotonic() < deadline, f"signal {signum} never reached process {pid}"
        time.sleep(0.01)


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat[stat.rindex(")") + 2]


@dataclass
class Workspace:
    """A directory with policies.toml, source data, a state dir and a local repository."""

    root: Path
    env: dict[str, str]

    @property
    def repo(self) -> Path:
        return self.root / "repos" / "local"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def config(self) -> Path:
        return self.root / "policies.toml"

    @property
    def catalog(self) -> Path:
        return self.root / "var" / "catalog.sqlite"

    def write_policies(self, body: str) -> None:
        self.config.write_text(textwrap.dedent(body))

    def orc(
        self, *args: str, check: int | None = 0, timeout: float = 300, **kw: object
    ) -> subprocess.CompletedProcess[str]:
        """The installed command, as a user runs it."""
        result = subprocess.run(
            [*ORCHESTRATOR, "--config", str(self.config), *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kw,  # type: ignore[arg-type]
        )
        if check is not None:
            assert result.returncode == check, (
                f"exit {result.returncode} != {check}\nstdout:\n{result.stdout}\n"
                f"stderr:\n{result.stderr}"
            )
        return result

    def orc_json(self, *args: str, check: int | None = 0) -> dict:
        return json.loads(self.orc("--json", *args, check=check).stdout)

    def query(self, sql: str, *params: object) -> list[tuple]:
        """Rows of the catalog's sqlite file, read as any other program would."""
        db = sqlite3.connect(self.catalog)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()

    def use_template(self, template: Path) -> None:
        self.repo.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(template, self.repo)


LOCAL_HEAD = """\
[orchestrator]
state_dir = "var"
timezone = "UTC"

[targets.local]
kind = "local"
path = "repos/local"
password = "secret:repo-test"
"""


def local_head(**settings: int | str) -> str:
    """The [orchestrator] table and the `local` target (the workspace's repository) that
    most tests' policies begin with; `settings` adds keys to [orchestrator]."""
    extra = "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items())
    return LOCAL_HEAD.replace('timezone = "UTC"\n', f'timezone = "UTC"\n{extra}', 1)


BASIC_POLICIES = (
    LOCAL_HEAD
    + """
[policies.files]
importance = "critical"
sources = ["data"]
exclude = ["*.tmp"]
targets = ["local"]
daily   = { at = "01:30", level = "incremental" }
weekly  = { on = "sun", at = "02:00", level = "differential" }
monthly = { day = 1, at = "03:00", level = "full" }
rpo_hours = 26
"""
)


@pytest.fixture
def workspace(tmp_path: Path, template_repo: Path) -> Iterator[Workspace]:
    """A fresh workspace whose local repository is a copy of the template."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCHESTRATOR_", "RESTIC_"))}
    env[SECRET_ENV] = PASSWORD
    ws = Workspace(tmp_path, env)
    ws.use_template(template_repo)
    ws.data.mkdir()
    (ws.data / "a.txt").write_text("alpha\n")
    (ws.data / "sub").mkdir()
    (ws.data / "sub" / "b.bin").write_bytes(os.urandom(50_000))
    ws.write_policies(BASIC_POLICIES)
    yield ws


@pytest.fixture
def make_file() -> Callable[[Path, int], Path]:
    def make(path: Path, size: int) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            remaining = size
            while remaining > 0:
                chunk = min(remaining, 1 << 20)
                fh.write(os.urandom(chunk))
                remaining -= chunk
        return path

    return make


# -- remote targets: a real sshd and a real S3 (moto) on loopback, once per test run --------


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """An OpenSSH server on 127.0.0.1 accepting a generated key; see tests/servers.py."""
    import servers  # tests/servers.py: pytest puts tests/ on sys.path for this conftest

    require(servers.ssh_available(), "openssh-server and openssh-client (scripts/setup.sh)")
    require(servers.sshd_privsep_ready(), "/run/sshd (sshd's privilege separation directory)")
    server = servers.make_sshd(tmp_path_factory.mktemp("sshd"))
    try:
        server.start()
    except RuntimeError as exc:
        require(False, f"a running test sshd: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[object]:
    """A moto S3 server on 127.0.0.1 (any key pair works unless a test turns auth on)."""
    import logging

    try:
        import servers

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        server = servers.start_moto()
    except ImportError as exc:
        require(False, f"moto[server] (pip install -e '.[test]'): {exc}")
    yield server
    server.stop()
