"""Restore a policy's snapshot, verified, recorded, and never half-written.

restic always restores into a fresh hidden staging directory, never into the
destination itself: beside a destination that does not exist yet (then renamed
into place), inside one that exists (then its entries are moved in). So a failed
restore leaves nothing that looks like data, restic never meets what is already
in the destination (a symlink there cannot lead it outside `--to`), and the count
reported is what restic restored. The move replaces a symlink in the destination
instead of following it. When the first target cannot serve the restore, the next
one of the policy is tried and the reason the first failed is returned with it.
"""

from __future__ import annotations

import dataclasses
import errno
import glob
import os
import shutil
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path

from orchestrator.catalog import RunRecord
from orchestrator.catalog.sqlite import same_snapshot
from orchestrator.engine.context import Context
from orchestrator.engine.preflight import ready_repository
from orchestrator.engine.repository import full_id
from orchestrator.errors import CancelledError, OrchestratorError, ResticError, UsageError
from orchestrator.events import RESTORE_DONE, RESTORE_FAILED, Event
from orchestrator.policies.model import Policy, TargetSpec
from orchestrator.restic import commands, features
from orchestrator.restic.commands import Snapshot
from orchestrator.restic.runner import Repository


@dataclass(frozen=True)
class RestoreResult:
    run: RunRecord
    snapshot: Snapshot
    destination: Path
    files: int
    bytes: int
    fallbacks: tuple[str, ...] = ()  # why earlier targets could not serve the restore


def restore_policy(
    ctx: Context,
    policy: Policy,
    destination: Path,
    snapshot: str = "latest",
    paths: tuple[str, ...] = (),
    only_target: str | None = None,
    overwrite: bool = False,
) -> RestoreResult:
    given = destination.expanduser().absolute()
    for place in dict.fromkeys([given, Path(os.path.realpath(given))]):  # killed restores
        remove_stale_staging(ctx, place)
    destination = _check_destination(given, overwrite)
    errors: list[str] = []
    for spec in ctx.config.holders_of(policy, only_target):
        try:
            result = _restore_from(ctx, policy, spec, destination, snapshot, paths)
            return dataclasses.replace(result, fallbacks=tuple(errors))
        except CancelledError:
            raise
        except UsageError:
            raise
        except OrchestratorError as exc:
            errors.append(exc.message)
    raise OrchestratorError("restore failed on every target: " + " | ".join(errors))


STAGING_INFIX = ".restoring-"


def remove_stale_staging(ctx: Context, destination: Path) -> list[Path]:
    """Remove staging directories beside or inside `destination` left by a restore whose
    process died (kill -9): its run is no longer `running` in the catalog (the start
    marked it interrupted) or is unknown. A live restore's staging is left alone."""
    removed: list[Path] = []
    candidates = [
        *(destination.glob(f".orchestrator{STAGING_INFIX}*") if _is_real_dir(destination) else ()),
        *(
            destination.parent.glob(f".{glob.escape(destination.name)}{STAGING_INFIX}*")
            if destination.parent.is_dir()
            else ()
        ),
    ]
    for stale in candidates:
        run = ctx.catalog.find_run(stale.name.rsplit(STAGING_INFIX, 1)[-1], kind="restore")
        if run is not None and run.outcome == "running":
            continue
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
            removed.append(stale)
    return removed


def _check_destination(destination: Path, overwrite: bool) -> Path:
    """The directory to restore into; a symlink given as --to is followed once, here."""
    if destination.is_symlink():
        if not destination.exists():
            raise UsageError(
                f"restore destination {destination} is a symbolic link to "
                f"{os.readlink(destination)}, which does not exist"
            )
        destination = destination.resolve()
    if destination.exists() and not destination.is_dir():
        raise UsageError(f"restore destination {destination} is a file, not a directory")
    for above in destination.parents:  # the nearest folder above that exists must be one
        if above.exists():
            if not above.is_dir():
                raise UsageError(
                    f"restore destination {destination}: {above} is a file, not a directory"
                )
            break
    try:
        busy = destination.is_dir() and any(destination.iterdir())
    except OSError as exc:
        raise UsageError(f"restore destination {destination}: {exc.strerror}") from None
    if busy and not overwrite:
        raise UsageError(
            f"restore destination {destination} is not empty: choose an empty directory "
            "or pass --overwrite to restore over what is there"
        )
    return destination


