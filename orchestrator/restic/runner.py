"""The one owner of restic subprocesses.

Passwords travel through a pipe named by RESTIC_PASSWORD_FILE=/dev/fd/N: never
argv, never a file on disk, never the environment. Logged command lines and any
text that leaves this module pass through `mask()`. Interrupts reach restic as
SIGINT (SIGTERM would leave a stale lock), and restic runs in its own session so
that the terminal's Ctrl-C is handled here, once, in one way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from orchestrator.errors import CancelledError, ResticError
from orchestrator.restic import features
from orchestrator.restic.features import Version

log = logging.getLogger("orchestrator.restic")

# How long restic gets to remove its lock and exit after SIGINT.
INTERRUPT_GRACE_SECONDS = 30.0


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


def last_error_line(stderr: str) -> str:
    """restic's most telling line: the last 'Fatal:' one, else the last non-empty one."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    fatal = [ln for ln in lines if ln.startswith("Fatal:")]
    chosen = fatal[-1] if fatal else (lines[-1] if lines else "no output")
    return chosen.removeprefix("Fatal: ")


class Runner:
    """Runs restic; one instance per process so the version is asked once."""

    def __init__(self, binary: str = "restic", timeout_seconds: float | None = None) -> None:
        self.binary = binary
        self.timeout_seconds = timeout_seconds

    @cached_property
    def version(self) -> Version:
        try:
            out = subprocess.run(
                [self.binary, "version"], capture_output=True, text=True, timeout=30, check=False
            )
        except FileNotFoundError:
            raise ResticError(
                f"restic is not installed (looked for '{self.binary}'); "
                "run scripts/setup.sh or install the Debian package 'restic'"
            ) from None
        return Version.parse(out.stdout)

    def run(
        self,
        repo: Repository,
        args: list[str],
        *,
        timeout_seconds: float | None = None,
        ok_codes: tuple[int, ...] = (0,),
    ) -> Completed:
        """Run `restic -r URL args...`; returns a Completed whose `kind` classifies failure."""
        version = self.version
        argv = [self.binary, "--repo", repo.url, "--no-cache"]
        for opt in repo.options:
            argv += ["--option", opt]
        argv += args
        secrets = repo.secrets()
        log.info("running: %s", mask(" ".join(argv), secrets))
        read_fd, write_fd = os.pipe()
        try:
            os.write(write_fd, repo.password.encode() + b"\n")
        finally:
            os.close(write_fd)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RESTIC_")}
        env.update(repo.env)
        env["RESTIC_PASSWORD_FILE"] = f"/dev/fd/{read_fd}"
        env["RESTIC_PROGRESS_FPS"] = "0.2"
        env["TZ"] = "UTC"  # one time zone for `--time` and for what restic prints
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                pass_fds=(read_fd,),
                start_new_session=True,
                preexec_fn=_interrupt_when_parent_dies,
            )
        except FileNotFoundError:
            raise ResticError(f"restic is not installed (looked for '{self.binary}')") from None
        finally:
            os.close(read_fd)
        limit = timeout_seconds if timeout_seconds is not None else self.timeout_seconds
        timed_out = False
        try:
            stdout, stderr = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            timed_out = True
            stdout, stderr = _interrupt(proc)
        except KeyboardInterrupt:
            _interrupt(proc)
            raise CancelledError("interrupted: restic was stopped cleanly (SIGINT)") from None
        seconds = time.monotonic() - started
        stderr = mask(stderr, secrets)
        if timed_out:
            kind: str | None = features.TIMEOUT
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


def _interrupt_when_parent_dies() -> None:
    """In the child: if the orchestrator is killed (-9), the kernel sends restic SIGINT, so
    restic removes its lock and stops instead of running on unrecorded. (The signal follows
    the spawning *thread*; every caller waits for restic on the thread that started it.)"""
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGINT)


def _interrupt(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGINT lets restic remove its lock; SIGKILL only if it ignores us past the grace."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=INTERRUPT_GRACE_SECONDS)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        proc.kill()
        return proc.communicate()
