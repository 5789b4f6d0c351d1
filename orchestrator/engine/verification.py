"""Verification tiers and restore drills per target: lock, run, record, publish.

Every outcome goes to the catalog (a VerificationRecord, plus subset parts and the
media listing that make rotation and coverage work) and out through ctx.events:
damage as DAMAGE_FOUND, every drill as DRILL_DONE. Exit 4 on any damage.
"""

from __future__ import annotations

import secrets
import shutil
import uuid
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from orchestrator.catalog import VerificationRecord
from orchestrator.engine.context import Context
from orchestrator.engine.locks import run_lock
from orchestrator.engine.preflight import ready_repository
from orchestrator.errors import BusyError, CancelledError, ExitCode, OrchestratorError, UsageError
from orchestrator.events import DAMAGE_FOUND, DRILL_DONE, VERIFY_DONE, VERIFY_FAILED, Event
from orchestrator.policies.model import Policy, TargetSpec
from orchestrator.restic import commands, features
from orchestrator.verify import TIERS, Damage, TierResult, parse_size
from orchestrator.verify.check import run_check
from orchestrator.verify.drill import NoSnapshot, run_drill
from orchestrator.verify.media import media_coverage, run_media, vanished
from orchestrator.verify.subset import next_part, subset_coverage, subset_total

BUSY = "busy"
SKIPPED = "skipped"  # refused as busy before it began: not an attempt
CANCELLED = "cancelled"  # stopped by SIGINT/SIGTERM: not a health problem
SNAPSHOT_MISSING = "snapshot_missing"  # damage: a snapshot the catalog recorded is gone


def verify(
    ctx: Context,
    policy: Policy | None,
    only_target: str | None = None,
    tier: str = "all",
    accept_missing: bool = False,
) -> list[VerificationRecord]:
    """Run the tier(s) on every target of `policy` (or of the whole configuration).

    `accept_missing`: the media tier reports the files missing since its last listing
    once more and then forgets them (the operator repaired the repository or accepted
    the loss); without it a missing file is reported at every media run."""
    tiers = list(TIERS) if tier == "all" else [tier]
    if any(t not in TIERS for t in tiers):
        raise UsageError(f"unknown tier '{tier}' (check, subset, media or all)")
    records = []
    for spec in _targets(ctx, policy, only_target):
        for t in tiers:
            records.append(_verify_target(ctx, policy, spec, t, accept_missing))
    return records


def _targets(ctx: Context, policy: Policy | None, only: str | None) -> list[TargetSpec]:
    if policy is not None:
        return ctx.config.holders_of(policy, only)
    if only is not None:
        if only not in ctx.config.targets:
            raise UsageError(f"unknown target '{only}' (known: {', '.join(ctx.config.targets)})")
        return [ctx.config.targets[only]]
    return list(ctx.config.targets.values())


def _policies_of(ctx: Context, policy: Policy | None, target: str) -> list[Policy]:
    if policy is not None:
        return [policy]
    return [p for p in ctx.config.policies.values() if target in (*p.targets, *p.copy_to)]


def _verify_target(
    ctx: Context, policy: Policy | None, spec: TargetSpec, tier: str, accept_missing: bool = False
) -> VerificationRecord:
    rec = VerificationRecord(
        id=uuid.uuid4().hex,
        tier=tier,
        policy=policy.name if policy else None,
        target=spec.name,
        started_at=ctx.clock.now(),
        host=ctx.host,
        pid=ctx.pid,
    )

    def body() -> TierResult:
        if tier == "media":
            result = _media(ctx, policy, spec, rec, accept_missing)
        else:
            _target, repo = ready_repository(ctx, spec)
            part = None
            if tier == "subset":
                total = subset_total_for(ctx, policy, spec.name)
                part = f"{next_part(total, ctx.catalog.subset_parts(spec.name, total))}/{total}"
            listed_at = ctx.clock.now()
            held = commands.snapshots(ctx.runner, repo)
            result = run_check(ctx.runner, repo, part)
            result.damage += _lost(ctx, spec.name, listed_at, held)
            if tier == "subset" and not result.damage:
                i, total = (int(x) for x in part.split("/"))  # type: ignore[union-attr]
                ctx.catalog.record_subset_part(spec.name, total, i, rec.started_at, rec.id)
                cov = subset_coverage(
                    total, ctx.catalog.subset_parts(spec.name, total), ctx.clock.now()
                )
                result.details["coverage"] = cov.describe(
                    subset_runs_since(ctx, spec.name, cov.oldest_read) + 1
                )
                result.details["coverage_percent"] = cov.percent
                result.message += f"; {result.details['coverage']}"
        return result

    _locked_check(ctx, rec, f"verify@{spec.name}", body)
    return rec


