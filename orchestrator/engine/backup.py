"""One backup of one policy to each of its targets.

Per target: record the run, lock, preflight, read the repository's own snapshot
list (the truth about what exists), decide the level, run restic once, record
restic's summary and publish the outcome. A failure on one target never stops
the others; the caller turns the outcomes into an exit code.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from orchestrator.catalog import Catalog, RunRecord
from orchestrator.engine.context import Context
from orchestrator.engine.locks import end_run, locked_run
from orchestrator.engine.preflight import missing_error
from orchestrator.engine.repository import full_id, snapshots_or_create
from orchestrator.errors import ExitCode, OrchestratorError, ResticError
from orchestrator.events import (
    RUN_CANCELLED,
    RUN_FAILED,
    RUN_PARTIAL,
    RUN_SKIPPED,
    RUN_SUCCEEDED,
    Event,
    Severity,
)
from orchestrator.policies.levels import History, LevelDecision, decide_level
from orchestrator.policies.model import LEVEL_RANK, Level, Policy, TargetSpec
from orchestrator.restic import commands, features
from orchestrator.restic.runner import Repository

log = logging.getLogger("orchestrator.backup")

AUTO = "auto"


@dataclass(frozen=True)
class BackupPlan:
    asked: str  # full | differential | incremental | auto
    slot_key: str | None = None


def backup_policy(
    ctx: Context,
    policy: Policy,
    asked: str = AUTO,
    only_target: str | None = None,
    slot_key: str | None = None,
) -> list[RunRecord]:
    """Back up `policy` to each target (or only one); returns each target's run record."""
    level = (
        resolve_auto(policy, ctx.config.settings.timezone, ctx.clock.now())
        if asked == AUTO
        else asked
    )
    runs = []
    for spec in ctx.config.targets_of(policy, only_target):
        runs.append(backup_target(ctx, policy, spec, level, slot_key))  # type: ignore[arg-type]
    return runs


def resolve_auto(policy: Policy, tz: str, now: datetime) -> Level:
    """`auto` means: the highest level the calendar gives for today, else incremental."""
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    from orchestrator.policies.schedule import slots_between

    local = now.astimezone(ZoneInfo(tz))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    today = slots_between(
        policy, tz, midnight - timedelta(microseconds=1), midnight + timedelta(days=1)
    )
    levels = [s.level for s in today]
    return max(levels, key=LEVEL_RANK.__getitem__) if levels else "incremental"


def backup_target(
    ctx: Context, policy: Policy, spec: TargetSpec, asked: Level, slot_key: str | None = None
) -> RunRecord:
    now = ctx.clock.now()
    run = RunRecord(
        id=uuid.uuid4().hex,
        kind="backup",
        policy=policy.name,
        target=spec.name,
        started_at=now,
        host=ctx.host,
        pid=ctx.pid,
        asked_level=asked,
        # A full asked for is a full attempted, even if it fails before restic starts:
        # the next run must then be a full too.
        level="full" if asked == "full" else None,
        slot_key=slot_key,
    )
    return locked_run(
        ctx,
        run,
        lambda: _run_backup(ctx, policy, spec, run, now),
        lambda outcome, kind, message: _finish(ctx, run, outcome, kind, message),
        # refused before it began: not an attempt, never a failed full
        busy_outcome="skipped",
        # restic stopped by SIGINT that did not come through our own Ctrl-C handling (the
        # daemon stopping, a signal to the process group): cancelled, not failed; a live
        # restic lock refused it before it began (exit 75): skipped, like our own lock
        restic_outcomes={features.INTERRUPTED: "cancelled", features.LOCKED: "skipped"},
        other_kind="preflight",
    )


