"""Restore a policy's snapshot, verified, recorded, and never half-written.

A restore into a new or empty directory goes to a sibling staging directory
first and is renamed into place only when restic and its `--verify` re-read
succeeded, so a failed restore leaves nothing that looks like data. When the
first target cannot serve the restore, the next one of the policy is tried.
"""

from __future__ import annotations

import glob
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from orchestrator.catalog import RunRecord
from orchestrator.engine.context import Context
from orchestrator.engine.preflight import ready_repository
from orchestrator.errors import CancelledError, OrchestratorError, UsageError
from orchestrator.events import RESTORE_DONE, RESTORE_FAILED, Event
from orchestrator.policies.model import Policy, TargetSpec
from orchestrator.restic import commands
from orchestrator.restic.commands import Snapshot


@dataclass(frozen=True)
class RestoreResult:
    run: RunRecord
    snapshot: Snapshot
    destination: Path
    files: int
    bytes: int


def restore_policy(
    ctx: Context,
    policy: Policy,
    destination: Path,
    snapshot: str = "latest",
    paths: tuple[str, ...] = (),
    only_target: str | None = None,
    overwrite: bool = False,
) -> RestoreResult:
    destination = destination.expanduser().absolute()
    remove_stale_staging(ctx, destination)
    _check_destination(destination, overwrite)
    errors: list[str] = []
    for spec in ctx.config.holders_of(policy, only_target):
        try:
            return _restore_from(ctx, policy, spec, destination, snapshot, paths)
        except CancelledError:
            raise
        except UsageError:
            raise
        except OrchestratorError as exc:
            errors.append(exc.message)
    raise OrchestratorError("restore failed on every target: " + " | ".join(errors))


STAGING_INFIX = ".restoring-"


def remove_stale_staging(ctx: Context, destination: Path) -> list[Path]:
    """Remove staging directories beside `destination` left by a restore whose process died
    (kill -9): its run is no longer `running` in the catalog (the start marked it
    interrupted) or is unknown. A live restore's staging directory is left alone."""
    removed: list[Path] = []
    parent = destination.parent
    if not parent.is_dir():
        return removed
    for stale in parent.glob(f".{glob.escape(destination.name)}{STAGING_INFIX}*"):
        run = ctx.catalog.find_run(stale.name.rsplit(STAGING_INFIX, 1)[-1], kind="restore")
        if run is not None and run.outcome == "running":
            continue
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
            removed.append(stale)
    return removed


def _check_destination(destination: Path, overwrite: bool) -> None:
    if destination.exists() and not destination.is_dir():
        raise UsageError(f"restore destination {destination} is a file, not a directory")
    if destination.is_dir() and any(destination.iterdir()) and not overwrite:
        raise UsageError(
            f"restore destination {destination} is not empty: choose an empty directory "
            "or pass --overwrite to restore over what is there"
        )


def _restore_from(
    ctx: Context,
    policy: Policy,
    spec: TargetSpec,
    destination: Path,
    wanted: str,
    paths: tuple[str, ...],
) -> RestoreResult:
    run = RunRecord(
        id=uuid.uuid4().hex,
        kind="restore",
        policy=policy.name,
        target=spec.name,
        started_at=ctx.clock.now(),
        host=ctx.host,
        pid=ctx.pid,
    )
    ctx.catalog.start_run(run)
    staging: Path | None = None
    try:
        _target, repo = ready_repository(ctx, spec)
        snaps = commands.snapshots(ctx.runner, repo, [f"policy:{policy.name}"])
        snap = _pick(snaps, wanted, policy.name, spec.name)
        run.snapshot_id, run.level = snap.id, snap.tag("level")
        in_place = destination.is_dir() and any(destination.iterdir())
        if in_place:
            workdir = destination
        else:
            staging = destination.parent / f".{destination.name}{STAGING_INFIX}{run.id[:8]}"
            staging.mkdir(parents=True)
            workdir = staging
        result = commands.restore(ctx.runner, repo, snap.id, workdir, includes=paths)
        files, size = _count(workdir)
        if paths and files == 0:
            raise OrchestratorError(
                f"nothing in snapshot {snap.short_id} matches {', '.join(paths)} "
                f"(see 'orchestrator snapshots {policy.name}' and restic's paths)"
            )
        if staging is not None:
            if destination.exists():
                destination.rmdir()
            staging.rename(destination)
            staging = None
        run.files_total, run.bytes_total, run.seconds = files, size, result.seconds
        run.outcome, run.finished_at = "success", ctx.clock.now()
        run.message = (
            f"restored snapshot {snap.short_id} to {destination}: {files} files, {size} bytes"
        )
        _record(ctx, run, RESTORE_DONE)
        return RestoreResult(run, snap, destination, files, size)
    except CancelledError as exc:
        run.outcome, run.message = "cancelled", exc.message
        _record(ctx, run, RESTORE_FAILED)
        raise
    except OrchestratorError as exc:
        run.outcome, run.message = "failed", exc.message
        run.error_kind = getattr(exc, "kind", None)
        _record(ctx, run, RESTORE_FAILED)
        raise
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def _pick(snaps: list[Snapshot], wanted: str, policy: str, target: str) -> Snapshot:
    if not snaps:
        raise OrchestratorError(f"target '{target}' holds no snapshot of policy '{policy}'")
    if wanted == "latest":
        return snaps[-1]
    matches = [s for s in snaps if s.id.startswith(wanted)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UsageError(
            f"no snapshot '{wanted}' of policy '{policy}' on target '{target}' "
            f"(see 'orchestrator snapshots {policy} --target {target}')"
        )
    raise UsageError(f"snapshot id '{wanted}' is ambiguous on target '{target}': give more of it")


def _count(root: Path) -> tuple[int, int]:
    files = size = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            p = Path(dirpath, name)
            if p.is_file() and not p.is_symlink():
                files += 1
                size += p.stat().st_size
    return files, size


def _record(ctx: Context, run: RunRecord, kind: str) -> None:
    run.finished_at = run.finished_at or ctx.clock.now()
    ctx.catalog.finish_run(run)
    ctx.events.publish(
        Event(
            kind=kind,
            time=run.finished_at,
            severity="info" if run.outcome == "success" else "error",
            summary=f"restore of '{run.policy}' from '{run.target}': {run.outcome}: {run.message}",
            policy=run.policy,
            target=run.target,
            run_id=run.id,
            details={"snapshot_id": run.snapshot_id, "files": run.files_total},
        )
    )
