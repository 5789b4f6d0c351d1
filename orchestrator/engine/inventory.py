"""What each target's repository holds, read from restic itself (not the catalog)."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.engine.context import Context
from orchestrator.engine.preflight import ready_repository
from orchestrator.engine.reconcile import reconcile_listing
from orchestrator.errors import OrchestratorError
from orchestrator.policies.model import Policy, TargetSpec
from orchestrator.restic import commands, features
from orchestrator.restic.commands import Snapshot


@dataclass(frozen=True)
class TargetListing:
    target: str
    snapshots: tuple[Snapshot, ...]
    error: str | None = None
    error_kind: str | None = None  # features.NO_REPOSITORY is a state, not a failure


def list_snapshots(
    ctx: Context, policy: Policy | None = None, only_target: str | None = None
) -> list[TargetListing]:
    """One listing per target; a target that cannot be read says why instead of failing all."""
    specs: list[TargetSpec]
    if policy is not None:
        specs = ctx.config.holders_of(policy, only_target)
    elif only_target is not None:
        if only_target not in ctx.config.targets:
            from orchestrator.errors import UsageError

            raise UsageError(f"unknown target '{only_target}'")
        specs = [ctx.config.targets[only_target]]
    else:
        specs = list(ctx.config.targets.values())
    tags = [f"policy:{policy.name}"] if policy else []
    listings = []
    for spec in specs:
        try:
            _target, repo = ready_repository(ctx, spec)
            listed_at = ctx.clock.now()
            snaps = commands.snapshots(ctx.runner, repo, tags)
            reconcile_listing(ctx, spec.name, snaps, policy.name if policy else None, listed_at)
            listings.append(TargetListing(spec.name, tuple(snaps)))
        except OrchestratorError as exc:
            kind = getattr(exc, "kind", type(exc).__name__)
            if kind == features.NO_REPOSITORY:
                listings.append(
                    TargetListing(spec.name, (), "no repository yet (no backup run)", kind)
                )
            else:
                listings.append(TargetListing(spec.name, (), exc.message, kind))
    return listings