def _run_backup(
    ctx: Context, policy: Policy, spec: TargetSpec, run: RunRecord, now: datetime
) -> None:
    paths, notes = _source_paths(policy)
    target, repo = ctx.open_repository(spec)
    target.preflight()
    previous = ctx.catalog.newest_run(policy.name, spec.name)
    known = _known_history(ctx, policy, spec)
    if known is None:  # the catalog cannot tell: ask the repository (and create it)
        known = _listed_history(ctx, policy, spec, repo, now)
    try:
        result, summary, decision = _backup_once(ctx, policy, repo, run, now, paths, known)
    except ResticError as exc:
        if exc.kind == features.NO_REPOSITORY and ctx.catalog.ever_had_snapshot(spec.name):
            raise missing_error(ctx, spec) from None
        if not known.from_catalog or not _parent_rejected(exc, known):
            raise
        # The catalog's parent is not in the repository (removed by someone else): list
        # it, which marks the snapshot vanished, and decide again from what is there.
        known = _listed_history(ctx, policy, spec, repo, now)
        result, summary, decision = _backup_once(ctx, policy, repo, run, now, paths, known)
    parent = known.parents.get(decision.parent)
    if summary is not None and summary.snapshot_id:  # one id form on every restic version
        summary = replace(
            summary, snapshot_id=full_id(ctx.runner, target, repo, summary.snapshot_id)
        )
    if summary is not None:
        run.snapshot_id = summary.snapshot_id
        run.files_new, run.files_changed = summary.files_new, summary.files_changed
        run.files_total, run.bytes_added = summary.files_total, summary.bytes_added
        run.bytes_total, run.seconds = summary.bytes_total, summary.seconds
    if summary is not None and summary.snapshot_id:
        _guard_file_count(ctx, policy, repo, run, summary.snapshot_id, previous)
    if result.kind == features.PARTIAL and summary is not None and summary.repository_errors:
        _finish(ctx, run, "partial", features.REPOSITORY_DAMAGED, _damaged(spec, summary, parent))
        return
    if result.kind == features.PARTIAL and summary is not None and summary.snapshot_id:
        shown = "; ".join(summary.errors[:3]) or "see restic's output"
        more = f" (and {len(summary.errors) - 3} more)" if len(summary.errors) > 3 else ""
        _finish(
            ctx,
            run,
            "partial",
            features.PARTIAL,
            f"snapshot {commands.short_id(summary.snapshot_id)} kept, "
            f"but some files could not be read: {shown}{more}",
        )
        return
    if not result.ok or summary is None or not summary.snapshot_id:
        raise commands.fail(repo, "backup", result)
    _finish(
        ctx,
        run,
        "success",
        None,
        f"{decision.level} snapshot {commands.short_id(summary.snapshot_id)}: "
        f"{summary.files_total} files, "
        f"{summary.bytes_added} bytes added" + "".join(f"; {n}" for n in notes),
    )


@dataclass(frozen=True)
class Known:
    """What the level decision needs: the history, and the snapshots that can be parents
    (`newest_full`, `newest_any`: an id and a time)."""

    history: History
    parents: dict[str, Parent]
    from_catalog: bool


@dataclass(frozen=True)
class Parent:
    id: str
    time: datetime

    @property
    def short_id(self) -> str:
        return self.id[:8]


def _backup_once(
    ctx: Context,
    policy: Policy,
    repo: Repository,
    run: RunRecord,
    now: datetime,
    paths: list[Path],
    known: Known,
) -> tuple[commands.Completed, commands.BackupSummary | None, LevelDecision]:
    """Decide the level and run restic once; raises restic's failure when it made no
    snapshot at all (a missing repository, a rejected parent, a wrong password)."""
    decision = decide_level(
        run.asked_level,  # type: ignore[arg-type]
        known.history,
        now,
        ctx.config.settings.max_full_interval_days,
    )
    run.level, run.level_reason = decision.level, decision.reason
    parent = known.parents.get(decision.parent)
    tags = [f"policy:{policy.name}", f"level:{decision.level}", f"run:{run.id}"]
    result, summary = commands.backup(
        ctx.runner,
        repo,
        paths,
        tags=tags,
        excludes=policy.exclude,
        force=decision.level == "full",
        parent=parent.id if parent else None,
        when=now if ctx.simulated else None,
    )
    if summary is None and not result.ok and result.kind != features.PARTIAL:
        raise commands.fail(repo, "backup", result)
    return result, summary, decision


def _parent_rejected(exc: ResticError, known: Known) -> bool:
    """restic could not find the `--parent` it was given: "no matching ID found" for a
    prefix (0.14), "failed to load snapshot ID" for a full id (0.18)."""
    text = exc.message.lower()
    return "no matching id found" in text or any(
        f"failed to load snapshot {p.short_id}" in text for p in known.parents.values()
    )


