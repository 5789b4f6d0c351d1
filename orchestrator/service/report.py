"""The service report (standard ch. 7, 9) as a pure function of what the catalog holds
for a period: response and resolution by priority, satisfaction, handling time, the
success rates of backups, restores, drills and verifications, RPO compliance per
policy and target, and the breaches with their tickets."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from orchestrator.service import clock
from orchestrator.service.rules import PRIORITIES

HOUR = 3600.0


@dataclass(frozen=True)
class PriorityFigures:
    priority: str
    opened: int
    responded: int
    response_median_h: float | None
    response_p90_h: float | None
    # shares of the tickets whose deadline passed or that were answered, 0..1
    response_within_target: float | None
    resolved: int
    resolution_rate: float | None  # resolved / opened
    resolution_median_h: float | None
    resolution_within_target: float | None


@dataclass(frozen=True)
class Rate:
    ok: int
    total: int

    @property
    def rate(self) -> float | None:
        return self.ok / self.total if self.total else None


@dataclass(frozen=True)
class RpoFigure:
    policy: str
    target: str
    rpo_hours: float
    compliance: float  # share of the period with a backup younger than the RPO, 0..1


@dataclass
class ServiceReport:
    start: datetime
    end: datetime
    priorities: list[PriorityFigures]
    satisfaction: float | None  # mean rating 1..5
    ratings: int
    handling_median_h: float | None  # acknowledged -> resolved
    success: dict[str, Rate]  # backups, restores, copies, drills, verifications
    rpo: list[RpoFigure]
    breaches: list[dict[str, Any]] = field(default_factory=list)
    tickets: int = 0


def _hours(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() / HOUR


def _median(xs: Sequence[float]) -> float | None:
    return round(statistics.median(xs), 2) if xs else None


def percentile(xs: Sequence[float], p: float) -> float | None:
    """The nearest-rank percentile (p in 0..100): a value that occurred."""
    if not xs:
        return None
    ordered = sorted(xs)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil
    return round(ordered[int(rank) - 1], 2)


def _share(hits: int, n: int) -> float | None:
    return round(hits / n, 4) if n else None


def priority_figures(tickets: Sequence[Any], now: datetime) -> list[PriorityFigures]:
    out = []
    for prio in PRIORITIES:
        mine = [t for t in tickets if t.priority == prio]
        responses, resolutions = [], []
        answered_states, resolved_states = [], []  # of the clocks that have run out
        for t in mine:
            times = clock.ClockTimes.of(t)
            answered = t.acknowledged_at or t.resolved_at
            if answered is not None:
                responses.append(_hours(t.opened_at, answered))
            if t.resolved_at is not None:
                resolutions.append(_hours(t.opened_at, t.resolved_at))
            # a ticket never answered past its deadline counts against the share
            if (state := clock.response_state(times, now)) != "running":
                answered_states.append(state)
            if (state := clock.resolution_state(times, now)) != "running":
                resolved_states.append(state)
        out.append(
            PriorityFigures(
                prio,
                len(mine),
                len(responses),
                _median(responses),
                percentile(responses, 90),
                _share(answered_states.count("met"), len(answered_states)),
                len(resolutions),
                _share(len(resolutions), len(mine)),
                _median(resolutions),
                _share(resolved_states.count("met"), len(resolved_states)),
            )
        )
    return out


def rpo_compliance(
    successes: Iterable[datetime], rpo_hours: float, start: datetime, end: datetime
) -> float:
    """The share of [start, end) during which the newest good backup was at most
    `rpo_hours` old. `successes` may include ones before `start` (the one that covers
    its beginning)."""
    total = (end - start).total_seconds()
    if total <= 0:
        return 1.0
    rpo = timedelta(hours=rpo_hours)
    points = sorted(s for s in successes if s < end)
    covered = 0.0
    for i, s in enumerate(points):
        until = min(s + rpo, points[i + 1] if i + 1 < len(points) else end, end)
        lo = max(s, start)
        if until > lo:
            covered += (until - lo).total_seconds()
    return round(min(1.0, covered / total), 4)


def build(
    start: datetime,
    end: datetime,
    tickets: Sequence[Any],
    runs: Sequence[Any],
    checks: Sequence[Any],
    rpo_inputs: Sequence[tuple[str, str, float, Sequence[datetime]]],
    now: datetime,
) -> ServiceReport:
    """`tickets` opened in the period; `runs` and `checks` started in it; `rpo_inputs`:
    (policy, target, rpo hours, the good backups' end times, one before start included)."""
    rated = [t.rating for t in tickets if t.rating is not None]
    handling = [
        _hours(t.acknowledged_at, t.resolved_at)
        for t in tickets
        if t.acknowledged_at is not None and t.resolved_at is not None
    ]
    attempts = [r for r in runs if r.outcome in ("success", "partial", "failed", "interrupted")]
    tried = [c for c in checks if c.outcome in ("ok", "damaged", "failed", "interrupted")]
    success = {
        "backups": _rate(r.outcome == "success" for r in attempts if r.kind == "backup"),
        "restores": _rate(r.outcome == "success" for r in attempts if r.kind == "restore"),
        "copies": _rate(r.outcome == "success" for r in attempts if r.kind == "copy"),
        "drills": _rate(c.outcome == "ok" for c in tried if c.tier == "drill"),
        "verifications": _rate(c.outcome == "ok" for c in tried if c.tier != "drill"),
    }
    breaches = []
    for t in tickets:
        times = clock.ClockTimes.of(t)
        response, resolution = clock.response_state(times, now), clock.resolution_state(times, now)
        if "breached" in (response, resolution) or "late" in (response, resolution):
            breaches.append(
                {
                    "ticket": t.id,
                    "priority": t.priority,
                    "kind": t.kind,
                    "policy": t.policy,
                    "response": response,
                    "resolution": resolution,
                    "respond_by": t.respond_by,
                }
            )
    return ServiceReport(
        start=start,
        end=end,
        priorities=priority_figures(tickets, now),
        satisfaction=round(float(statistics.mean(rated)), 2) if rated else None,
        ratings=len(rated),
        handling_median_h=_median(handling),
        success=success,
        rpo=[
            RpoFigure(p, tg, h, rpo_compliance(ends, h, start, min(end, now)))
            for p, tg, h, ends in rpo_inputs
        ],
        breaches=breaches,
        tickets=len(tickets),
    )


def _rate(outcomes: Iterable[bool]) -> Rate:
    seen = list(outcomes)
    return Rate(sum(seen), len(seen))