def _make_staging(destination: Path, run_id: str) -> Path:
    """A fresh hidden directory on the destination's file system for restic to write into."""
    if destination.is_dir():
        staging = destination / f".orchestrator{STAGING_INFIX}{run_id[:8]}"
    else:
        staging = destination.parent / f".{destination.name}{STAGING_INFIX}{run_id[:8]}"
    try:
        staging.mkdir(parents=True)
    except OSError as exc:
        raise UsageError(
            f"restore destination {destination}: cannot create {staging}: {exc.strerror}"
        ) from None
    return staging


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
        target, repo = ready_repository(ctx, spec)
        staging = _make_staging(destination, run.id)
        snap, result = _restore_snapshot(
            ctx, policy, spec, repo, wanted, (staging, destination), paths
        )
        run.snapshot_id, run.level = snap.id, snap.tag("level")
        if len(snap.id) < 64:
            run.snapshot_id = full_id(ctx.runner, target, repo, snap.id)
        _check_paths(staging, paths, snap)
        files, size = _count(staging)
        _put_in_place(staging, destination)
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


def _restore_snapshot(
    ctx: Context,
    policy: Policy,
    spec: TargetSpec,
    repo: Repository,
    wanted: str,
    into: tuple[Path, Path],
    paths: tuple[str, ...],
) -> tuple[Snapshot, commands.Completed]:
    """Restore with one restic process when the catalog vouches for the snapshot: the
    newest of the policy is restic's own `latest --tag policy:NAME`, an id the catalog
    recorded for this policy on this target is handed over as it is. Anything else
    (an id the catalog does not know, a catalog that knows nothing) is looked up in the
    repository's listing first, so that a restore never serves another policy's data."""
    snap = None if wanted == "latest" else _catalog_snapshot(ctx, policy, spec, wanted)
    if wanted != "latest" and snap is None:
        snaps = commands.snapshots(ctx.runner, repo, [f"policy:{policy.name}"])
        snap = _pick(snaps, wanted, policy.name, spec.name)
    tags = [f"policy:{policy.name}"] if snap is None else []
    staging, destination = into
    try:
        result = commands.restore(
            ctx.runner, repo, snap.id if snap else "latest", staging, includes=paths, tags=tags
        )
    except ResticError as exc:
        if snap is None and "no snapshot found" in exc.message.lower():
            raise OrchestratorError(
                f"target '{spec.name}' holds no snapshot of policy '{policy.name}'"
            ) from None
        raise _blame_destination(exc, staging, destination) from None
    if snap is None:
        snap = _restored_snapshot(ctx, policy, spec, result.stdout)
    return snap, result


def _catalog_snapshot(
    ctx: Context, policy: Policy, spec: TargetSpec, wanted: str
) -> Snapshot | None:
    """The snapshot `wanted` (an id prefix) as the catalog recorded it for this policy on
    this target; None when the catalog does not know it, or knows it twice."""
    found = [
        r
        for r in ctx.catalog.runs(policy=policy.name, target=spec.name, limit=1_000_000)
        if r.kind in ("backup", "copy")
        and r.snapshot_id
        and r.gone_at is None
        and r.snapshot_id.startswith(wanted)
    ]
    if len({r.snapshot_id for r in found}) != 1:
        return None
    run = found[0]
    return Snapshot(
        id=str(run.snapshot_id),
        time=run.started_at,
        paths=tuple(str(s) for s in policy.sources),
        tags=(f"policy:{policy.name}", f"level:{run.level or ''}", f"run:{run.id}"),
    )