def _lost(
    ctx: Context,
    target: str,
    listed_at: object,
    held: list | None = None,
    policy: str | None = None,
) -> list[Damage]:
    """Snapshots the catalog recorded as good that the repository no longer holds, and
    our retention did not remove: lost data, whatever `restic check` says of the rest.
    `held` is restic's listing; without it (media: no password) the listing of the
    repository's `snapshots/` folder is compared. `policy` narrows the report (a drill)."""
    from orchestrator.engine.reconcile import lost_snapshots, reconcile_listing

    if held is not None:
        reconcile_listing(ctx, target, held, None, listed_at)  # type: ignore[arg-type]
    return [
        Damage(
            SNAPSHOT_MISSING,
            f"snapshots/{r.snapshot_id}",
            f"snapshot {str(r.snapshot_id)[:8]} of '{r.policy}' ({r.level}, "
            f"{r.started_at:%Y-%m-%d %H:%M}) is recorded in the catalog but the repository "
            "no longer holds it ('orchestrator catalog rebuild' accepts the loss)",
        )
        for r in lost_snapshots(ctx.catalog, target, policy)
    ]


def subset_total_for(ctx: Context, policy: Policy | None, target: str) -> int:
    """N from the policy's read_data_fraction; one target shared by policies takes the
    largest N of them (the smallest share per run)."""
    fractions = [p.verify.read_data_fraction for p in _policies_of(ctx, policy, target) if p.verify]
    totals = [subset_total(f) for f in fractions if f]
    return max(totals) if totals else subset_total(None)


def subset_runs_since(ctx: Context, target: str, since: object) -> int:
    """How many good subset runs it took to reach the current coverage (for `status`)."""
    if since is None:
        return 0
    runs = ctx.catalog.verifications(target=target, tier="subset", outcomes=("ok",), limit=10_000)
    return sum(1 for r in runs if r.started_at >= since)  # type: ignore[operator]


def _media_budget(ctx: Context, policy: Policy | None, target: str) -> int | None:
    budgets = [
        parse_size(p.verify.media_budget)
        for p in _policies_of(ctx, policy, target)
        if p.verify and p.verify.media_budget
    ]
    return max(budgets) if budgets else None


def _media(
    ctx: Context,
    policy: Policy | None,
    spec: TargetSpec,
    rec: VerificationRecord,
    accept_missing: bool = False,
) -> TierResult:
    """No password is resolved: only the storage is read."""
    target = ctx.target(spec)
    known = ctx.catalog.media_files(spec.name)
    previous = {p: size for p, (size, _v) in known.items()}
    verified = {p: v for p, (_s, v) in known.items()}
    budget = _media_budget(ctx, policy, spec.name)
    try:
        result, current, good = run_media(target, previous, verified, budget)
    finally:  # an SFTP connection or S3 client pool must not outlive the tier (the daemon)
        getattr(target, "close", lambda: None)()
    now = ctx.clock.now()
    from orchestrator.engine.reconcile import Reconciled, mark_vanished, publish

    present = [p.rsplit("/", 1)[-1] for p in current if p.startswith("snapshots/")]
    gone = mark_vanished(ctx, spec.name, None, present, rec.started_at)
    publish(ctx, Reconciled(spec.name, vanished=gone))
    named = {d.path.rsplit("/", 1)[-1][:8] for d in result.damage if d.path}
    # a snapshot file the listing already reports missing is named once, not twice
    result.damage += [
        d
        for d in _lost(ctx, spec.name, rec.started_at)
        if d.path.rsplit("/", 1)[-1][:8] not in named
    ]
    # A file missing without our own forget/prune explaining it stays in the listing, so
    # every media run reports it again (never silence after one alarm) until the operator
    # accepts the loss with --accept-missing.
    missing = {} if accept_missing else {p: previous[p] for p in vanished(previous, current)}
    ctx.catalog.record_media_listing(spec.name, {**current, **missing}, now)
    ctx.catalog.mark_media_verified(spec.name, good, now)
    state = ctx.catalog.media_files(spec.name)
    cov = media_coverage(current, {p: v for p, (_s, v) in state.items()})
    result.details.update(
        {
            "files_listed": cov.files,
            "bytes_listed": cov.bytes_total,
            "budget_bytes": budget,
            "coverage_percent": round(cov.percent, 1),
            "files_verified": cov.files_verified,
            "oldest_verified": cov.oldest_verified,
        }
    )
    result.message += f"; {cov.percent:.0f}% of the repository's bytes verified so far"
    # files our own forget/prune removed left the listing then (engine/retention.py)
    mark = f"media-accepted:{spec.name}"
    if accepted := int(ctx.catalog.get_mark(mark) or 0):
        ctx.catalog.set_mark(mark, None, now)
        result.details["removed_by_own_retention"] = accepted
        result.message += (
            f"; {accepted} files removed by our own forget/prune since the last listing "
            "(not damage)"
        )
    return result


