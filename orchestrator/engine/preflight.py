"""`target check`: per target, the facts an operator needs before trusting it with a backup.

Every backup already runs the cheap part (`Target.preflight()`); this is the full one:
reachable, host key (SFTP), credentials, bucket (S3), writable, repository initialised,
repository password, restic version, free space and the expected size of the next backup.
It never raises for a target's problem: each target gets one result, good or bad.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.engine.context import Context
from orchestrator.errors import ExitCode, OrchestratorError, ResticError, TargetError, UsageError
from orchestrator.policies.model import TargetSpec
from orchestrator.restic import commands, features
from orchestrator.restic.runner import Repository
from orchestrator.targets import Target

# The oldest restic this product is tested with (testing.md: 0.14 on Debian bookworm).
MIN_RESTIC = (0, 14)

_UNREACHABLE = frozenset({features.NETWORK, features.TIMEOUT})


@dataclass
class TargetCheck:
    target: str
    kind: str
    where: str
    ok: bool = False
    reachable: bool | None = None
    initialised: bool | None = None
    writable: bool | None = None
    password_ok: bool | None = None
    snapshots: int | None = None
    free_bytes: int | None = None
    next_backup_bytes: int | None = None
    restic_version: str | None = None
    restic_compatible: bool | None = None
    notes: list[str] = field(default_factory=list)
    problem: str | None = None
    problem_kind: str | None = None


def check_targets(ctx: Context, only: str | None = None) -> list[TargetCheck]:
    targets = ctx.config.targets
    if only is not None and only not in targets:
        known = ", ".join(sorted(targets)) or "none"
        raise UsageError(f"unknown target '{only}' (known: {known})")
    names = [only] if only else list(targets)  # as configured
    return [check_target(ctx, targets[n]) for n in names]


def check_target(ctx: Context, spec: TargetSpec) -> TargetCheck:
    target = ctx.target(spec)
    result = TargetCheck(spec.name, spec.kind, target.describe())
    result.restic_version, result.restic_compatible = _restic_version(ctx)
    try:
        try:
            probe = target.probe()
        except TargetError as exc:
            result.reachable = exc.kind not in _UNREACHABLE
            raise
        result.reachable = True
        result.initialised, result.writable = probe.initialised, probe.writable
        result.free_bytes = probe.free_bytes
        result.notes += probe.notes
        if probe.writable is False:
            raise TargetError(f"target '{spec.name}': the repository location is not writable")
        if not probe.initialised and ctx.catalog.ever_had_snapshot(spec.name):
            # "does not exist yet (restic creates it)" is the promise for a new target only
            result.notes = [n for n in result.notes if "restic creates it" not in n]
            raise missing_error(ctx, spec)
        if probe.initialised:
            _, repo = ctx.open_repository(spec)
            result.snapshots = len(commands.snapshots(ctx.runner, repo))
            result.password_ok = True
        result.next_backup_bytes = _next_backup_estimate(ctx, spec.name)
        if (
            result.free_bytes is not None
            and result.next_backup_bytes is not None
            and result.next_backup_bytes > result.free_bytes
        ):
            raise TargetError(
                f"target '{spec.name}': the next backup needs about "
                f"{result.next_backup_bytes} bytes but only {result.free_bytes} are free",
                features.DISK_FULL,
            )
        if not result.restic_compatible:
            raise OrchestratorError(
                f"restic {result.restic_version} is older than the tested "
                f"{MIN_RESTIC[0]}.{MIN_RESTIC[1]}"
            )
        result.ok = True
    except ResticError as exc:
        if exc.kind == features.WRONG_PASSWORD:
            result.password_ok = False
        result.problem, result.problem_kind = exc.message, exc.kind
    except OrchestratorError as exc:
        result.problem = exc.message
        result.problem_kind = getattr(exc, "kind", type(exc).__name__)
    finally:
        close = getattr(target, "close", None)
        if close is not None:
            close()
    return result


def missing_error(ctx: Context, spec: TargetSpec) -> OrchestratorError:
    """The one line for a repository that existed (the catalog saw snapshots) and is gone."""
    where = ctx.target(spec).describe()
    return OrchestratorError(
        f"target '{spec.name}': no repository at {where}, but the catalog has recorded "
        "snapshots there (an unmounted disk? a moved directory or bucket?); nothing was "
        f"created. If it is really lost, 'orchestrator target init {spec.name}' creates "
        "a new, empty one",
        kind=features.REPOSITORY_MISSING,
    )


def ready_repository(ctx: Context, spec: TargetSpec) -> tuple[Target, Repository]:
    """The target and its repository after the cheap preflight, for every restic run that
    reads (snapshots, restore, check, drill) as for backups: an unreachable target then
    fails with its own sentence (refused, timeout, host key, bucket) instead of restic's
    "unable to start the sftp session, error: EOF". The preflight's connection is closed."""
    target, repo = ctx.open_repository(spec)
    try:
        target.preflight()
    finally:
        close = getattr(target, "close", None)
        if close is not None:
            close()
    return target, repo


def exit_code_for(checks: list[TargetCheck]) -> ExitCode:
    if all(c.ok for c in checks):
        return ExitCode.OK
    if any(c.ok for c in checks):
        return ExitCode.PARTIAL
    return ExitCode.FAILURE


def _restic_version(ctx: Context) -> tuple[str | None, bool | None]:
    try:
        v = ctx.runner.version
    except ResticError:
        return None, False
    return f"{v.major}.{v.minor}.{v.patch}", v.at_least(*MIN_RESTIC)


def _next_backup_estimate(ctx: Context, target: str) -> int | None:
    """What the policies using this target added last time, summed: a rough guide to the
    next run (a full re-reads everything but adds only what deduplication cannot find)."""
    total, known = 0, False
    for policy in ctx.config.policies.values():
        if target not in policy.targets:
            continue
        last = ctx.catalog.newest_run(policy.name, target)
        if last is not None and last.bytes_added is not None:
            total += last.bytes_added
            known = True
    return total if known else None