def _restored_snapshot(ctx: Context, policy: Policy, spec: TargetSpec, stdout: str) -> Snapshot:
    """Which snapshot restic chose for `latest`, from its own first line; its level from
    the catalog's run of that snapshot (unknown when the catalog has none)."""
    found = commands.restored(stdout)
    if found is None:
        raise OrchestratorError(
            f"restore from target '{spec.name}': restic did not say which snapshot it restored"
        )
    sid, paths = found
    run = next(
        (
            r
            for r in ctx.catalog.runs(policy=policy.name, target=spec.name, limit=1_000_000)
            if same_snapshot(r.snapshot_id, sid) and r.kind in ("backup", "copy")
        ),
        None,
    )
    tags = [f"policy:{policy.name}"]
    if run is not None:
        tags += [f"level:{run.level or ''}", f"run:{run.id}"]
        sid = run.snapshot_id if len(str(run.snapshot_id)) > len(sid) else sid
    return Snapshot(
        id=str(sid),
        time=run.started_at if run else ctx.clock.now(),
        paths=paths,
        tags=tuple(tags),
    )


def _blame_destination(exc: ResticError, staging: Path, destination: Path) -> ResticError:
    """restic calls every full disk the repository's; a restore that could not write its
    staging directory (on the destination's file system) filled the destination's."""
    if exc.kind != features.DISK_FULL or str(staging) not in exc.message:
        return exc
    text = exc.message.replace(
        "no space left on the device holding the repository",
        f"no space left on the device holding the destination {destination} "
        "(free space there or restore elsewhere)",
    )
    return ResticError(text, exc.kind, exc.returncode)


_GLOB = set("*?[\\")


def _check_paths(staging: Path, paths: tuple[str, ...], snap: Snapshot) -> None:
    """Every plain absolute --path must have been restored; any --path must match something."""
    absent = [
        p
        for p in paths
        if p.startswith("/")
        and not _GLOB & set(p)
        and not os.path.lexists(staging / p.rstrip("/").lstrip("/"))
    ]
    if paths and (absent or not any(staging.iterdir())):
        raise OrchestratorError(
            f"nothing in snapshot {snap.short_id} matches {', '.join(absent or paths)}: "
            f"not in the snapshot (its paths: {', '.join(snap.paths)})"
        )


def _put_in_place(staging: Path, destination: Path) -> None:
    """Rename the staging directory into place, or move its entries into the existing
    destination; a failure here names what was left where."""
    try:
        if staging.parent != destination:
            staging.rename(destination)
            return
        _move_into(staging, destination)
        staging.rmdir()
    except OSError as exc:
        raise OrchestratorError(
            f"restore into {destination} stopped while moving the restored files in "
            f"({exc.filename}: {exc.strerror}): only part of the snapshot is there"
        ) from None


def _is_real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):  # a file where a folder of it should be
        return False


def _move_into(source: Path, target: Path) -> None:
    """Move `source`'s entries into the real directory `target` without following a link:
    a symlink (or file) in `target` where the snapshot has something is replaced by it."""
    for entry in os.scandir(source):
        dest = target / entry.name
        if entry.is_dir(follow_symlinks=False) and _is_real_dir(dest):
            _move_into(Path(entry.path), dest)
            shutil.copystat(entry.path, dest, follow_symlinks=False)
            os.rmdir(entry.path)
            continue
        if _is_real_dir(dest):
            shutil.rmtree(dest)
        elif os.path.lexists(dest):
            dest.unlink()
        try:
            os.rename(entry.path, dest)
        except OSError as exc:
            if exc.errno != errno.EXDEV:  # another file system mounted inside the destination
                raise
            shutil.move(entry.path, dest)


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
            details={
                "snapshot_id": run.snapshot_id,
                "files": run.files_total,
                # a restore request's run: its own ticket follows it (no second ticket)
                **({"request": ctx.request_id} if ctx.request_id is not None else {}),
            },
        )
    )
