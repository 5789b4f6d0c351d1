"""Per policy and target: the newest good backup, its age against the RPO, what is next.

Read from the catalog only: `status` must answer at 3 a.m. in a second, even
when a target is unreachable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from orchestrator.catalog import RunRecord
from orchestrator.engine.context import Context
from orchestrator.policies.model import LEVELS
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
        for target in policy.targets:
            newest = ctx.catalog.newest_run(policy.name, target)
            by_level = {lv: ctx.catalog.newest_run(policy.name, target, level=lv) for lv in LEVELS}
            recent = ctx.catalog.runs(policy=policy.name, target=target, kind="backup", limit=1)
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
                )
            )
    return rows
