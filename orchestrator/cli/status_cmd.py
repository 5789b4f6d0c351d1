"""`status`: what the catalog says about every policy and target."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from orchestrator.cli.common import Obj, parse_time
from orchestrator.render.status import in_zone, render_status


@click.command()
@click.option("--now", metavar="T", help="Judge ages as of this time.")
@click.pass_obj
def status(obj: Obj, now: str | None) -> None:
    """Per policy and target: newest good backup, its age against the RPO, what is next."""
    from orchestrator.engine.status import status as get_status

    cfg = obj.config
    tz = cfg.settings.timezone
    ctx = obj.context(parse_time(now, tz, "--now"))
    rows = get_status(ctx)
    warnings = _catalog_warnings(ctx, rows)
    open_tickets = _open_tickets(ctx)
    notes = _notes(ctx, open_tickets)
    if not obj.as_json:  # the JSON document is built only when asked for
        click.echo("\n".join([render_status(rows, tz), *warnings, *notes]))
        return
    payload = {
        "timezone": tz,  # every time below is in this zone (the config's `timezone`)
        "now": ctx.clock.now(),
        "warnings": warnings,
        "notes": notes,
        "open_tickets": open_tickets,
        "policies": [
            {
                "policy": r.policy,
                "target": r.target,
                "importance": r.importance,
                "health": r.health,
                "health_reasons": r.problems,
                "newest": r.newest,
                "newest_by_level": r.newest_by_level,
                "last_run": r.last_run,
                "age_hours": r.age_hours,
                "rpo_hours": r.rpo_hours,
                "rpo_breached": r.rpo_breached,
                "next_due": r.next_due,
                "last_drill": r.last_drill,
                "drill_age_hours": r.drill_age_hours,
                "subset_coverage": r.subset_coverage,
                "missed": [
                    {"slot": m.key, "due": m.due, "state": m.state, "note": m.note}
                    for m in getattr(r, "missed", ())
                ],
                "running": getattr(r, "running", ()),
            }
            for r in rows
        ],
    }
    obj.emit("status", in_zone(payload, tz), "")


def _catalog_warnings(ctx: Any, rows: list[Any]) -> list[str]:
    """`status` reads only the catalog: say when the catalog itself may be what is wrong
    (new since a date while targets have no backup; snapshots that vanished)."""
    from orchestrator.catalog.sqlite import CREATED_MARK
    from orchestrator.engine.reconcile import lost_snapshots

    out = []
    empty = [f"{r.policy}@{r.target}" for r in rows if r.newest is None]
    created = ctx.catalog.get_mark(CREATED_MARK)
    if empty and _earlier_catalog(ctx.config.settings.state_dir, created):
        since = f"since this catalog was created ({created[:16]} UTC)" if created else ""
        out.append(
            f"warning: no backup recorded for {', '.join(empty)} {since}: if the "
            "repositories hold snapshots (a deleted or replaced catalog), run "
            "'orchestrator catalog rebuild'"
        )
    for target in sorted({r.target for r in rows}):
        lost = lost_snapshots(ctx.catalog, target)
        if lost:
            out.append(
                f"warning: target '{target}' lost {len(lost)} snapshot(s) the catalog "
                "recorded (see 'orchestrator verify'); they are not counted as backups"
            )
    for channel, (count, error) in sorted(ctx.catalog.failing_channels().items()):
        out.append(
            f"warning: notification channel '{channel}' is failing: {count} notice(s) not "
            f"delivered; last error: {error}"
        )
    return out


def _open_tickets(ctx: Any) -> dict[str, int]:
    by_policy: dict[str, int] = {}
    for t in ctx.catalog.tickets(statuses=("new", "acknowledged")):
        by_policy[t.policy or "-"] = by_policy.get(t.policy or "-", 0) + 1
    return dict(sorted(by_policy.items()))


def _notes(ctx: Any, open_tickets: dict[str, int]) -> list[str]:
    """What the service has open, and what set-up is still to do: not alarms."""
    out = []
    if open_tickets:
        shown = ", ".join(f"{p} {n}" for p, n in open_tickets.items())
        total = sum(open_tickets.values())
        out.append(f"open tickets: {total} ({shown}): 'orchestrator tickets list'")
    if ctx.audit is not None and not ctx.audit.trail.public_key_file.exists():
        out.append(
            "note: the audit log is not signed yet: run 'orchestrator audit init' (it makes "
            "the signing key, sealed in the secret store, and prints its public key)"
        )
    return out


def _earlier_catalog(state_dir: Path, created: str | None) -> bool:
    """Evidence that this catalog replaced an earlier one (else "no backup recorded" is
    only a new install's truth, not a warning): a damaged catalog moved aside, or a run
    lock in `state_dir/locks` older than this catalog (runs take it only after the
    catalog exists). `secrets/` is no evidence: a password is set before the first run."""
    if any(state_dir.glob("catalog.sqlite.damaged-*")):
        return True
    if created is None:
        return False
    try:
        born = datetime.fromisoformat(created)
    except ValueError:
        return False
    if born.tzinfo is None:
        born = born.replace(tzinfo=UTC)
    try:
        locks = list((state_dir / "locks").iterdir())
    except OSError:
        return False
    for lock in locks:
        try:
            if lock.stat().st_mtime < born.timestamp():
                return True
        except OSError:
            continue
    return False