def _damaged(spec: TargetSpec, summary: commands.BackupSummary, parent: Parent | None) -> str:
    """A backup that restic finished although the repository is damaged (a parent tree it
    cannot load): name the repository, not the sources, and what to do next."""
    what = "; ".join(summary.repository_errors[:2])
    if parent is not None:
        what = f"parent snapshot {parent.short_id}: {what}"
    text = (
        f"snapshot {commands.short_id(summary.snapshot_id)} kept (restic read every source "
        f"file again), but the "
        f"repository of target '{spec.name}' is damaged: {what}; run `orchestrator verify "
        f"--tier check --target {spec.name}`"
    )
    if summary.errors:
        text += f"; also unreadable: {'; '.join(summary.errors[:3])}"
    return text


def _source_paths(policy: Policy) -> tuple[list[Path], list[str]]:
    """The paths restic is given, and notes for the run's message. Checked before restic
    starts: a missing source, or a directory with nothing in it (an unmounted mount
    point), fails the run. A source that is a symlink is given to restic resolved: restic
    given a link stores only the link, never what it points to."""
    paths, notes = [], []
    for source in policy.sources:
        if not source.exists():
            raise OrchestratorError(
                f"policy '{policy.name}': source {source} does not exist",
                kind=features.SOURCE_MISSING,
            )
        path = source
        if source.is_symlink():
            path = source.resolve()
            notes.append(f"source {source} is a symlink: backed up {path}")
        if not policy.allow_empty and path.is_dir() and _is_empty_dir(path):
            raise OrchestratorError(
                f"policy '{policy.name}': source {source} is an empty directory (an "
                "unmounted mount point?); nothing was backed up. Set allow_empty = true "
                "in the policy if it may be empty",
                kind=features.SOURCE_EMPTY,
            )
        paths.append(path)
    return paths, notes


def _is_empty_dir(path: Path) -> bool:
    try:
        with os.scandir(path) as entries:
            return next(entries, None) is None
    except OSError:
        return False  # unreadable: restic reports it as such


def _guard_file_count(
    ctx: Context,
    policy: Policy,
    repo: Repository,
    run: RunRecord,
    snapshot_id: str,
    previous: RunRecord | None,
) -> None:
    """Refuse a snapshot with no files, or far fewer than the previous good one of this
    policy on this target: restic has already written it, so it is forgotten again, and
    retention can never keep it in place of the real data. Raises the run's failure."""
    files = run.files_total or 0
    before = previous.files_total if previous is not None else None
    if previous is not None and before is None and previous.snapshot_id:
        log.warning(
            "policy '%s': the file count of the previous snapshot %s is not known (a catalog "
            "rebuilt on restic 0.14 does not have it): this run cannot be checked for a "
            "shrunk source; the next one can",
            policy.name,
            commands.short_id(previous.snapshot_id),
        )
    if files == 0 and not policy.allow_empty:
        kind = features.SOURCE_EMPTY
        why = "the sources hold no files (an unmounted mount point? everything excluded?)"
        fix = "set allow_empty = true in the policy if that is right"
    elif (
        before
        and policy.min_files_ratio > 0
        and not (files == 0 and policy.allow_empty)
        and files < policy.min_files_ratio * before
    ):
        kind = features.SOURCE_SHRUNK
        why = (
            f"{files} files, fewer than {policy.min_files_ratio:g} of the {before} in the "
            f"previous good snapshot {commands.short_id(previous.snapshot_id) if previous else ''}"
        )
        fix = "lower min_files_ratio in the policy (0 turns the guard off) if that is right"
    else:
        return
    try:
        commands.forget_ids(ctx.runner, repo, [snapshot_id])
    except ResticError as exc:
        raise OrchestratorError(
            f"policy '{policy.name}': {why}; snapshot {commands.short_id(snapshot_id)} could NOT "
            f"be removed ({exc.message}): remove it with 'restic forget {snapshot_id}'; {fix}",
            kind=kind,
        ) from None
    run.snapshot_id = None
    raise OrchestratorError(
        f"policy '{policy.name}': {why}; snapshot {commands.short_id(snapshot_id)} was removed "
        f"again; {fix}",
        kind=kind,
    )


