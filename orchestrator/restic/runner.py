"""The one owner of restic subprocesses.

Passwords travel through a pipe named by RESTIC_PASSWORD_FILE=/dev/fd/N (and, for
`copy` and `init --copy-chunker-params`, the source repository's through a second pipe
named by RESTIC_FROM_PASSWORD_FILE): never argv, never a file on disk, never the
environment. Logged command lines and any
text that leaves this module pass through `mask()`. Interrupts reach restic as
SIGINT (SIGTERM would leave a stale lock), and restic runs in its own session so
that the terminal's Ctrl-C is handled here, once, in one way.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import IO, Any

from orchestrator.errors import CancelledError, ResticError
from orchestrator.restic import features, version_cache
from orchestrator.restic.features import Version

log = logging.getLogger("orchestrator.restic")

# How long restic gets to remove its lock and exit after SIGINT.
INTERRUPT_GRACE_SECONDS = 30.0

# Verbs that never take a repository lock.
_LOCK_FREE = frozenset({"init", "unlock", "version"})

# Never inherited by restic: our own settings, and ORCHESTRATOR_SECRET_* values, which
# /proc/<pid>/environ would otherwise show to anyone who may inspect restic.
_WITHHELD_ENV = ("RESTIC_", "ORCHESTRATOR_")


@dataclass(frozen=True)
class Repository:
    """How to reach one repository. `password` and `env` values never reach argv or logs."""

    url: str
    password: str = field(repr=False)
    label: str = ""
    options: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    def secrets(self) -> list[str]:
        return [self.password, *self.env.values()]


@dataclass(frozen=True)
class Completed:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    kind: str | None  # None when restic succeeded

    @property
    def ok(self) -> bool:
        return self.kind is None


def mask(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret value in text; short or empty values are left (they'd mask noise)."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


# CSI (`ESC[2K`, colours), OSC, other escapes, then C0 controls but tab and newline.
_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|\x1b[@-_]"
    r"|[\x00-\x08\x0b-\x1f\x7f]"
)


def strip_control(text: str) -> str:
    """restic's terminal control sequences (its progress line starts with `ESC[2K`) never
    reach the catalog, events or a person's screen: removed where restic's text enters."""
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def last_error_line(stderr: str) -> str:
    """restic's most telling line: the last 'Fatal:' one, else the last non-empty one that
    is neither part of a Go stack trace (restic 0.14 prints one after `id ... not found in
    repository`) nor restic's advice about `unlock`. A panic is named as a crash."""
    lines = message_lines(stderr)
    panic = [ln for ln in lines if ln.startswith("panic: ")]
    if panic:
        return "restic crashed: " + panic[0].removeprefix("panic: ")
    fatal = [ln for ln in lines if ln.startswith("Fatal:")]
    chosen = fatal[-1] if fatal else (lines[-1] if lines else "no output")
    return chosen.removeprefix("Fatal: ")


# Follow-up lines of restic's lock message (the holder is on the line before them).
_ADVICE = (
    "the `unlock` command can be used to remove stale locks",
    "storage ID ",
    "lock was created at ",
)


def message_lines(stderr: str) -> list[str]:
    """restic's message lines, stripped, without Go stack frames and advice.

    restic 0.17+ with `--json` wraps its last error in an `exit_error` document: its
    message counts as lines of its own."""
    raw: list[str] = []
    for line in stderr.splitlines():
        if line.startswith("{") and "exit_error" in line:
            with contextlib.suppress(ValueError, AttributeError):
                doc = json.loads(line)
                if doc.get("message_type") == "exit_error":
                    raw += str(doc.get("message", "")).splitlines()
                    continue
        raw.append(line)
    kept = []
    for i, line in enumerate(raw):
        following = raw[i + 1] if i + 1 < len(raw) else ""
        if _is_stack_frame(line, following) or line.strip().startswith(_ADVICE) or not line.strip():
            continue
        kept.append(line.strip())
    return kept


