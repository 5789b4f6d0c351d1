"""A repository on an SSH server, reached through restic's own `sftp:` backend.

restic does the storage work, running the `ssh` command built here. paramiko (imported
only in this module, and only when a connection is needed) does the preflight, the media
listings and the streaming of single files. Both verify the server's host key against
`known_hosts` and never accept an unknown one: a new or changed key is an error that
names the fingerprint, so an operator can compare it with the server's.
"""

from __future__ import annotations

import contextlib
import getpass
import io
import logging
import socket
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from orchestrator.audit.checkpoint import Extends, refuse_replacing
from orchestrator.errors import TargetError, UsageError
from orchestrator.policies.model import SftpTargetSpec
from orchestrator.restic import features
from orchestrator.restic.runner import Repository
from orchestrator.targets.base import (
    AUDIT_FILES,
    AUDIT_FOLDER,
    CONTENT_ADDRESSED,
    Probe,
    RepoFile,
)

if TYPE_CHECKING:
    import paramiko

HOST_KEY = "host_key"
AUTH = "auth"
WINDOW = 1 << 20  # bytes asked for at once when streaming: bounded memory, few round trips


class _UnknownHostKey(Exception):
    """Raised by our host key policy; carries the key the server offered."""

    def __init__(self, key: Any) -> None:
        super().__init__("unknown host key")
        self.key = key


