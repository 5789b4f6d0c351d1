"""Running the slots a pass claimed: one chain of slots per policy (in due order),
`max_parallel` chains in worker threads, transient failures retried with backoff,
each slot's outcome recorded once after its last attempt."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from orchestrator.catalog import RunRecord, SlotRecord
from orchestrator.engine.due_rules import RETRY_KINDS, Job, PassReport

if TYPE_CHECKING:
    from orchestrator.engine.context import Context
    from orchestrator.events import Event

log = logging.getLogger("orchestrator.daemon")


class _Buffer:
    """Collects events in a worker thread; the main thread publishes them afterwards."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def publish(self, event: Event) -> None:
        self.events.append(event)

    def subscribe(self, sink: object) -> None:  # the EventBus interface, unused here
        raise NotImplementedError


def run_chains(
    ctx: Context,
    chains: dict[str, list[tuple[Job, SlotRecord]]],
    stop: threading.Event,
    report: PassReport,
) -> None:
    """One chain per policy (its slots in order); `max_parallel` chains at once."""
    if not chains:
        return
    workers = max(1, min(ctx.config.settings.max_parallel, len(chains)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="slot") as pool:
        futures: list[Future[tuple[list[RunRecord], list[Event]]]] = [
            pool.submit(_run_chain, ctx, chain, stop) for chain in chains.values()
        ]
        interrupted = False
        while True:
            try:
                pending = [f for f in futures if not f.done()]
                if not pending:
                    break
                if interrupted:
                    _interrupt_restic()  # restic started between two signals stops too
                pending[0].exception(timeout=0.5)
            except TimeoutError:
                continue
            except KeyboardInterrupt:
                interrupted = True
                stop.set()
                _interrupt_restic()
        for fut in futures:
            runs, events = fut.result()
            report.runs += runs
            for event in events:
                ctx.events.publish(event)
    if interrupted:
        raise KeyboardInterrupt


def _interrupt_restic() -> None:
    """SIGINT to our restic children (found by pid via /proc), so they remove their locks.

    Workers wait for restic on their own threads, which Python never interrupts."""
    for task in os.scandir(f"/proc/{os.getpid()}/task"):
        try:
            with open(f"{task.path}/children") as fh:
                pids = [int(p) for p in fh.read().split()]
        except OSError:
            continue
        for pid in pids:
            with contextlib.suppress(OSError):
                with open(f"/proc/{pid}/comm") as fh:
                    if fh.read().strip() != "restic":
                        continue
                os.kill(pid, signal.SIGINT)


def _worker_context(ctx: Context, buffer: _Buffer) -> Context:
    """A context for one worker thread: its own catalog connection (sqlite3 connections
    belong to one thread) and an event buffer the main thread drains."""
    from orchestrator.catalog.sqlite import SqliteCatalog

    catalog = ctx.catalog
    if isinstance(catalog, SqliteCatalog):
        catalog = SqliteCatalog(catalog.path)
    return dataclasses.replace(ctx, catalog=catalog, events=buffer)  # type: ignore[arg-type]


def _run_chain(
    ctx: Context, chain: list[tuple[Job, SlotRecord]], stop: threading.Event
) -> tuple[list[RunRecord], list[Event]]:
    buffer = _Buffer()
    wctx = _worker_context(ctx, buffer)
    runs: list[RunRecord] = []
    try:
        for job, rec in chain:
            if stop.is_set():
                _close_slot(wctx, rec, [], stopped=True)
                continue
            slot_runs = _run_slot(wctx, job, stop, buffer)
            runs += slot_runs
            _close_slot(wctx, rec, slot_runs, stopped=stop.is_set())
    finally:
        if wctx.catalog is not ctx.catalog:
            wctx.catalog.close()
    return runs, buffer.events


def _run_slot(ctx: Context, job: Job, stop: threading.Event, buffer: _Buffer) -> list[RunRecord]:
    """Every target of the slot's policy, then its copies (a failed copy makes the slot
    partial); transient backup failures retried with backoff."""
    from orchestrator.engine.backup import backup_policy

    settings = ctx.config.settings
    policy = ctx.config.policies.get(job.slot.policy)
    if policy is None:  # removed by a reload between deciding and running
        return []
    log.info("running slot %s: %s level (%s)", job.slot.key, job.slot.level, job.note)
    final: list[RunRecord] = []
    for target in policy.targets:
        attempt = 0
        while True:
            mark = len(buffer.events)
            try:
                (run,) = backup_policy(ctx, policy, job.slot.level, target, job.slot.key)
            except KeyboardInterrupt:  # not expected off the main thread; be safe
                stop.set()
                return final
            retry = (
                run.outcome in ("failed", "skipped")  # skipped: refused as busy
                and run.error_kind in RETRY_KINDS
                and attempt < settings.retries
                and not stop.is_set()
            )
            if not retry:
                break
            del buffer.events[mark:]  # only the final attempt files an event
            attempt += 1
            delay = settings.retry_backoff_seconds * 2 ** (attempt - 1)
            log.warning(
                "slot %s on %s: %s (%s); retry %d of %d in %ds",
                job.slot.key,
                target,
                run.message,
                run.error_kind,
                attempt,
                settings.retries,
                delay,
            )
            if stop.wait(delay):
                break
        if stop.is_set() and run.outcome == "failed":
            # we stopped restic (SIGINT) on SIGTERM/SIGINT; restic 0.14 may exit 1 then
            run.outcome, run.error_kind = "cancelled", "interrupted"
            ctx.catalog.finish_run(run)
        final.append(run)
        if stop.is_set():
            break
    if not stop.is_set():  # copy_to: each new snapshot to each copy target, in the slot
        from orchestrator.engine.copies import copy_new_snapshots
        from orchestrator.errors import CancelledError

        begun = ctx.clock.now()
        try:
            final += copy_new_snapshots(ctx, policy, final)
        except CancelledError:  # stopped mid-copy: the slot is interrupted, caught up later
            stop.set()
            final += [
                r
                for r in ctx.catalog.runs(policy=policy.name, kind="copy", limit=50)
                if r.slot_key == job.slot.key and r.started_at >= begun
            ]
    return final


def _close_slot(ctx: Context, rec: SlotRecord, runs: list[RunRecord], stopped: bool) -> None:
    """The slot's outcome, recorded once, after its last attempt."""
    from orchestrator.engine.backup import exit_code_for
    from orchestrator.errors import ExitCode

    now = ctx.clock.now()
    rec.run_ids = tuple(r.id for r in runs)
    rec.finished_at = now
    if stopped and (not runs or any(r.outcome == "cancelled" for r in runs)):
        rec.state, rec.outcome = "interrupted", "cancelled"
        rec.note = "stopped by SIGINT/SIGTERM before it finished; caught up at the next pass"
    else:
        code = exit_code_for(runs) if runs else ExitCode.FAILURE
        rec.state = "done"
        rec.outcome = {
            ExitCode.OK: "success",
            ExitCode.BUSY: "busy",
            ExitCode.FAILURE: "failed",
        }.get(code, "partial")
        if not runs:
            rec.note = "the policy no longer exists"
    ctx.catalog.record_slot(rec)
    log.info("slot %s %s: %s", rec.key, rec.state, rec.outcome)