def _is_stack_frame(line: str, following: str) -> bool:
    """A Go stack trace line: `\tfile.go:12 +0x1f`, `goroutine 1 [running]:`, or a
    function name (no spaces) whose next line is its tab-indented file position."""
    stripped = line.strip()
    return (
        line.startswith("\t")
        or stripped.startswith("goroutine ")
        or bool(_GO_FILE_POSITION.search(stripped))
        or (following.startswith("\t") and " " not in stripped)
    )


_GO_FILE_POSITION = re.compile(r"\.(go|s):\d+( \+0x[0-9a-f]+)?$")


class Runner:
    """Runs restic; the version is asked once per binary (cached in `cache_dir`)."""

    def __init__(
        self,
        binary: str = "restic",
        timeout_seconds: float | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        self.binary = binary
        self.timeout_seconds = timeout_seconds
        self.cache_dir = cache_dir

    @cached_property
    def version(self) -> Version:
        key = version_cache.binary_key(self.binary)
        known = version_cache.cached(self.cache_dir, key)
        if known is not None:
            return Version.parse(known)
        try:
            out = subprocess.run(
                [self.binary, "version"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
                env={k: v for k, v in os.environ.items() if not k.startswith(_WITHHELD_ENV)},
            )
        except FileNotFoundError:
            raise ResticError(
                f"restic is not installed (looked for '{self.binary}'); "
                "run scripts/setup.sh or install the Debian package 'restic'"
            ) from None
        version_cache.remember(self.cache_dir, key, out.stdout)
        return Version.parse(out.stdout)

    def _prepare(
        self, repo: Repository, args: list[str], verb: str, source: Repository | None = None
    ) -> tuple[list[str], dict[str, str], tuple[int, ...], list[str]]:
        """argv, environment and the read ends of the password pipes for one restic process.

        The password is written into a pipe before restic starts (it fits the pipe
        buffer), so restic reads it from /dev/fd/N and it never touches argv, the
        environment or the disk. `source` (for `copy --from-repo`) gets a second pipe.
        The caller closes the returned fds after spawning.
        """
        options, extra_env = _merged(repo, source)
        argv = [self.binary, "--repo", repo.url, "--no-cache"]
        for opt in options:
            argv += ["--option", opt]
        argv += args
        if source is not None:
            argv += ["--from-repo", source.url]
        secrets = repo.secrets() + (source.secrets() if source is not None else [])
        log.info("%s: %s", verb, mask(" ".join(argv), secrets))
        env = {k: v for k, v in os.environ.items() if not k.startswith(_WITHHELD_ENV)}
        env.update(extra_env)
        fds = [_password_pipe(repo.password)]
        env["RESTIC_PASSWORD_FILE"] = f"/dev/fd/{fds[0]}"
        if source is not None:
            fds.append(_password_pipe(source.password))
            env["RESTIC_FROM_PASSWORD_FILE"] = f"/dev/fd/{fds[1]}"
        env["RESTIC_PROGRESS_FPS"] = "0.2"
        env["TZ"] = "UTC"  # one time zone for `--time` and for what restic prints
        return argv, env, tuple(fds), secrets

    def _spawn(
        self, argv: list[str], env: dict[str, str], fds: tuple[int, ...], stdout: Any, stderr: Any
    ) -> subprocess.Popen[bytes]:
        """Start restic in its own session (Ctrl-C is ours to forward, as SIGINT)."""
        try:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                env=env,
                pass_fds=fds,
                start_new_session=True,
                preexec_fn=functools.partial(_interrupt_when_parent_dies, os.getpid()),
            )
        except FileNotFoundError:
            raise ResticError(f"restic is not installed (looked for '{self.binary}')") from None
        finally:
            for fd in fds:
                os.close(fd)

    def _stop(self, proc: subprocess.Popen[bytes], repo: Repository, args: list[str]) -> None:
        """Interrupt restic, then remove the lock it may have left: restic 0.14 stopped
        while it takes its lock exits without removing it (measured: SIGINT 0.35-0.6 s
        after start). `unlock` removes only stale locks (a dead process on this host, or
        older than 30 minutes), never a live run's. A second Ctrl-C skips it."""
        _interrupt(proc)
        if args[0] in _LOCK_FREE or "--no-lock" in args:
            return
        with contextlib.suppress(Exception, KeyboardInterrupt):
            self.run(repo, ["unlock"], timeout_seconds=INTERRUPT_GRACE_SECONDS)

    def run(
        self,
        repo: Repository,
        args: list[str],
        *,
        timeout_seconds: float | None = None,
        ok_codes: tuple[int, ...] = (0,),
        source: Repository | None = None,
    ) -> Completed:
        """Run `restic -r URL args...` (with `--from-repo` when `source` is given); returns
        a Completed whose `kind` classifies failure."""
        version = self.version
        argv, env, fds, secrets = self._prepare(repo, args, "running", source)
        started = time.monotonic()
        # Files, not pipes: if we are killed (-9), restic's next write to a pipe nobody reads
        # would kill it with SIGPIPE before it removes its lock.
        with tempfile.TemporaryFile() as outfile, tempfile.TemporaryFile() as errfile:
            proc = self._spawn(argv, env, fds, outfile, errfile)
            limit = timeout_seconds if timeout_seconds is not None else self.timeout_seconds
            timed_out = disk_full = False
            try:
                disk_full = _wait_failing_fast(proc, errfile, limit)
            except subprocess.TimeoutExpired:
                timed_out = True
                self._stop(proc, repo, args)
            except KeyboardInterrupt:
                self._stop(proc, repo, args)
                raise CancelledError("interrupted: restic was stopped cleanly (SIGINT)") from None
            stdout, stderr = (strip_control(_read_text(f)) for f in (outfile, errfile))
        seconds = time.monotonic() - started
        stderr = features.plain_errors(mask(stderr, secrets))
        if timed_out:
            kind: str | None = features.TIMEOUT
        elif disk_full:
            kind = features.DISK_FULL
        elif proc.returncode in ok_codes:
            kind = None
        else:
            kind = features.classify(version, proc.returncode, stderr)
        if kind:  # callers decide whether this is an error (a missing repository may be expected)
            log.info(
                "restic %s exited %s (%s): %s",
                args[0],
                proc.returncode,
                kind,
                last_error_line(stderr),
            )
        return Completed(tuple(args), proc.returncode, stdout, stderr, seconds, kind)

    def stream(
        self,
        repo: Repository,
        args: list[str],
        sink: Callable[[bytes], None],
        *,
        chunk_size: int = 1 << 20,
        timeout_seconds: float | None = None,
    ) -> Completed:
        """Like `run`, but restic's binary stdout goes to `sink` chunk by chunk (e.g. `dump`
        into a hash): bounded memory whatever the size. `Completed.stdout` is empty."""
        version = self.version
        argv, env, fds, secrets = self._prepare(repo, args, "streaming")
        started = time.monotonic()
        limit = timeout_seconds if timeout_seconds is not None else self.timeout_seconds
        with tempfile.TemporaryFile() as errfile:  # a file, so a chatty stderr never blocks
            proc = self._spawn(argv, env, fds, subprocess.PIPE, errfile)
            timer = threading.Timer(limit, proc.send_signal, (signal.SIGINT,)) if limit else None
            if timer:
                timer.start()
            try:
                assert proc.stdout is not None
                while chunk := proc.stdout.read(chunk_size):
                    sink(chunk)
                proc.wait()
            except KeyboardInterrupt:
                self._stop(proc, repo, args)
                raise CancelledError("interrupted: restic was stopped cleanly (SIGINT)") from None
            except BaseException:
                _interrupt(proc)
                raise
            finally:
                if timer:
                    timer.cancel()
            errfile.seek(0)
            stderr = features.plain_errors(
                mask(strip_control(errfile.read().decode(errors="replace")), secrets)
            )
        seconds = time.monotonic() - started
        timed_out = bool(limit) and seconds >= (limit or 0) and proc.returncode != 0
        if timed_out:
            kind: str | None = features.TIMEOUT
        elif proc.returncode == 0:
            kind = None
        else:
            kind = features.classify(version, proc.returncode, stderr)
        return Completed(tuple(args), proc.returncode, "", stderr, seconds, kind)


def _password_pipe(password: str) -> int:
    """The read end of a pipe holding `password` (written whole: it fits the pipe buffer)."""
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, password.encode() + b"\n")
    finally:
        os.close(write_fd)
    return read_fd


