"""Copies: back up once to a policy's first target, then `restic copy` the new snapshot
to each target of its `copy_to`.

A copy is a run of its own (kind 'copy') in the catalog, with its outcome published
like a backup's; it keeps the snapshot's `policy:`, `level:` and `run:` tags, so
`snapshots` shows it on the copy target as what it is. A destination repository that
does not exist yet is created with the source's chunker parameters, so that the copies
deduplicate against each other. Retention per target is applied elsewhere.
"""

from __future__ import annotations

import re
import uuid

from orchestrator.catalog import GOOD_OUTCOMES, RunRecord
from orchestrator.engine.context import Context
from orchestrator.engine.locks import end_run, locked_run
from orchestrator.engine.preflight import ready_repository
from orchestrator.engine.repository import full_id, snapshots_or_create
from orchestrator.errors import ResticError
from orchestrator.events import COPY_DONE, COPY_FAILED, Event, Severity
from orchestrator.policies.model import Policy, TargetSpec
from orchestrator.restic import commands, features

KIND = "copy"

# restic 0.14 prints (text only) "snapshot 5678abcd saved" for a new copy, and "skipping
# source snapshot 1234abcd, was already copied to snapshot 5678abcd" for one already there.
_SAVED = re.compile(r"^snapshot ([0-9a-f]{8,64}) saved$", re.MULTILINE)
_ALREADY = re.compile(r"was already copied to snapshot ([0-9a-f]{8,64})")


def copy_new_snapshots(ctx: Context, policy: Policy, runs: list[RunRecord]) -> list[RunRecord]:
    """After `policy`'s backup runs: copy the snapshot its first target just made to each
    `copy_to` target. Nothing happens when the first target did not run or made no
    snapshot (a failed backup has nothing to copy; a partial one is kept, so it is copied)."""
    if not policy.copy_to or not policy.targets:
        return []
    first = policy.targets[0]
    made = [
        r
        for r in runs
        if r.kind == "backup" and r.target == first and r.outcome in GOOD_OUTCOMES
        if r.snapshot_id
    ]
    if not made:
        return []
    source = ctx.config.targets[first]
    return [
        copy_snapshot(ctx, policy, source, made[-1], ctx.config.targets[name])
        for name in policy.copy_to
    ]


def copy_snapshot(
    ctx: Context, policy: Policy, source: TargetSpec, backup: RunRecord, dest: TargetSpec
) -> RunRecord:
    """Copy `backup`'s snapshot from `source` to `dest`; one run record, one event."""
    now = ctx.clock.now()
    run = RunRecord(
        id=uuid.uuid4().hex,
        kind=KIND,
        policy=policy.name,
        target=dest.name,
        started_at=now,
        host=ctx.host,
        pid=ctx.pid,
        asked_level=backup.level,
        level=backup.level,
        level_reason=(
            f"copy of snapshot {commands.short_id(backup.snapshot_id)} from '{source.name}'"
        ),
        slot_key=backup.slot_key,
    )
    return locked_run(
        ctx,
        run,
        lambda: _copy(ctx, source, backup, dest, run),
        lambda outcome, kind, message: _finish(ctx, run, source, backup, outcome, kind, message),
        busy_outcome="failed",
        restic_outcomes={},
        other_kind="copy",
    )


def _copy(
    ctx: Context, source: TargetSpec, backup: RunRecord, dest: TargetSpec, run: RunRecord
) -> None:
    _src_target, src_repo = ctx.open_repository(source)
    dst_target, dst_repo = ready_repository(ctx, dest)
    snapshot = str(backup.snapshot_id)
    try:
        completed = commands.copy(ctx.runner, dst_repo, src_repo, [snapshot])
    except ResticError as exc:
        if exc.kind != features.NO_REPOSITORY:
            raise
        # The first copy to this target: create it with the source's chunker parameters
        # (one more key derivation, once per target's life), serialised per repository and
        # never over one the catalog has seen snapshots in.
        snapshots_or_create(
            ctx, dest, dst_repo, [], lambda: commands.init_copy(ctx.runner, dst_repo, src_repo)
        )
        completed = commands.copy(ctx.runner, dst_repo, src_repo, [snapshot])
    output = completed.stdout + "\n" + completed.stderr
    found = _SAVED.search(output) or _ALREADY.search(output)
    run.snapshot_id = full_id(ctx.runner, dst_target, dst_repo, found.group(1)) if found else None
    run.seconds = completed.seconds
    already = _SAVED.search(output) is None and _ALREADY.search(output) is not None
    _finish(
        ctx,
        run,
        source,
        backup,
        "success",
        None,
        f"{backup.level} snapshot {commands.short_id(snapshot)} of '{source.name}' "
        + ("was already here as" if already else "copied as")
        + f" snapshot {commands.short_id(run.snapshot_id) or '(id not reported)'}",
    )


def _finish(
    ctx: Context,
    run: RunRecord,
    source: TargetSpec,
    backup: RunRecord,
    outcome: str,
    kind: str | None,
    message: str,
) -> None:
    finished = end_run(ctx, run, outcome, kind, message)
    event_kind, severity = {
        "success": (COPY_DONE, "info"),
        "failed": (COPY_FAILED, "error"),
        "cancelled": (COPY_FAILED, "warning"),
    }[outcome]
    sev: Severity = severity  # type: ignore[assignment]
    ctx.events.publish(
        Event(
            kind=event_kind,
            time=finished,
            severity=sev,
            summary=f"copy of '{run.policy}' from '{source.name}' to '{run.target}': "
            f"{outcome}: {message}",
            policy=run.policy,
            target=run.target,
            run_id=run.id,
            details={
                "level": run.level,
                "error_kind": kind,
                "snapshot_id": run.snapshot_id,
                "source_target": source.name,
                "source_snapshot_id": backup.snapshot_id,
                "source_run_id": backup.id,
                "slot_key": run.slot_key,
            },
        )
    )
