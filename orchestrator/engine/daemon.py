"""The daemon: `run_due` in a loop, sleeping until the next due time.

Thin on purpose: every decision is in engine/due.py and every fact in the catalog,
so a `kill -9` loses nothing. Signals: SIGHUP reloads policies.toml (an invalid file
is rejected and the old one kept); SIGINT/SIGTERM (KeyboardInterrupt, see cli.main)
stops restic with SIGINT, records the interrupted slots and exits 0. One daemon per
state directory, enforced with an flock'ed pid file (the kernel drops it on death).
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

from orchestrator.engine.context import Context
from orchestrator.engine.due import next_wake, run_due
from orchestrator.errors import BusyError, ConfigError, OrchestratorError
from orchestrator.events import Event
from orchestrator.policies.model import Config

log = logging.getLogger("orchestrator.daemon")

# Wake at least this often: an RPO breach is noticed, a changed wall clock re-read.
MAX_SLEEP = timedelta(hours=1)
# Land just after a due time, never a hair before it.
WAKE_MARGIN = timedelta(milliseconds=50)


class OffsetClock:
    """Real time shifted by a fixed offset: `daemon --now T` starts the clock at T and lets
    it run at real speed (simulation and tests of the real daemon process)."""

    def __init__(self, start: datetime) -> None:
        self.offset = start - datetime.now(UTC)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


_LEVELS = {"info": logging.INFO, "warning": logging.WARNING}


class LogSink:
    """Every engine event as one stderr line (journald keeps one record per line)."""

    def publish(self, event: Event) -> None:
        where = "@".join(x for x in (event.policy, event.target) if x)
        where = f" {where}" if where else ""
        text = " | ".join(event.summary.splitlines())
        log.log(_LEVELS.get(event.severity, logging.ERROR), "%s%s: %s", event.kind, where, text)


@contextmanager
def pid_lock(state_dir: Path) -> Iterator[Path]:
    """Hold `state_dir/daemon.pid`; a second daemon on the same state dir gets BusyError (75)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "daemon.pid"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            raise BusyError(
                f"another daemon (pid {holder}) is running on state directory {state_dir}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class _Wake(Exception):
    """Raised by the SIGHUP handler only while the daemon sleeps, to end the sleep early."""


class Daemon:
    def __init__(self, ctx: Context, load: Callable[[], Config]) -> None:
        self.ctx = ctx
        self.load = load
        self.reload_requested = False
        self.sleeping = False

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        self.reload_requested = True
        if self.sleeping:
            raise _Wake

    def reload(self) -> None:
        """Swap in the new config only if it validates; one clear line either way."""
        self.reload_requested = False
        old = self.ctx.config
        try:
            new = self.load()
        except ConfigError as exc:
            problems = "; ".join(exc.problems)
            log.error(
                "reload rejected: %s has %d problem(s), keeping the previous configuration: %s",
                old.path,
                len(exc.problems),
                problems,
            )
            return
        except OrchestratorError as exc:
            log.error("reload rejected, keeping the previous configuration: %s", exc.message)
            return
        if new.settings.state_dir != old.settings.state_dir:
            log.error(
                "reload rejected: state_dir changed (%s -> %s); restart the daemon to move it",
                old.settings.state_dir,
                new.settings.state_dir,
            )
            return
        self.ctx.config = new
        if self.ctx.audit:  # audit log (issue 16)
            self.ctx.audit.config_loaded(str(new.path), new.sha256)
        log.info("reloaded %s (%d policies, sha256 %s)", new.path, len(new.policies), new.sha256)

    def sleep_until(self, wake: datetime) -> None:
        """Sleep until `wake` by the context's clock; SIGHUP ends the sleep early."""
        delay = (wake - self.ctx.clock.now()).total_seconds()
        if delay <= 0 or self.reload_requested:
            return
        log.info("sleeping %.0fs until %s", delay, wake.isoformat(timespec="seconds"))
        try:
            self.sleeping = True
            if not self.reload_requested:
                import time

                time.sleep(delay)
        except _Wake:
            pass
        finally:
            self.sleeping = False

    def run(self) -> None:
        """Loop until SIGINT/SIGTERM; returns normally after a clean stop."""
        state_dir = self.ctx.config.settings.state_dir
        with pid_lock(state_dir):
            previous = signal.signal(signal.SIGHUP, self._on_hup)
            log.info(
                "daemon started: pid %d, %s, %d policies",
                os.getpid(),
                self.ctx.config.path,
                len(self.ctx.config.policies),
            )
            try:
                while True:
                    if self.reload_requested:
                        self.reload()
                    now = self.ctx.clock.now()
                    report = run_due(self.ctx, now)
                    if report.runs or report.recorded:
                        log.info(
                            "pass at %s: %d run(s), %d slot(s) recorded",
                            now.isoformat(timespec="seconds"),
                            len(report.runs),
                            len(report.recorded),
                        )
                    self.sleep_until(
                        next_wake(self.ctx, self.ctx.clock.now(), MAX_SLEEP) + WAKE_MARGIN
                    )
            except KeyboardInterrupt:
                log.info("daemon stopping: interrupted runs are recorded; restic stopped cleanly")
            finally:
                signal.signal(signal.SIGHUP, previous)
        log.info("daemon stopped")
