"""Real servers on loopback for the remote-target tests: an OpenSSH sshd and a moto S3.

Each is started once per test run by a session fixture (see tests/conftest.py), on a
free port of 127.0.0.1, and stopped by its own pid; nothing is left behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def ssh_available() -> bool:
    return (
        os.path.exists(SSHD)
        and shutil.which("ssh") is not None
        and shutil.which("ssh-keygen") is not None
    )


@dataclass
class Sshd:
    """A running sshd that accepts `client_key` for the current user on `port`."""

    root: Path
    port: int
    user: str
    client_key: Path
    known_hosts: Path
    host_key: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def host_fingerprint(self) -> str:
        """OpenSSH's SHA256 fingerprint of the host key (what the errors must show)."""
        out = subprocess.run(
            ["ssh-keygen", "-l", "-f", f"{self.host_key}.pub"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return out.split()[1]

    def start(self) -> None:
        config = self.root / "sshd_config"
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=(self.root / "sshd.log").open("ab"),
        )
        if not wait_for_port(self.port):
            self.stop()
            raise RuntimeError(f"sshd did not listen on port {self.port}: see {self.root}/sshd.log")

    def stop(self) -> None:
        """Stop our sshd (by pid) and the session processes it forked for clients."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill_sessions(self) -> None:
        """Kill every process sshd forked for clients: the session processes and the
        sftp-server under them (a server dying under a client). OpenSSH 9.8+ (Debian 13)
        runs a session as `sshd-session` with a child of its own that carries the data:
        killing only sshd's direct children left that one serving the client."""
        if self.proc is None:
            return
        table = subprocess.run(
            ["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True, check=False
        ).stdout
        children: dict[int, list[int]] = {}
        for line in table.splitlines():
            pid, ppid = (int(x) for x in line.split())
            children.setdefault(ppid, []).append(pid)
        doomed, todo = [], list(children.get(self.proc.pid, []))
        while todo:
            pid = todo.pop()
            doomed.append(pid)
            todo += children.get(pid, [])
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def make_sshd(root: Path) -> Sshd:
    """Write keys, authorized_keys, known_hosts and an sshd_config under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    host_key = root / "ssh_host_ed25519_key"
    client_key = root / "id_ed25519"
    for key in (host_key, client_key):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(key)],
            check=True,
        )
    authorized = root / "authorized_keys"
    shutil.copy(f"{client_key}.pub", authorized)
    port = free_port()
    host_pub = Path(f"{host_key}.pub").read_text().split()
    known_hosts = root / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    (root / "sshd_config").write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {host_key}",
                f"PidFile {root / 'sshd.pid'}",
                f"AuthorizedKeysFile {authorized}",
                "StrictModes no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "PermitRootLogin prohibit-password",
                "UsePAM no",
                "Subsystem sftp internal-sftp",
                "MaxStartups 100",
                "MaxSessions 50",
                "LogLevel ERROR",
                "",
            ]
        )
    )
    import getpass

    return Sshd(root, port, getpass.getuser(), client_key, known_hosts, host_key)


def sshd_privsep_ready() -> bool:
    """sshd refuses to start without its privilege-separation directory."""
    path = Path("/run/sshd")
    if path.is_dir():
        return True
    try:
        path.mkdir(mode=0o755)
    except OSError:
        return False
    return True


@dataclass
class S3Server:
    """A moto S3 server; any key pair is accepted, buckets are created by the tests."""

    endpoint: str
    server: object

    def stop(self) -> None:
        self.server.stop()  # type: ignore[attr-defined]


def start_moto() -> S3Server:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return S3Server(f"http://{host}:{port}", server)


def s3_client(endpoint: str, key_id: str = "testing", secret: str = "testing") -> object:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )
