"""`report --from T --to T [--json | --html FILE]`: the service report of a period."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from orchestrator.cli.common import Obj, parse_time

ALL = 10**9  # every row: the report reads the whole period


@click.command("report")
@click.option("--from", "start", metavar="T", required=True, help="Start of the period.")
@click.option("--to", "end", metavar="T", required=True, help="End of the period (exclusive).")
@click.option("--html", "html", type=click.Path(path_type=Path), help="Also write an HTML report.")
@click.option("--now", metavar="T", help="Judge open clocks as of this time.")
@click.pass_obj
def report(obj: Obj, start: str, end: str, html: Path | None, now: str | None) -> None:
    """Response and resolution by priority, satisfaction, success rates, RPO compliance,
    breaches: the service standard's metrics, from the catalog."""
    from orchestrator.errors import UsageError
    from orchestrator.render.report import report_payload, report_text
    from orchestrator.service.report import build

    cfg = obj.config
    tz = cfg.settings.timezone
    begin, finish = parse_time(start, tz, "--from"), parse_time(end, tz, "--to")
    assert begin is not None and finish is not None  # both options are required
    if finish <= begin:
        raise UsageError(f"--to {end} is not after --from {start}")
    if html is not None and (html.is_dir() or not html.parent.is_dir()):
        why = (
            "is a folder: give a file name"
            if html.is_dir()
            else "is in a folder that does not exist"
        )
        raise UsageError(f"--html {html} {why}")
    ctx = obj.context(parse_time(now, tz, "--now"))
    at = ctx.clock.now()
    catalog = ctx.catalog
    tickets = [t for t in catalog.tickets() if begin <= t.opened_at < finish]
    runs = [r for r in catalog.runs(limit=ALL) if begin <= r.started_at < finish]
    checks = [c for c in catalog.verifications(limit=ALL) if begin <= c.started_at < finish]
    result = build(begin, finish, tickets, runs, checks, _rpo_inputs(ctx, begin, finish), at)
    if html is not None:
        from orchestrator.render.report_html import write_html

        try:
            write_html(result, html, cfg.settings.timezone)
        except OSError as exc:
            raise UsageError(f"--html {html}: cannot write it: {exc.strerror or exc}") from None
    payload = report_payload(result)
    obj.emit("report", payload, lambda: report_text(result))


def _rpo_inputs(ctx: Any, begin: Any, finish: Any) -> list[tuple[str, str, float, list[Any]]]:
    """Per policy with an RPO and each of its targets: the good backups' end times in the
    period, and the newest one before it (which covers the period's beginning)."""
    ends: dict[tuple[str, str], list[Any]] = {}
    for r in ctx.catalog.runs(kind="backup", limit=ALL):
        if r.outcome in ("success", "partial") and r.finished_at is not None:
            ends.setdefault((r.policy, r.target), []).append(r.finished_at)
    out = []
    for policy in ctx.config.policies.values():
        if not policy.rpo_hours:
            continue
        for target in policy.targets:
            times = sorted(ends.get((policy.name, target), []))
            before = [t for t in times if t < begin][-1:]
            inside = [t for t in times if begin <= t < finish + timedelta(0)]
            out.append((policy.name, target, float(policy.rpo_hours), before + inside))
    return out
