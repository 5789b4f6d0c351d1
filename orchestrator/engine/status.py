"""Per policy and target: the newest good backup, its age against the RPO, what is next.

Read from the catalog only: `status` must answer at 3 a.m. in a second, even
when a target is unreachable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from orchestrator.catalog import RunRecord, SlotRecord, VerificationRecord
from orchestrator.engine.context import Context
from orchestrator.policies.model import LEVELS, Policy
from orchestrator.policies.schedule import Slot, next_slot


@dataclass(frozen=True)
class TargetStatus:
    policy: str
    target: str
    importance: str
    newest: RunRecord | None
    newest_by_level: dict[str, RunRecord | None]
    last_run: RunRecord | None
    age_hours: float | None
    rpo_hours: float | None
    next_due: Slot | None
    last_drill: VerificationRecord | None = None  # newest successful drill
    drill_age_hours: float | None = None
    subset_coverage: str | None = None  # e.g. "100% of data read within the last 8 runs / 23 days"
    # The daemon's slots: not run on time (missed, skipped, interrupted), newest first,
    # and the runs going on now.
    missed: tuple[SlotRecord, ...] = ()
    running: tuple[RunRecord, ...] = ()

    @property
    def rpo_breached(self) -> bool | None:
        if self.rpo_hours is None:
            return None
        return self.age_hours is None or self.age_hours > self.rpo_hours

    @property
    def health(self) -> str:
        if self.newest is None:
            return "no backup"
        if self.rpo_breached:
            return "RPO breached"
        if self.last_run is not None and self.last_run.outcome in ("failed", "interrupted"):
            return "last run " + self.last_run.outcome
        if self.last_run is not None and self.last_run.outcome == "partial":
            return "last run partial"
        return "ok"


def status(ctx: Context, now: datetime | None = None) -> list[TargetStatus]:
    now = now or ctx.clock.now()
    tz = ctx.config.settings.timezone
    rows = []
    for policy in ctx.config.policies.values():
        upcoming = next_slot(policy, tz, now)
        missed = _missed_slots(ctx, policy.name)
        for target in policy.targets:
            newest = ctx.catalog.newest_run(policy.name, target)
            by_level = {lv: ctx.catalog.newest_run(policy.name, target, level=lv) for lv in LEVELS}
            # a run refused as busy (skipped) was no attempt: it says nothing about health
            runs = ctx.catalog.runs(policy=policy.name, target=target, kind="backup", limit=20)
            recent = [r for r in runs if r.outcome != "skipped"]
            age = (now - newest.started_at).total_seconds() / 3600 if newest else None
            rows.append(
                TargetStatus(
                    policy=policy.name,
                    target=target,
                    importance=policy.importance,
                    newest=newest,
                    newest_by_level=by_level,
                    last_run=recent[0] if recent else None,
                    age_hours=age,
                    rpo_hours=policy.rpo_hours,
                    next_due=upcoming,
                    **_verification_status(ctx, policy, target, now),
                    missed=missed,
                    running=tuple(
                        r
                        for r in ctx.catalog.runs(policy=policy.name, target=target, limit=10)
                        if r.outcome == "running"
                    ),
                )
            )
    return rows


MISSED_SHOWN = 50


def _missed_slots(ctx: Context, policy: str) -> tuple[SlotRecord, ...]:
    """Slots not run on their own: missed, skipped, interrupted; a slot still `started`
    by a process that is gone counts as interrupted (the next pass will record it so)."""
    import dataclasses

    from orchestrator.engine.context import _pid_alive

    found = []
    for rec in ctx.catalog.slots(
        kind="backup",
        policy=policy,
        states=("missed", "skipped", "interrupted", "started"),
        limit=MISSED_SHOWN,
    ):
        if rec.state == "started":
            if rec.host != ctx.host or _pid_alive(rec.pid):
                continue
            rec = dataclasses.replace(
                rec, state="interrupted", note=f"its process (pid {rec.pid}) is gone"
            )
        found.append(rec)
    return tuple(found)


def _verification_status(ctx: Context, policy: Policy, target: str, now: datetime) -> dict:
    """Time since the last good drill and the subset coverage, from the catalog only."""
    from orchestrator.engine.verification import subset_runs_since, subset_total_for
    from orchestrator.verify.subset import subset_coverage

    drills = ctx.catalog.verifications(
        target=target, tier="drill", policy=policy.name, outcomes=("ok",), limit=1
    )
    last = drills[0] if drills else None
    total = subset_total_for(ctx, policy, target)
    cov = subset_coverage(total, ctx.catalog.subset_parts(target, total), now)
    return {
        "last_drill": last,
        "drill_age_hours": (now - last.started_at).total_seconds() / 3600 if last else None,
        "subset_coverage": cov.describe(subset_runs_since(ctx, target, cov.oldest_read)),
    }