def _merged(repo: Repository, source: Repository | None) -> tuple[tuple[str, ...], dict[str, str]]:
    """restic 0.14 has one set of `-o` options and one environment for both repositories
    of a copy: merge them, and refuse when they need different values of the same key (two
    SFTP targets with different ssh commands, two S3 targets with different credentials)
    instead of letting one repository silently use the other's."""
    if source is None:
        return repo.options, dict(repo.env)
    options = dict(_option_pair(o) for o in source.options)
    for key, value in (_option_pair(o) for o in repo.options):
        if options.setdefault(key, value) != value:
            raise ResticError(
                f"cannot copy from '{source.label}' to '{repo.label}': they need different "
                f"values of restic option '{key}', and restic takes one for both"
            )
    env = dict(source.env)
    for key, value in repo.env.items():
        if env.setdefault(key, value) != value:
            raise ResticError(
                f"cannot copy from '{source.label}' to '{repo.label}': they need different "
                f"values of {key}, and restic takes one for both"
            )
    merged = tuple(dict.fromkeys([*source.options, *repo.options]))
    return merged, env


def _option_pair(option: str) -> tuple[str, str]:
    key, _, value = option.strip('"').partition("=")
    return key, value


def _interrupt_when_parent_dies(parent: int) -> None:
    """In the child: if the orchestrator is killed (-9), the kernel sends restic SIGINT, so
    restic removes its lock and stops instead of running on unrecorded. (The signal follows
    the spawning *thread*; every caller waits for restic on the thread that started it.)
    If the orchestrator died between fork and prctl, no signal will ever come: the child
    must not become a restic nobody records (issue 14 item 6), so it ends here."""
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGINT)
    if os.getppid() != parent:
        os._exit(130)