def drill(
    ctx: Context,
    policy: Policy,
    only_target: str | None = None,
    seed: int | None = None,
    after_restore: Callable[[Path], None] | None = None,
) -> list[VerificationRecord]:
    """Restore drill of `policy`'s newest snapshot on each target (or one)."""
    return [
        _drill_target(ctx, policy, spec, seed, after_restore)
        for spec in ctx.config.holders_of(policy, only_target)
    ]


def _drill_target(
    ctx: Context,
    policy: Policy,
    spec: TargetSpec,
    seed: int | None,
    after_restore: Callable[[Path], None] | None,
) -> VerificationRecord:
    chosen_seed = seed if seed is not None else secrets.randbits(31)
    rec = VerificationRecord(
        id=uuid.uuid4().hex,
        tier="drill",
        policy=policy.name,
        target=spec.name,
        started_at=ctx.clock.now(),
        seed=chosen_seed,
        host=ctx.host,
        pid=ctx.pid,
    )
    state = ctx.config.settings.state_dir
    spec_drill = policy.drill

    def body() -> TierResult:
        drills = state / "drills"
        for stale in drills.glob(f"{spec.name}-*"):  # left by a killed drill
            shutil.rmtree(stale, ignore_errors=True)
        _target, repo = ready_repository(ctx, spec)
        previous: list[list[str]] = []
        sampled = spec_drill is not None and (spec_drill.sample_files or spec_drill.sample_bytes)
        # an explicit seed reproduces a sample without history; a whole drill needs none
        if seed is None and sampled:
            previous = [
                r.details.get("sample", [])
                for r in ctx.catalog.verifications(
                    target=spec.name, tier="drill", policy=policy.name, limit=1000
                )
                if r.outcome in ("ok", "damaged")
            ]
        try:
            # restic's own `ls latest --tag` names the newest snapshot: no listing first
            result = run_drill(
                ctx.runner,
                repo,
                None,
                drills / f"{spec.name}-{rec.id[:12]}",
                chosen_seed,
                spec_drill.sample_files if spec_drill else None,
                parse_size(spec_drill.sample_bytes)
                if spec_drill and spec_drill.sample_bytes
                else None,
                spec_drill.rto_minutes if spec_drill else None,
                previous_samples=previous,
                after_restore=after_restore,
                tags=[f"policy:{policy.name}"],
            )
        except NoSnapshot:
            # the catalog knew good ones here: they were lost, which is damage (exit 4)
            listed_at = ctx.clock.now()
            held = commands.snapshots(ctx.runner, repo)  # all policies': a whole listing
            lost = _lost(ctx, spec.name, listed_at, held, policy.name)
            if lost:
                return TierResult(
                    tier="drill",
                    damage=lost,
                    message=f"nothing to drill: {len(lost)} snapshot(s) of policy "
                    f"'{policy.name}' recorded in the catalog are gone from target "
                    f"'{spec.name}'",
                )
            raise OrchestratorError(
                f"target '{spec.name}' holds no snapshot of policy '{policy.name}' to drill"
            ) from None
        rec.snapshot_id = result.details.get("snapshot")
        return result

    _locked_check(ctx, rec, f"drill@{spec.name}", body)
    ctx.events.publish(
        Event(
            kind=DRILL_DONE,
            time=rec.finished_at or ctx.clock.now(),
            severity={"ok": "info", SKIPPED: "warning"}.get(rec.outcome, "error"),
            summary=f"drill of '{policy.name}' on '{spec.name}': {rec.outcome}: {rec.message}",
            policy=policy.name,
            target=spec.name,
            run_id=rec.id,
            details={
                **{k: v for k, v in rec.details.items() if k != "sample"},
                "outcome": rec.outcome,  # ok | damaged | failed | skipped | cancelled
            },
        )
    )
    return rec


