"""Retention: forget by the policy's `retention`, per target, safely; prune on its own.

The keep rules are restic's own (`--keep-last/hourly/daily/weekly/monthly/yearly`,
all of a policy's snapshots on a target as one group, whatever their level, host or
paths), evaluated here as a pure function of one listing of the target
(`policies.keep.rule_keeps`, proved equal to restic's `forget --dry-run` plan on both
versions), so one listing plans every policy on a target; then exactly the planned
ids are removed, so nothing is decided twice. The rules know nothing of levels: on top
of the plan the snapshots the levels need stay (`policies.keep`: the newest full, the
parent of the next differential), each with its reason. restic 0.14 can remove every
snapshot of a group, hence the refusal of a plan that removes all of a policy's
snapshots or more than `forget_max_share` of them at once.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field

from orchestrator.engine.context import Context
from orchestrator.engine.due_rules import share_refusal
from orchestrator.engine.locks import run_lock
from orchestrator.errors import BusyError, OrchestratorError
from orchestrator.events import (
    PRUNE_DONE,
    PRUNE_FAILED,
    RETENTION_APPLIED,
    RETENTION_FAILED,
    RETENTION_REFUSED,
    Event,
)
from orchestrator.policies.keep import KEEP_RULES, Snap, level_keeps, rule_keeps
from orchestrator.policies.model import Policy
from orchestrator.restic import commands, features
from orchestrator.restic.commands import Snapshot
from orchestrator.targets import Target
from orchestrator.verify.media import list_content, pruned_files, snapshot_files

log = logging.getLogger("orchestrator.retention")

# mark: how many files our own forget/prune removed from the media listing since the
# last media run (the media run reports and clears it)
MEDIA_ACCEPTED = "media-accepted:"


@dataclass
class ForgetResult:
    policy: str
    target: str
    dry_run: bool
    keep: list[str] = field(default_factory=list)  # full snapshot ids
    remove: list[str] = field(default_factory=list)
    # ids restic's rules would have removed, kept for the levels: id -> why
    reasons: dict[str, str] = field(default_factory=dict)
    removed: bool = False
    refused: str | None = None
    error: str | None = None
    error_kind: str | None = None  # features.BUSY_KINDS: another live process holds a lock

    @property
    def summary(self) -> str:
        where = f"{self.policy}@{self.target}"
        if self.error:
            return f"{where}: retention failed: {self.error}"
        if self.refused:
            return f"{where}: retention refused: {self.refused}; nothing removed"
        kept = "".join(f"; kept {i[:8]}: {why}" for i, why in self.reasons.items())
        if not self.remove:
            return f"{where}: keep {len(self.keep)}, nothing to remove{kept}"
        verb = "removed" if self.removed else "would remove"
        return f"{where}: keep {len(self.keep)}, {verb} {len(self.remove)}{kept}"


def forget_policies(
    ctx: Context,
    policies: list[Policy],
    dry_run: bool = False,
    only_target: str | None = None,
    max_share: float | None = None,
) -> list[ForgetResult]:
    """Retention of several policies, per target: ONE listing of the target plans every
    policy on it (the keep rules are computed here, `policies.keep.rule_keeps`), and ONE
    `restic forget ID...` removes what all of them planned. A daemon pass over a thousand
    policies sharing a target starts two restic processes there, not a thousand."""
    share = ctx.config.settings.forget_max_share if max_share is None else max_share
    results: dict[tuple[str, str], ForgetResult] = {}
    on_target: dict[str, list[Policy]] = {}
    for policy in policies:
        for spec in ctx.config.targets_of(policy, only_target):
            result = results[(policy.name, spec.name)] = ForgetResult(
                policy.name, spec.name, dry_run
            )
            if policy.retention.is_empty():
                result.refused = "the policy has no retention rules"
            else:
                on_target.setdefault(spec.name, []).append(policy)
    for target, group in on_target.items():
        _forget_on_target(ctx, target, group, results, dry_run, share)
    if not dry_run:
        for result in results.values():
            _publish(ctx, result)
    return list(results.values())


def _forget_on_target(
    ctx: Context,
    target: str,
    policies: list[Policy],
    results: dict[tuple[str, str], ForgetResult],
    dry_run: bool,
    share: float,
) -> None:
    """Lock each policy on the target (a busy one is left out), list the target once,
    plan each policy, then remove every planned id in one restic process."""
    spec = ctx.config.targets[target]
    now = ctx.clock.now()
    with ExitStack() as held:
        planned: list[Policy] = []
        for policy in sorted(policies, key=lambda p: p.name):  # one order: no deadlock
            try:
                held.enter_context(
                    run_lock(
                        ctx.config.settings.state_dir / "locks",
                        f"{policy.name}@{target}",
                        ctx.host,
                        now,
                    )
                )
                planned.append(policy)
            except BusyError as exc:
                result = results[(policy.name, target)]
                result.error, result.error_kind = exc.message, features.BUSY
        if not planned:
            return
        mine = [results[(p.name, target)] for p in planned]
        try:
            _, repo = ctx.open_repository(spec)
            tags = [f"policy:{planned[0].name}"] if len(planned) == 1 else []
            listing = commands.snapshots(ctx.runner, repo, tags)
            keep_oldest = features.features_of(ctx.runner.version).forget_keeps_oldest
            for policy in planned:
                _plan(policy, listing, keep_oldest, share, results[(policy.name, target)])
            removing = [r for r in mine if not r.refused and r.remove]
            ids = [i for r in removing for i in r.remove]
            if dry_run or not ids:
                return
            with listing_lock(ctx, target):
                try:
                    commands.forget_ids(ctx.runner, repo, ids)
                finally:  # even a forget that failed half-way removed only these
                    accept_own_removals(ctx, target, snapshot_files(ids))
            for result in removing:
                result.removed = True
                ctx.catalog.mark_gone(target, result.remove, "forgotten", now)
            key = f"removed-since-prune:{target}"
            before = int(ctx.catalog.get_mark(key) or 0)
            ctx.catalog.set_mark(key, str(before + len(ids)), now)
        except BusyError as exc:
            for result in mine:
                result.error, result.error_kind = exc.message, features.BUSY
        except OrchestratorError as exc:
            for result in mine:
                if not result.refused:
                    result.error = exc.message
                    result.error_kind = getattr(exc, "kind", None)


def _plan(
    policy: Policy,
    listing: list[Snapshot],
    keep_oldest: bool,
    share: float,
    result: ForgetResult,
) -> None:
    """The policy's plan from the target's listing: restic's keep rules, then the
    snapshots the levels need, then the share refusal."""
    mine = [Snap(s.id, s.time, s.tag("level")) for s in listing if s.tag("policy") == policy.name]
    counts = [getattr(policy.retention, rule) for rule in KEEP_RULES]
    kept = rule_keeps(mine, counts, keep_oldest)
    decision = level_keeps(
        mine,
        {s.id for s in mine if s.id not in kept},
        differential_planned=any(e.level == "differential" for e in policy.schedules),
    )
    result.keep, result.remove = list(decision.keep), list(decision.remove)
    result.reasons = decision.reasons
    result.refused = share_refusal(len(result.keep) + len(result.remove), len(result.remove), share)


def _publish(ctx: Context, result: ForgetResult) -> None:
    if result.error:
        kind, severity = RETENTION_FAILED, "error"
    elif result.refused:
        kind, severity = RETENTION_REFUSED, "error"
    else:
        kind, severity = RETENTION_APPLIED, "info"
    ctx.events.publish(
        Event(
            kind,
            ctx.clock.now(),
            severity,  # type: ignore[arg-type]
            result.summary,
            policy=result.policy,
            target=result.target,
            details={
                "removed": result.remove if result.removed else [],
                "kept": result.keep,
                "kept_for_levels": result.reasons,
            },
        )
    )


def listing_lock(ctx: Context, target: str) -> AbstractContextManager[None]:
    """The lock the verification tiers hold on a target (`verify@NAME`): a media run
    that listed the repository before our forget/prune deleted files must not record
    that listing after we took them out of it (they would be "missing" next time)."""
    return run_lock(
        ctx.config.settings.state_dir / "locks", f"verify@{target}", ctx.host, ctx.clock.now()
    )


def accept_own_removals(ctx: Context, target: str, paths: list[str]) -> None:
    """Files our own forget/prune removed are not damage: drop them from the media
    listing (only those paths; any other file gone from it is still reported) and count
    them for the next media run's report."""
    if not paths:
        return
    accepted = ctx.catalog.accept_media_removals(target, paths)
    if accepted:
        key = f"{MEDIA_ACCEPTED}{target}"
        before = int(ctx.catalog.get_mark(key) or 0)
        ctx.catalog.set_mark(key, str(before + accepted), ctx.clock.now())


