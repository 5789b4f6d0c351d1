"""One run per (policy, target) at a time, across processes on this host.

flock() is released by the kernel when the holder dies, so our own locks can
never go stale; the file's text (pid, host, start) is for the person who asks
why a run is busy.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import BusyError, CancelledError, OrchestratorError, ResticError
from orchestrator.restic.features import INTERRUPTED

if TYPE_CHECKING:
    from orchestrator.catalog import RunRecord
    from orchestrator.engine.context import Context

BUSY = "busy"  # the error kind of a run refused because its lock is held


@contextmanager
def run_lock(lock_dir: Path, name: str, host: str, now: datetime) -> Iterator[None]:
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = lock_dir / (re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or "unknown holder"
            raise BusyError(f"{name} is already running ({holder}); try again later") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {host} since {now.isoformat()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def end_run(ctx: Context, run: RunRecord, outcome: str, kind: str | None, message: str) -> datetime:
    """Record in the catalog how a run ended (its event is the caller's to publish)."""
    run.outcome, run.error_kind, run.message = outcome, kind, message
    run.finished_at = finished = ctx.clock.now()
    ctx.catalog.finish_run(run)
    return finished


Finish = Callable[[str, str | None, str], None]  # (outcome, error kind, message)


def locked_run(
    ctx: Context,
    run: RunRecord,
    body: Callable[[], None],
    finish: Finish,
    *,
    busy_outcome: str,
    restic_outcomes: Mapping[str, str],
    other_kind: str,
) -> RunRecord:
    """The life of one run (a backup, a copy): recorded as started, run under the lock of
    its (policy, target), and every expected failure recorded as an outcome by `finish`.

    Cancelled (SIGINT/SIGTERM) is recorded, then re-raised so the caller stops. Busy (our
    lock held) ends as `busy_outcome`; a restic error as `restic_outcomes[kind]` (else
    failed); any other expected error as failed with its kind, or `other_kind`."""
    ctx.catalog.start_run(run)
    lock_dir = ctx.config.settings.state_dir / "locks"
    try:
        with run_lock(lock_dir, f"{run.policy}@{run.target}", ctx.host, run.started_at):
            body()
    except CancelledError as exc:
        finish("cancelled", INTERRUPTED, exc.message)
        raise
    except BusyError as exc:
        finish(busy_outcome, BUSY, exc.message)
    except ResticError as exc:
        finish(restic_outcomes.get(exc.kind, "failed"), exc.kind, exc.message)
    except OrchestratorError as exc:
        finish("failed", getattr(exc, "kind", other_kind), exc.message)
    return run