# After restic reports a full disk, how long it gets to give up by itself before it is
# interrupted: restic 0.16+ retries failed backend writes with backoff for up to 15
# minutes, and a full disk does not empty itself meanwhile.
DISK_FULL_GRACE_SECONDS = 10.0


def _wait_failing_fast(
    proc: subprocess.Popen[bytes], errfile: IO[bytes], limit: float | None
) -> bool:
    """Wait for restic (TimeoutExpired past `limit`); True when it was stopped because it
    reported "no space left on device" and did not give up within the grace."""
    deadline = None if limit is None else time.monotonic() + limit
    full_since: float | None = None
    while True:
        step = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
        try:
            proc.wait(timeout=step)
            return False
        except subprocess.TimeoutExpired:
            if deadline is not None and time.monotonic() >= deadline:
                raise
        if full_since is None:
            if b"no space left on device" in os.pread(errfile.fileno(), 1 << 20, 0).lower():
                full_since = time.monotonic()
        elif time.monotonic() - full_since > DISK_FULL_GRACE_SECONDS:
            log.info("restic reported a full disk and kept retrying: stopping it")
            _interrupt(proc)
            return True


def _read_text(file: IO[bytes]) -> str:
    """All restic wrote to `file`; a file name that is not UTF-8 must not crash the run."""
    file.seek(0)
    return file.read().decode(errors="replace")


def _interrupt(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT lets restic remove its lock; SIGKILL only if it ignores us past the grace."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=INTERRUPT_GRACE_SECONDS)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        proc.kill()
        proc.communicate()