class SftpTarget:
    read_parallelism = 4  # concurrent reads the media check may do (one SFTP channel each)

    def __init__(self, spec: SftpTargetSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.timeout = spec.connect_timeout
        self._lock = threading.Lock()
        self._client: paramiko.SSHClient | None = None
        self._local = threading.local()
        self._channels: list[Any] = []

    # -- restic --------------------------------------------------------------------------

    @property
    def destination(self) -> str:
        host = f"[{self.spec.host}]" if ":" in self.spec.host else self.spec.host
        return f"{self.spec.user}@{host}" if self.spec.user else host

    @property
    def url(self) -> str:
        return f"sftp:{self.destination}:{self.spec.path}"

    def ssh_command(self) -> list[str]:
        """The ssh argv restic runs: same identity, port and known_hosts as the preflight,
        host keys checked strictly, no prompts, and keep-alives so a dead server is noticed
        within about `connect_timeout` seconds instead of hanging the run."""
        spec = self.spec
        argv = ["ssh", "-p", str(spec.port)]
        if spec.identity_file:
            argv += ["-i", str(spec.identity_file), "-o", "IdentitiesOnly=yes"]
        if spec.known_hosts:
            argv += ["-o", f"UserKnownHostsFile={spec.known_hosts}"]
        interval = max(1, self.timeout // 3)
        argv += [
            "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes",
            "-o", f"ConnectTimeout={self.timeout}",
            "-o", f"ServerAliveInterval={interval}",
            "-o", "ServerAliveCountMax=3",
            spec.host if not spec.user else f"{spec.user}@{spec.host}",
            "-s", "sftp",
        ]  # fmt: skip
        return argv

    def repository(self, password: str) -> Repository:
        return Repository(
            url=self.url,
            password=password,
            label=self.name,
            options=(_restic_option("sftp.command", self.ssh_command(), self.name),),
        )

    def describe(self) -> str:
        return f"sftp://{self.destination}:{self.spec.port}{_slash(self.spec.path)}"

    # -- preflight -----------------------------------------------------------------------

    def preflight(self) -> None:
        """Connect (host key, credentials), and check the repository path is usable."""
        sftp = self._sftp()
        try:
            attrs = self._stat(sftp, self.spec.path)
        except FileNotFoundError:
            return  # restic creates it on `init`
        if attrs.st_mode is not None and not stat.S_ISDIR(attrs.st_mode):
            raise TargetError(
                f"target '{self.name}': {self.spec.path} on {self.spec.host} is not a directory",
                features.REPOSITORY_NOT_DIRECTORY,
            )

    def probe(self) -> Probe:
        """The full check for `target check`: preflight plus a write test and free space."""
        self.preflight()
        sftp = self._sftp()
        root = self.spec.path
        notes = [f"host key {self._host_fingerprint()} known", "key accepted"]
        with self._translated("checking the repository"):
            try:
                self._stat(sftp, f"{root}/config")
                initialised = True
            except FileNotFoundError:
                initialised = False
            try:
                self._stat(sftp, root)
                exists = True
            except FileNotFoundError:
                exists = False
            writable: bool | None = None
            if exists:
                probe = f"{root}/.orchestrator-probe-{uuid.uuid4().hex}"
                try:
                    with sftp.open(probe, "wb") as fh:
                        fh.write(b"probe")
                    sftp.remove(probe)
                    writable = True
                except PermissionError:
                    writable = False
            else:
                notes.append(f"{root} does not exist yet (restic creates it)")
            free = _statvfs_free(sftp, root if exists else ".")
        return Probe(
            initialised=initialised, writable=writable, free_bytes=free, notes=tuple(notes)
        )

    def publish_audit_checkpoint(
        self, checkpoint: str, public_key: str, extends: Extends | None = None
    ) -> bool:
        """Audit log (issue 16): next to the snapshots; never creates a repository."""
        sftp = self._sftp()
        root = self.spec.path
        with self._translated("publishing the audit checkpoint"):
            try:
                self._stat(sftp, f"{root}/config")
            except FileNotFoundError:
                return False
            there = f"{root}/{AUDIT_FOLDER}/{AUDIT_FILES[0]}"
            try:
                with sftp.open(there, "rb") as fh:
                    existing: str | None = fh.read().decode("utf-8", "replace")
            except FileNotFoundError:
                existing = None
        refuse_replacing(existing, checkpoint, f"{self.describe()} ({there})", extends)
        with self._translated("publishing the audit checkpoint"):
            with contextlib.suppress(OSError):
                sftp.mkdir(f"{root}/{AUDIT_FOLDER}")
            for name, text in zip(AUDIT_FILES, (checkpoint, public_key), strict=True):
                final = f"{root}/{AUDIT_FOLDER}/{name}"
                tmp = f"{root}/{AUDIT_FOLDER}/.{name}.{uuid.uuid4().hex}.tmp"
                with sftp.open(tmp, "wb") as fh:
                    fh.write(text.encode())
                sftp.posix_rename(tmp, final)
        return True

    # -- listings (no repository password needed) -----------------------------------------

    def list_files(self, folders: tuple[str, ...] = CONTENT_ADDRESSED) -> Iterator[RepoFile]:
        sftp = self._sftp()
        for folder in folders:
            yield from self._walk(sftp, folder)

    def _walk(self, sftp: Any, rel: str) -> Iterator[RepoFile]:
        with self._translated(f"listing {rel}"):
            try:
                entries = sftp.listdir_attr(f"{self.spec.path}/{rel}")
            except FileNotFoundError:
                return
        for entry in sorted(entries, key=lambda e: e.filename):
            path = f"{rel}/{entry.filename}"
            if stat.S_ISDIR(entry.st_mode or 0):
                yield from self._walk(sftp, path)
            elif stat.S_ISREG(entry.st_mode or 0):
                yield RepoFile(path, int(entry.st_size or 0))

    @contextlib.contextmanager
    def open_file(self, path: str) -> Iterator[BinaryIO]:
        """Stream one file in windows of WINDOW bytes (pipelined reads, bounded memory).
        A missing file raises FileNotFoundError; a lost connection raises TargetError."""
        sftp = self._sftp()
        with self._translated(f"opening {path}"):
            fh = sftp.open(f"{self.spec.path}/{path}", "rb")
        try:
            yield _Reader(fh, self)  # type: ignore[misc]
        finally:
            with contextlib.suppress(Exception):
                fh.close()

    def close(self) -> None:
        with self._lock:
            for channel in self._channels:
                with contextlib.suppress(Exception):
                    channel.close()
            self._channels.clear()
            if self._client is not None:
                self._client.close()
                self._client = None

    # -- paramiko ------------------------------------------------------------------------

    def _sftp(self) -> Any:
        """One SFTP channel per thread over one SSH connection (paramiko's SFTPClient is
        not meant to be shared by threads; the transport is)."""
        sftp = getattr(self._local, "sftp", None)
        if sftp is not None and not sftp.sock.closed:
            return sftp
        client = self._connect()
        with self._translated("opening an SFTP session"):
            sftp = client.open_sftp()
            sftp.get_channel().settimeout(self.timeout)
        with self._lock:
            self._channels.append(sftp)
        self._local.sftp = sftp
        return sftp

    def _connect(self) -> paramiko.SSHClient:
        with self._lock:
            alive = self._client is not None and self._client.get_transport()
            if alive and alive.is_active():
                return self._client  # type: ignore[return-value]
            self._client = self._new_client()
            return self._client

    def _new_client(self) -> paramiko.SSHClient:
        import paramiko

        # paramiko's transport thread logs its own tracebacks; the TargetError raised here
        # says it in one sentence. Keep them for -vv (debug) only.
        if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
            logging.getLogger("paramiko").setLevel(logging.CRITICAL)

        spec = self.spec
        where = f"target '{self.name}'"
        client = paramiko.SSHClient()
        if spec.known_hosts:
            if not spec.known_hosts.is_file():
                raise TargetError(
                    f"{where}: known_hosts file {spec.known_hosts} does not exist "
                    "(host keys are verified, never accepted blindly)",
                    HOST_KEY,
                )
            client.load_host_keys(str(spec.known_hosts))
        else:
            client.load_system_host_keys()
        if spec.identity_file and not spec.identity_file.is_file():
            raise TargetError(f"{where}: identity file {spec.identity_file} does not exist", AUTH)

        class Reject(paramiko.MissingHostKeyPolicy):
            def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
                raise _UnknownHostKey(key)

        client.set_missing_host_key_policy(Reject())
        with self._translated("connecting"):
            client.connect(
                spec.host,
                port=spec.port,
                username=spec.user or getpass.getuser(),
                key_filename=str(spec.identity_file) if spec.identity_file else None,
                look_for_keys=spec.identity_file is None,
                allow_agent=spec.identity_file is None,
                timeout=self.timeout,
                banner_timeout=self.timeout,
                auth_timeout=self.timeout,
                channel_timeout=self.timeout,
            )
            transport = client.get_transport()
            if transport is not None:
                transport.set_keepalive(max(1, self.timeout // 3))
        return client

    def _host_fingerprint(self) -> str:
        client = self._connect()
        transport = client.get_transport()
        key = transport.get_remote_server_key() if transport else None
        return _fingerprint(key) if key is not None else "unknown"

    def _stat(self, sftp: Any, path: str) -> Any:
        with self._translated(f"reading {path}"):
            return sftp.stat(path)

    @contextlib.contextmanager
    def _translated(self, doing: str) -> Iterator[None]:
        """paramiko's and the socket's exceptions become one TargetError sentence naming
        the target; FileNotFoundError and PermissionError pass (callers decide)."""
        import paramiko

        spec = self.spec
        where = f"target '{self.name}' ({spec.host}:{spec.port})"
        known = spec.known_hosts or "~/.ssh/known_hosts"
        started = time.monotonic()
        try:
            yield
        except (FileNotFoundError, PermissionError, TargetError):
            raise
        except _UnknownHostKey as exc:
            raise TargetError(
                f"{where}: the server's host key {_fingerprint(exc.key)} is not in {known}; "
                "it is never accepted automatically. If the fingerprint is the server's, add "
                f"the key with: ssh-keyscan -p {spec.port} {spec.host} >> {known}",
                HOST_KEY,
            ) from None
        except paramiko.BadHostKeyException as exc:
            raise TargetError(
                f"{where}: the server's host key CHANGED: it offered {_fingerprint(exc.key)}, "
                f"{known} expects {_fingerprint(exc.expected_key)}. Someone may be "
                "intercepting the connection; if the server was really re-keyed, replace "
                f"its line in {known}",
                HOST_KEY,
            ) from None
        except paramiko.PasswordRequiredException:
            raise TargetError(
                f"{where}: identity file {spec.identity_file} needs a passphrase; "
                "use a key without one for unattended backups",
                AUTH,
            ) from None
        except paramiko.AuthenticationException:
            who = spec.user or getpass.getuser()
            key = spec.identity_file or "the default keys"
            raise TargetError(
                f"{where}: the server refused the key ({key}) for user '{who}'", AUTH
            ) from None
        except TimeoutError:
            raise TargetError(
                f"{where}: no answer within {self.timeout} s while {doing}", features.TIMEOUT
            ) from None
        except socket.gaierror as exc:
            raise TargetError(
                f"{where}: host name '{spec.host}' cannot be resolved ({exc.strerror})",
                features.NETWORK,
            ) from None
        except paramiko.ssh_exception.NoValidConnectionsError:
            raise TargetError(
                f"{where}: connection refused (is the SSH server running on port {spec.port}?)",
                features.NETWORK,
            ) from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            if time.monotonic() - started >= self.timeout * 0.95:
                # A silent server: paramiko reports the banner timeout as a lost session.
                raise TargetError(
                    f"{where}: no answer within {self.timeout} s while {doing}",
                    features.TIMEOUT,
                ) from None
            text = str(exc) or type(exc).__name__
            raise TargetError(
                f"{where}: SSH failed while {doing}: {text}", features.NETWORK
            ) from None


class _Reader(io.RawIOBase):
    """A read-only stream over an SFTP file, fetching WINDOW bytes at a time (pipelined)."""

    def __init__(self, fh: Any, target: SftpTarget) -> None:
        super().__init__()
        self._fh = fh
        self._target = target
        self._pos = 0
        with target._translated("reading a file's size"):
            self._size = int(fh.stat().st_size or 0)

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self._size - self._pos
        size = min(size, WINDOW, self._size - self._pos)
        if size <= 0:
            return b""
        with self._target._translated("reading"):
            data = b"".join(self._fh.readv([(self._pos, size)]))
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _fingerprint(key: Any) -> str:
    """OpenSSH's form: 'ssh-ed25519 SHA256:...' (what `ssh-keygen -l` prints)."""
    return f"{key.get_name()} {key.fingerprint}"


def _statvfs_free(sftp: Any, path: str) -> int | None:
    """Free bytes from OpenSSH's statvfs extension; None where the server lacks it."""
    from paramiko.sftp import CMD_EXTENDED, CMD_EXTENDED_REPLY

    try:
        kind, msg = sftp._request(CMD_EXTENDED, "statvfs@openssh.com", path)
    except (OSError, EOFError):
        return None
    if kind != CMD_EXTENDED_REPLY:
        return None
    _bsize, frsize, _blocks, _bfree, bavail = (msg.get_int64() for _ in range(5))
    return int(bavail * frsize)


def _slash(path: str) -> str:
    return path if path.startswith("/") else f"/~/{path}"


def _restic_option(key: str, argv: list[str], target: str) -> str:
    """`key=value` for restic's `-o`. restic splits the value like a shell (double quotes
    only) and parses `-o` itself as CSV, so a value with quotes or commas is CSV-quoted."""
    parts = []
    for arg in argv:
        if '"' in arg or "\\" in arg:
            raise UsageError(f"target '{target}': {arg!r} must not contain '\"' or '\\'")
        parts.append(f'"{arg}"' if any(c.isspace() for c in arg) else arg)
    option = f"{key}={' '.join(parts)}"
    if '"' in option or "," in option:
        option = '"' + option.replace('"', '""') + '"'
    return option
