"""Retention: forget by the policy's `retention`, per target, safely; prune on its own.

restic decides what the keep rules keep (`forget --dry-run --json`, one group per
policy: `--tag policy:NAME --group-by ''`, so snapshots of every level, host and
path set count together). We only check the plan and then remove exactly the ids it
named, so nothing is decided twice. restic 0.14 can remove every snapshot of a
group, hence the refusal of a plan that removes all of a policy's snapshots or more
than `forget_max_share` of them at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.engine.context import Context
from orchestrator.engine.due import share_refusal
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
from orchestrator.policies.model import Policy, Retention
from orchestrator.restic import commands, features


@dataclass
class ForgetResult:
    policy: str
    target: str
    dry_run: bool
    keep: list[str] = field(default_factory=list)  # full snapshot ids
    remove: list[str] = field(default_factory=list)
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
        if not self.remove:
            return f"{where}: keep {len(self.keep)}, nothing to remove"
        verb = "removed" if self.removed else "would remove"
        return f"{where}: keep {len(self.keep)}, {verb} {len(self.remove)}"


def keep_options(retention: Retention) -> list[tuple[str, int]]:
    """restic's --keep-* options for the policy's retention, in restic's order."""
    names = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
    return [(n, v) for n in names if (v := getattr(retention, n)) is not None]


def forget_policy(
    ctx: Context,
    policy: Policy,
    dry_run: bool = False,
    only_target: str | None = None,
    max_share: float | None = None,
) -> list[ForgetResult]:
    """Plan (always), check the plan, then forget by id on each target of the policy."""
    share = ctx.config.settings.forget_max_share if max_share is None else max_share
    results = []
    for spec in ctx.config.targets_of(policy, only_target):
        result = ForgetResult(policy.name, spec.name, dry_run)
        results.append(result)
        if policy.retention.is_empty():
            result.refused = "the policy has no retention rules"
            continue
        now = ctx.clock.now()
        try:
            with run_lock(
                ctx.config.settings.state_dir / "locks", f"{policy.name}@{spec.name}", ctx.host, now
            ):
                _, repo = ctx.open_repository(spec)
                plan = commands.forget_plan(
                    ctx.runner, repo, [f"policy:{policy.name}"], keep_options(policy.retention)
                )
                result.keep = [s.id for s in plan.keep]
                result.remove = [s.id for s in plan.remove]
                total = len(plan.keep) + len(plan.remove)
                result.refused = share_refusal(total, len(plan.remove), share)
                if not dry_run and not result.refused and result.remove:
                    commands.forget_ids(ctx.runner, repo, result.remove)
                    result.removed = True
                    ctx.catalog.mark_gone(spec.name, result.remove, "forgotten", now)
                    key = f"removed-since-prune:{spec.name}"
                    before = int(ctx.catalog.get_mark(key) or 0)
                    ctx.catalog.set_mark(key, str(before + len(result.remove)), now)
        except BusyError as exc:
            result.error, result.error_kind = exc.message, features.BUSY
        except OrchestratorError as exc:
            result.error, result.error_kind = exc.message, getattr(exc, "kind", None)
        if not dry_run:
            _publish(ctx, result)
    return results


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
            details={"removed": result.remove if result.removed else [], "kept": result.keep},
        )
    )


def prune_target(ctx: Context, name: str) -> str | None:
    """`restic prune` on one target; returns the error, or None when it worked."""
    spec = ctx.config.targets[name]
    now = ctx.clock.now()
    error = None
    try:
        _, repo = ctx.open_repository(spec)
        commands.prune(ctx.runner, repo)
        ctx.catalog.set_mark(f"removed-since-prune:{name}", None, now)
    except OrchestratorError as exc:
        error = exc.message
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
