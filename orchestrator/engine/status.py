"""Per policy and target: the newest good backup, its age against the RPO, what is next.

Read from the catalog only: `status` must answer at 3 a.m. in a second, even
when a target is unreachable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

from orchestrator.catalog import RunRecord, SlotRecord, VerificationRecord
from orchestrator.engine.context import Context
from orchestrator.policies.model import LEVELS, Policy
from orchestrator.policies.schedule import Slot, next_slot
from orchestrator.verify import Damage

T = TypeVar("T")


@dataclass(frozen=True)
class Problem:
    """One reason a target is not healthy: `health` is its label, `reason` the text."""

    health: str
    reason: str
    tier: str | None = None  # check | subset | media | drill, for verification problems


# Worst first: `health` is the label of the worst problem. Damage comes first: a
# repository that will not restore makes every backup in it worthless.
SEVERITY = (
    "damaged",
    "no backup",
    "RPO breached",
    "last run failed",
    "last run interrupted",
    "verify failed",
    "drill failed",
    "verify overdue",
    "drill overdue",
    "last run partial",
)


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
    # the newest verification and drill outcomes: damaged, failed, overdue
    check_problems: tuple[Problem, ...] = ()
    timezone: str = "UTC"  # the config's: times in reasons are shown in it

    @property
    def rpo_breached(self) -> bool | None:
        if self.rpo_hours is None:
            return None
        return self.age_hours is None or self.age_hours > self.rpo_hours

    @property
    def problems(self) -> list[Problem]:
        """Everything wrong with this policy on this target, worst first."""
        found = list(self.check_problems)
        if self.newest is None:
            found.append(Problem("no backup", "no good backup on this target yet"))
        elif self.rpo_breached:
            found.append(
                Problem(
                    "RPO breached",
                    f"newest good backup is {self.age_hours:.1f} h old, "
                    f"beyond its RPO of {self.rpo_hours:g} h",
                )
            )
        last = self.last_run
        if last is not None and last.outcome in ("failed", "interrupted", "partial"):
            when = last.started_at.astimezone(ZoneInfo(self.timezone))
            found.append(
                Problem(
                    "last run " + last.outcome,
                    f"last backup ({when:%Y-%m-%d %H:%M %Z}) {last.outcome}"
                    + (f": {last.message}" if last.message else ""),
                )
            )
        return sorted(found, key=lambda p: SEVERITY.index(p.health))

    @property
    def health(self) -> str:
        problems = self.problems
        return problems[0].health if problems else "ok"


def status(ctx: Context, now: datetime | None = None) -> list[TargetStatus]:
    """Every (policy, target) in config order. The catalog is asked a few grouped
    questions for all pairs at once (newest runs, last attempts, running runs, missed
    slots) and each target's own checks once: 1,000 policies with a year of runs answer
    in a fraction of a second, where a dozen queries per pair took seconds."""
    now = now or ctx.clock.now()
    tz = ctx.config.settings.timezone
    policies = list(ctx.config.policies.values())
    pairs = [(p.name, t) for p in policies for t in p.targets]
    newest = ctx.catalog.newest_runs(pairs)
    by_level = {lv: ctx.catalog.newest_runs(pairs, level=lv) for lv in LEVELS}
    # a run refused as busy (skipped) was no attempt: it says nothing about health
    last = ctx.catalog.last_attempts(pairs)
    running: dict[tuple[str, str], list[RunRecord]] = {}
    for run in ctx.catalog.running_runs():
        running.setdefault((run.policy, run.target), []).append(run)
    missed = _missed_slots(ctx, {p.name for p in policies})
    from orchestrator.engine.checks_due import DONE_OUTCOMES

    checks = _Checks(ctx)
    drills = [(p, t, "drill") for p, t in pairs]
    checks.prefetch(drills, ("ok",))  # the newest good drill, shown for every pair
    checks.prefetch(drills, FINISHED)  # the newest drill's outcome (check_problems)
    configured = [(p.name, t, tier) for p in policies for t in p.targets for tier in _configured(p)]
    checks.prefetch(configured, DONE_OUTCOMES)  # when each configured check last completed
    rows = []
    for policy in policies:
        upcoming = next_slot(policy, tz, now)
        for target in policy.targets:
            pair = (policy.name, target)
            good = newest.get(pair)
            age = (now - good.started_at).total_seconds() / 3600 if good else None
            rows.append(
                TargetStatus(
                    policy=policy.name,
                    target=target,
                    importance=policy.importance,
                    newest=good,
                    newest_by_level={lv: by_level[lv].get(pair) for lv in LEVELS},
                    last_run=last.get(pair),
                    age_hours=age,
                    rpo_hours=policy.rpo_hours,
                    next_due=upcoming,
                    **_verification_status(ctx, policy, target, now, checks),
                    missed=missed.get(policy.name, ()),
                    running=tuple(running.get(pair, ())),
                    check_problems=check_problems(ctx, policy, target, now, checks),
                    timezone=tz,
                )
            )
    return rows


MISSED_SHOWN = 50


def _configured(policy: Policy) -> list[str]:
    """The tiers the policy's `verify` and `drill` entries schedule (check_problems)."""
    from orchestrator.engine.checks_due import verify_tiers

    return [*verify_tiers(policy), *(["drill"] if policy.drill is not None else [])]