def _locked_check(
    ctx: Context, rec: VerificationRecord, lock_name: str, body: Callable[[], TierResult]
) -> None:
    """Record the check as started, run it under its lock, and record how it ended.

    As for backups, busy is not an attempt: refused by our run lock or a live restic
    lock, the check is `skipped` (no health problem, still due). Stopped by SIGINT/
    SIGTERM (restic stopped cleanly, or our own hashing interrupted) it is `cancelled`,
    recorded, then re-raised so the caller stops."""
    ctx.catalog.start_verification(rec)
    try:
        with run_lock(ctx.config.settings.state_dir / "locks", lock_name, ctx.host, rec.started_at):
            result = body()
        _finish(ctx, rec, result)
    except CancelledError as exc:
        _fail(ctx, rec, features.INTERRUPTED, exc.message, CANCELLED)
        raise
    except KeyboardInterrupt:  # SIGINT/SIGTERM outside restic (media hashes in Python)
        _fail(ctx, rec, features.INTERRUPTED, "interrupted (SIGINT/SIGTERM)", CANCELLED)
        raise
    except BusyError as exc:
        _fail(ctx, rec, BUSY, exc.message, SKIPPED)
    except OrchestratorError as exc:
        kind = getattr(exc, "kind", "failed")
        outcome = (
            SKIPPED
            if kind in features.BUSY_KINDS
            else CANCELLED
            if kind == features.INTERRUPTED
            else "failed"
        )
        _fail(ctx, rec, kind, exc.message, outcome)


def _finish(ctx: Context, rec: VerificationRecord, result: TierResult) -> None:
    rec.finished_at = ctx.clock.now()
    rec.part = result.part
    rec.files, rec.bytes, rec.seconds = result.files, result.bytes, result.seconds
    rec.message = result.message
    rec.damage = [asdict(d) for d in result.damage]
    rec.details = result.details
    rec.outcome = "damaged" if result.damage else "ok"
    rec.error_kind = "damage" if result.damage else None
    ctx.catalog.finish_verification(rec)
    if result.damage:
        shown = "; ".join(d.line() for d in result.damage[:5])
        more = f" (and {len(result.damage) - 5} more)" if len(result.damage) > 5 else ""
        ctx.events.publish(
            Event(
                kind=DAMAGE_FOUND,
                time=rec.finished_at,
                severity="critical",
                summary=f"{rec.tier} on target '{rec.target}' found damage: {shown}{more}",
                policy=rec.policy,
                target=rec.target,
                run_id=rec.id,
                details={"tier": rec.tier, "damage": rec.damage},
            )
        )
    else:
        _published(ctx, rec, VERIFY_DONE)  # audit log (issue 16)


def _published(ctx: Context, rec: VerificationRecord, kind: str) -> None:
    """A check's outcome for the audit log (issue 16); drills publish DRILL_DONE instead."""
    if rec.tier == "drill":
        return
    ctx.events.publish(
        Event(
            kind=kind,
            time=rec.finished_at or ctx.clock.now(),
            severity="info" if rec.outcome == "ok" else "warning",
            summary=f"{rec.tier} on target '{rec.target}': {rec.outcome}: {rec.message}",
            policy=rec.policy,
            target=rec.target,
            run_id=rec.id,
            details={"tier": rec.tier, "outcome": rec.outcome, "error_kind": rec.error_kind},
        )
    )


def _fail(
    ctx: Context, rec: VerificationRecord, kind: str, message: str, outcome: str = "failed"
) -> None:
    rec.finished_at = ctx.clock.now()
    rec.outcome = outcome
    rec.error_kind = kind
    rec.message = message
    ctx.catalog.finish_verification(rec)
    _published(ctx, rec, VERIFY_FAILED)  # audit log (issue 16)


def exit_code_for(records: list[VerificationRecord]) -> ExitCode:
    """4 any damage; 75 only busy (our run lock or a live restic lock); 1 any other
    failure; 0 all verified."""
    if any(r.outcome == "damaged" for r in records):
        return ExitCode.DAMAGE
    failed = [r for r in records if r.outcome != "ok"]
    if failed and all(r.error_kind in features.BUSY_KINDS for r in failed):
        return ExitCode.BUSY
    return ExitCode.FAILURE if failed else ExitCode.OK
