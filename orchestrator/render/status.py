"""`status` as text, every time shown in the configured zone."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orchestrator.render import human_age, table


def in_zone(value: Any, tz: str) -> Any:
    """`value` with every aware datetime in it (records included) shown in zone `tz`."""
    from dataclasses import fields, is_dataclass
    from zoneinfo import ZoneInfo

    if isinstance(value, datetime):
        return value.astimezone(ZoneInfo(tz)) if value.tzinfo else value
    if is_dataclass(value) and not isinstance(value, type):
        # field by field, as asdict would give it, without asdict's deep copy
        return {f.name: in_zone(getattr(value, f.name), tz) for f in fields(value)}
    if isinstance(value, dict):
        return {k: in_zone(v, tz) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [in_zone(v, tz) for v in value]
    return value


def render_status(rows: list[Any], tz: str = "UTC") -> str:

    def local(when: datetime) -> datetime:
        return in_zone(when, tz)

    def newest(r: Any, level: str) -> str:
        run = r.newest_by_level.get(level)
        return local(run.started_at).strftime("%m-%d %H:%M") if run else "-"

    text = table(
        ["policy", "target", "health", "newest", "age", "rpo", "full", "diff", "incr", "next"],
        [
            [
                r.policy,
                r.target,
                r.health,
                r.newest.snapshot_id[:8] if r.newest and r.newest.snapshot_id else None,
                human_age(r.age_hours),
                f"{r.rpo_hours:g}h" if r.rpo_hours else None,
                newest(r, "full"),
                newest(r, "differential"),
                newest(r, "incremental"),
                f"{local(r.next_due.due):%m-%d %H:%M} {r.next_due.level}" if r.next_due else None,
            ]
            for r in rows
        ],
    )
    checks = [
        f"{r.policy}@{r.target}: last good drill "
        + (f"{human_age(r.drill_age_hours)} ago" if r.last_drill else "never")
        + f"; subset: {r.subset_coverage}"
        for r in rows
        if getattr(r, "subset_coverage", None) is not None
    ]
    reasons = [f"{r.policy}@{r.target}: {p.health}: {p.reason}" for r in rows for p in r.problems]
    return "\n".join([f"times in {tz}", text, *reasons, *checks, *_render_slots(rows, tz)])


def _render_slots(rows: list[Any], tz: str = "UTC") -> list[str]:
    """Missed slots once per policy, and what is running now, one line each."""
    lines, seen = [], set()
    for r in rows:
        for run in getattr(r, "running", ()):
            lines.append(
                f"running: {run.policy}@{run.target} since "
                f"{in_zone(run.started_at, tz):%Y-%m-%d %H:%M} "
                f"(pid {run.pid}, slot {run.slot_key or '-'})"
            )
        if r.policy in seen:
            continue
        seen.add(r.policy)
        missed = getattr(r, "missed", ())
        if missed:
            lines.append(f"{r.policy}: {len(missed)} slot(s) not run on time:")
            lines += [f"  {m.key} {m.state}: {m.note}" for m in missed]
    return lines