def _missed_slots(ctx: Context, policies: set[str]) -> dict[str, tuple[SlotRecord, ...]]:
    """Per policy, up to MISSED_SHOWN slots not run on their own (newest first): missed,
    skipped, interrupted; a slot still `started` by a process that is gone counts as
    interrupted (the next pass will record it so)."""
    import dataclasses

    from orchestrator.engine.context import _pid_alive

    found: dict[str, list[SlotRecord]] = {}
    for rec in ctx.catalog.slots(
        kind="backup",
        states=("missed", "skipped", "interrupted", "started"),
        limit=10_000_000,
    ):
        if rec.policy not in policies or len(found.get(rec.policy, ())) >= MISSED_SHOWN:
            continue
        if rec.state == "started":
            if rec.host != ctx.host or _pid_alive(rec.pid):
                continue
            rec = dataclasses.replace(
                rec, state="interrupted", note=f"its process (pid {rec.pid}) is gone"
            )
        found.setdefault(rec.policy, []).append(rec)
    return {name: tuple(recs) for name, recs in found.items()}


class _Checks:
    """The catalog's verification answers for one `status`, each asked once: the tiers of
    a target are shared by every policy on it."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.seen: dict[tuple[object, ...], object] = {}

    def newest(
        self, target: str, tier: str, policy: str | None, outcomes: tuple[str, ...]
    ) -> VerificationRecord | None:
        key = ("newest", target, tier, policy, outcomes)
        if key not in self.seen:
            found = self.ctx.catalog.verifications(
                target=target, tier=tier, policy=policy, outcomes=outcomes, limit=1
            )
            self.seen[key] = found[0] if found else None
        return self.seen[key]  # type: ignore[return-value]

    def prefetch(self, keys: list[tuple[str, str, str]], outcomes: tuple[str, ...]) -> None:
        """Answer `newest` for many (policy, target, tier) at once (one statement)."""
        found = self.ctx.catalog.newest_verifications(keys, outcomes)
        for policy, target, tier in keys:
            self.seen["newest", target, tier, policy, outcomes] = found.get((policy, target, tier))

    def once(self, key: tuple[object, ...], ask: Callable[[], T]) -> T:
        if key not in self.seen:
            self.seen[key] = ask()
        return self.seen[key]  # type: ignore[return-value]


def _verification_status(
    ctx: Context, policy: Policy, target: str, now: datetime, checks: _Checks | None = None
) -> dict:
    """Time since the last good drill and the subset coverage, from the catalog only."""
    from orchestrator.engine.verification import subset_runs_since, subset_total_for
    from orchestrator.verify.subset import subset_coverage

    checks = checks or _Checks(ctx)
    last = checks.newest(target, "drill", policy.name, ("ok",))
    total = subset_total_for(ctx, policy, target)
    parts = checks.once(("parts", target, total), lambda: ctx.catalog.subset_parts(target, total))
    cov = subset_coverage(total, parts, now)
    since = checks.once(
        ("since", target, cov.oldest_read),
        lambda: subset_runs_since(ctx, target, cov.oldest_read),
    )
    return {
        "last_drill": last,
        "drill_age_hours": (now - last.started_at).total_seconds() / 3600 if last else None,
        "subset_coverage": cov.describe(since),
    }


FINISHED = ("ok", "damaged", "failed")


def check_problems(
    ctx: Context, policy: Policy, target: str, now: datetime, checks: _Checks | None = None
) -> tuple[Problem, ...]:
    """The newest outcome of each verification tier on the target (any policy's, or none's:
    they check the one repository) and of the policy's drill there: damaged or failed;
    and each check the policy configures that is overdue (checks_due.overdue, from the
    policy's own completed runs, as `run --due` decides what is due)."""
    from orchestrator.engine.checks_due import DONE_OUTCOMES, overdue, verify_tiers
    from orchestrator.verify import TIERS

    tz = ctx.config.settings.timezone
    zone = ZoneInfo(tz)
    checks = checks or _Checks(ctx)
    found = []
    for tier in (*TIERS, "drill"):
        of = policy.name if tier == "drill" else None
        rec = checks.newest(target, tier, of, FINISHED)
        if rec is None or rec.outcome == "ok":
            continue
        when = f"{rec.started_at.astimezone(zone):%Y-%m-%d %H:%M %Z}"
        if rec.outcome == "damaged":
            lines = [_damage_line(d) for d in rec.damage]
            more = f" (and {len(lines) - 3} more)" if len(lines) > 3 else ""
            found.append(
                Problem(
                    "damaged", f"{tier} on {when} found damage: {'; '.join(lines[:3])}{more}", tier
                )
            )
        else:
            label = "drill failed" if tier == "drill" else "verify failed"
            found.append(
                Problem(
                    label,
                    f"{tier} on {when} could not finish ({rec.error_kind or 'failed'}): "
                    f"{rec.message}",
                    tier,
                )
            )
    wanted = [(t, policy.verify.every) for t in verify_tiers(policy)] if policy.verify else []
    if policy.drill is not None:
        wanted.append(("drill", policy.drill.every))
    first = ctx.catalog.oldest_run(policy.name, target) if wanted else None
    for tier, every in wanted:  # counted as `run --due` counts: the policy's own runs
        done = checks.newest(target, tier, policy.name, DONE_OUTCOMES)
        why = overdue(
            every,
            done.started_at if done else None,
            first.started_at if first else None,
            now,
            tz,
        )
        if why is not None:
            label = "drill overdue" if tier == "drill" else "verify overdue"
            found.append(Problem(label, f"{tier}: {why}", tier))
    return tuple(found)


def _damage_line(damage: dict) -> str:
    try:
        return Damage(**damage).line()
    except TypeError:  # a record written by another version: show what it has
        return str(damage.get("message") or damage)