def _listing(target: Target, name: str, when: str) -> dict[str, int] | None:
    try:
        return list_content(target)
    except (OSError, OrchestratorError) as exc:
        log.warning(
            "target '%s': cannot list the repository %s prune (%s); the media tier will "
            "report the files prune removed as missing",
            name,
            when,
            exc,
        )
        return None


def prune_target(ctx: Context, name: str) -> str | None:
    """`restic prune` on one target; returns the error, or None when it worked.

    When the media tier keeps a listing of the target, the repository is listed right
    before and right after the prune: the packs and indexes that went in between are
    ours and accepted (see `pruned_files`)."""
    spec = ctx.config.targets[name]
    now = ctx.clock.now()
    error = None
    target = None
    try:
        target, repo = ctx.open_repository(spec)
        with listing_lock(ctx, name):
            watch = bool(ctx.catalog.media_files(name))
            before = _listing(target, name, "before") if watch else None
            try:
                commands.prune(ctx.runner, repo)
            finally:  # a prune that failed half-way may have removed some
                after = _listing(target, name, "after") if before is not None else None
                if before is not None and after is not None:
                    accept_own_removals(ctx, name, pruned_files(before, after))
        ctx.catalog.set_mark(f"removed-since-prune:{name}", None, now)
    except OrchestratorError as exc:
        error = exc.message
    finally:  # an SFTP connection or S3 client pool must not outlive the prune (the daemon)
        getattr(target, "close", lambda: None)()
    ctx.events.publish(
        Event(
            PRUNE_FAILED if error else PRUNE_DONE,
            ctx.clock.now(),
            "error" if error else "info",
            f"prune of target '{name}': " + (error or "unreferenced data removed"),
            target=name,
        )
    )
    return error