def _known_history(ctx: Context, policy: Policy, spec: TargetSpec) -> Known | None:
    """The history as the catalog records it, or None when the catalog cannot be trusted
    alone: it knows no good snapshot of the policy on the target (a first backup, a lost
    catalog), or a run newer than the newest good one was interrupted (its snapshot may
    exist after all: only a listing can tell). restic checks the parent when it opens it."""
    newest_any = ctx.catalog.newest_run(policy.name, spec.name)
    if newest_any is None or not newest_any.snapshot_id:
        return None
    # (a run still `running` is this one: we hold the policy's lock, and a dead
    # process's runs were marked interrupted when this one opened the catalog)
    unsure = ctx.catalog.newest_run(policy.name, spec.name, outcomes=("interrupted",))
    if unsure is not None and unsure.started_at >= newest_any.started_at:
        return None
    newest_full = ctx.catalog.newest_run(policy.name, spec.name, level="full")
    parents = {"newest_any": Parent(newest_any.snapshot_id, newest_any.started_at)}
    if newest_full is not None and newest_full.snapshot_id:
        parents["newest_full"] = Parent(newest_full.snapshot_id, newest_full.started_at)
    history = History(
        newest_full=parents["newest_full"].time if "newest_full" in parents else None,
        newest_any=newest_any.started_at,
        last_full_failed=last_full_failed(ctx.catalog, policy.name, spec.name),
    )
    return Known(history, parents, from_catalog=True)


def _listed_history(
    ctx: Context, policy: Policy, spec: TargetSpec, repo: Repository, now: datetime
) -> Known:
    """The history from the repository's own listing of the policy's snapshots (one more
    restic process); a repository that does not exist yet is created here, once
    (serialised per repository), and never one the catalog has seen snapshots in. The
    listing also reconciles the catalog: interrupted runs, vanished snapshots."""
    from orchestrator.engine.reconcile import reconcile_listing

    snaps = snapshots_or_create(ctx, spec, repo, [f"policy:{policy.name}"])
    reconcile_listing(ctx, spec.name, snaps, policy.name, now)
    fulls = [s for s in snaps if s.tag("level") == "full"]
    parents = {}
    if fulls:
        parents["newest_full"] = Parent(fulls[-1].id, fulls[-1].time)
    if snaps:
        parents["newest_any"] = Parent(snaps[-1].id, snaps[-1].time)
    history = History(
        newest_full=parents["newest_full"].time if fulls else None,
        newest_any=parents["newest_any"].time if snaps else None,
        last_full_failed=last_full_failed(ctx.catalog, policy.name, spec.name),
    )
    return Known(history, parents, from_catalog=False)


def last_full_failed(
    catalog: Catalog, policy: str, target: str, before: datetime | None = None
) -> bool:
    """The most recent full attempt failed: the next run must be a full (Bareos rule).
    A run refused as busy (`skipped`) was no attempt and does not count."""
    last = catalog.newest_run(
        policy, target, level="full", outcomes=("success", "partial", "failed"), before=before
    )
    return last is not None and last.outcome == "failed"


_EVENT_OF = {
    "success": (RUN_SUCCEEDED, "info"),
    "partial": (RUN_PARTIAL, "warning"),
    "failed": (RUN_FAILED, "error"),
    "cancelled": (RUN_CANCELLED, "warning"),
    "skipped": (RUN_SKIPPED, "warning"),
}


def _finish(ctx: Context, run: RunRecord, outcome: str, kind: str | None, message: str) -> None:
    finished = end_run(ctx, run, outcome, kind, message)
    event_kind, severity = _EVENT_OF[outcome]
    sev: Severity = severity  # type: ignore[assignment]
    ctx.events.publish(
        Event(
            kind=event_kind,
            time=finished,
            severity=sev,
            summary=f"backup of '{run.policy}' to '{run.target}': {outcome}: {message}",
            policy=run.policy,
            target=run.target,
            run_id=run.id,
            details={
                "level": run.level,
                "asked_level": run.asked_level,
                "error_kind": kind,
                "snapshot_id": run.snapshot_id,
                "slot_key": run.slot_key,
            },
        )
    )


def exit_code_for(runs: list[RunRecord]) -> ExitCode:
    """0 all good; 75 only busy ones (our run lock or a live restic lock); 3 some failed
    or partial; 1 all failed."""
    outcomes = [r.outcome for r in runs]
    troubled = [r for r in runs if r.outcome != "success"]
    if troubled and all(r.error_kind in features.BUSY_KINDS for r in troubled):
        return ExitCode.BUSY
    if outcomes and all(o == "success" for o in outcomes):
        return ExitCode.OK
    if outcomes and all(o == "failed" for o in outcomes):
        return ExitCode.FAILURE
    return ExitCode.PARTIAL
