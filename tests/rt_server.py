"""A throwaway Request Tracker 5 on loopback for the ticket connector's tests.

The recipe of shared/testing.md ("Request Tracker 5 for the ticket connector"): one
RT_SiteConfig.pm and an SQLite database in a temporary directory (so /etc/request-tracker5
is never read), the `Fingerprint` custom field on the General queue, SLA enabled there,
a REST 2 token for root, and RT's standalone server on a free port of 127.0.0.1 in its own
session, stopped by a kill of that process group. Starting one costs several seconds, so
a test run starts one (per xdist worker) and shares it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import require
from servers import free_port

RT_LIB = Path("/usr/share/request-tracker5/lib")
RT_SERVER = Path("/usr/share/request-tracker5/libexec/rt-server")
RT_SETUP_DATABASE = "rt-setup-database-5"

# The SLA levels the tests (and docs/request-tracker.md) use: first response within 2, 4 and
# 8 hours of real time, the orchestrator's default deadlines.
SLA_MINUTES = {"urgent": 120, "important": 240, "general": 480}

SITE_CONFIG = """\
Set($rtname, 'orchestrator-test');
Set($Organization, 'orchestrator-test');
Set($DatabaseType, 'SQLite');
Set($DatabaseName, '{db}');
Set($WebDomain, '127.0.0.1');
Set($WebPort, {port});
Set($WebPath, '');
Set($WebBaseURL, 'http://127.0.0.1:{port}');
Set($MailCommand, 'testfile');
Set($BcryptCost, 4);
Set($MasonDataDir, '{root}/mason_data');
Set($MasonSessionDir, '{root}/session_data');
Set($LogToSyslog, undef);
Set($LogToSTDERR, 'warning');
Set(%ServiceAgreements, (
    Default => 'general',
    Levels => {{
{levels}
    }},
));
1;
"""

# Run once, after the database exists: the custom field, SLA on the queue and a token. The
# token goes to stdout only (never argv, never a file).
PREPARE_PL = """\
use strict;
use warnings;
use lib "{lib}";
use RT;
RT::LoadConfig();
RT::Init();

my $queue = RT::Queue->new(RT->SystemUser);
$queue->Load('General') or die "no General queue\\n";

my $cf = RT::CustomField->new(RT->SystemUser);
my ($ok, $msg) = $cf->Create(
    Name        => 'Fingerprint',
    Type        => 'Freeform',
    MaxValues   => 1,
    LookupType  => 'RT::Queue-RT::Ticket',
    Description => 'Fingerprint of the orchestrator problem this ticket is about',
);
die "custom field: $msg\\n" unless $ok;
($ok, $msg) = $cf->AddToObject($queue);
die "custom field on queue: $msg\\n" unless $ok;

($ok, $msg) = $queue->SetSLADisabled(0);
die "SLA on queue: $msg\\n" unless $ok;

my $root = RT::User->new(RT->SystemUser);
$root->Load('root') or die "no root user\\n";
my $token = RT::AuthToken->new(RT->SystemUser);
my ($id, $tmsg, $authstring) = $token->Create(Owner => $root->id, Description => 'tests');
die "token: $tmsg\\n" unless $id;
print "$authstring\\n";
"""


def rt_available() -> bool:
    return RT_SERVER.exists() and shutil.which(RT_SETUP_DATABASE) is not None


@dataclass
class RTServer:
    """A running RT: its base URL, root's REST 2 token and the queue the tests use."""

    root: Path
    port: int
    token: str = ""
    queue: str = "General"
    proc: subprocess.Popen[bytes] | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """RT reads only our configuration: the file and an empty directory beside it."""
        return {
            **os.environ,
            "RT_SITE_CONFIG": str(self.root / "RT_SiteConfig.pm"),
            "RT_SITE_CONFIG_DIR": str(self.root / "RT_SiteConfig.d"),
        }

    def write_config(self) -> None:
        levels = "\n".join(
            f"        '{name}' => {{ Response => {{ RealMinutes => {minutes} }} }},"
            for name, minutes in SLA_MINUTES.items()
        )
        (self.root / "RT_SiteConfig.d").mkdir(exist_ok=True)
        for sub in ("mason_data", "session_data"):
            (self.root / sub).mkdir(exist_ok=True)
        (self.root / "RT_SiteConfig.pm").write_text(
            SITE_CONFIG.format(
                db=self.root / "rt.sqlite", port=self.port, root=self.root, levels=levels
            )
        )

    def init_database(self) -> None:
        self._run([RT_SETUP_DATABASE, "--action", "init", "--skip-create"], "database")
        out = self._run(["perl", "-"], "prepare", stdin=PREPARE_PL.format(lib=RT_LIB))
        self.token = out.strip().splitlines()[-1]

    def _run(self, argv: list[str], what: str, stdin: str | None = None) -> str:
        started = time.monotonic()
        result = subprocess.run(
            argv,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        self.timings[what] = time.monotonic() - started
        if result.returncode != 0:
            raise RuntimeError(f"{what} failed (exit {result.returncode}): {result.stderr[-2000:]}")
        return result.stdout

    def start(self, timeout: float = 60) -> None:
        started = time.monotonic()
        self.proc = subprocess.Popen(
            # Two workers rather than Starlet's ten: the tests send one request at a time,
            # and each xdist worker starts its own RT.
            [str(RT_SERVER), "--port", str(self.port), "--max-workers", "2"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=(self.root / "rt-server.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() kills every worker
        )
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rt-server exited {self.proc.returncode}: see {self.log}")
            if self.answers():
                self.timings["server"] = time.monotonic() - started
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"rt-server did not answer within {timeout:.0f} s: see {self.log}")

    @property
    def log(self) -> Path:
        return self.root / "rt-server.log"

    def answers(self) -> bool:
        """REST 2 answers (any HTTP status: 401 without a token still means it is up)."""
        try:
            with urllib.request.urlopen(f"{self.url}/REST/2.0/", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None


def start_rt(root: Path) -> RTServer:
    """A fresh RT in `root`, answering on a free port; the caller stops it."""
    server = RTServer(root=root, port=free_port())
    server.write_config()
    server.init_database()
    server.start()
    return server


@pytest.fixture(scope="session", name="rt")
def rt_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RTServer]:
    """A running RT with the Fingerprint field and SLA on its General queue, and root's
    token; its whole process group is stopped when the session ends.

    A test module uses it with `from rt_server import rt_fixture`: a second conftest.py
    would shadow tests/conftest.py, which test modules import by that name. Tests share it
    and stay independent by using fingerprints of their own."""
    require(
        rt_available(),
        "request-tracker5, rt5-db-sqlite and rt5-standalone (scripts/setup.sh --with-rt)",
    )
    try:
        server = start_rt(tmp_path_factory.mktemp("rt"))
    except RuntimeError as exc:
        require(False, f"a running test Request Tracker: {exc}")
        raise
    yield server
    server.stop()


if __name__ == "__main__":  # by hand: python tests/rt_server.py DIR (Ctrl-C stops it)
    import sys
    import tempfile

    began = time.monotonic()
    rt = start_rt(Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="rt-")))
    print(f"{rt.url} queue {rt.queue} root {rt.root} in {time.monotonic() - began:.1f} s")
    print({k: round(v, 2) for k, v in rt.timings.items()})
    token_file = rt.root / "token"  # for curl by hand; the tests never write it
    token_file.touch(mode=0o600)
    token_file.write_text(rt.token)
    try:
        signal.pause()
    finally:
        rt.stop()
