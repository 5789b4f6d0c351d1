"""`run --due` (one pass) and `daemon` (passes in a loop)."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from orchestrator.cli.common import Obj, parse_time, simulated_now
from orchestrator.errors import ExitCode, UsageError
from orchestrator.render.runs import render_pass


@click.command("run")
@click.option("--due", is_flag=True, help="Run everything due now (the only mode so far).")
@click.option("--now", metavar="T", help="Simulate this time (snapshots are stamped with it).")
@click.pass_obj
def run_cmd(obj: Obj, due: bool, now: str | None) -> None:
    """One idempotent pass: every slot due now runs once; missed slots are recorded."""
    from orchestrator.engine.daemon import LogSink
    from orchestrator.engine.due import run_due

    if not due:
        raise UsageError("run: pass --due (one pass over everything due now)")
    cfg = obj.config
    ctx = obj.context(simulated_now(now, cfg.settings.timezone))
    ctx.events.subscribe(LogSink())
    report = run_due(ctx, ctx.clock.now())
    code = _pass_exit_code(report)
    obj.emit(
        "run",
        {
            "exit_code": int(code),
            "now": report.now,
            "runs": report.runs,
            "slots": report.recorded,
            "interrupted": report.interrupted,
            "retention": report.retention,
            "prunes": [{"target": t, "error": e} for t, e in report.prunes],
            "rpo_breaches": report.breaches,
            "checks": report.checks,
        },
        lambda: render_pass(report),
    )
    sys.exit(code)


def _pass_exit_code(report: Any) -> ExitCode:
    from orchestrator.engine.backup import exit_code_for

    code = exit_code_for(report.runs) if report.runs else ExitCode.OK
    troubled = any(r.refused or r.error for r in report.retention) or any(
        e for _, e in report.prunes
    )
    if any(c.outcome == "damaged" for c in report.checks):
        return ExitCode.DAMAGE  # a verify tier or drill found damage: exit 4
    troubled = troubled or any(c.outcome != "ok" for c in report.checks)
    return ExitCode.PARTIAL if troubled and code == ExitCode.OK else code


@click.command()
@click.option(
    "--now",
    metavar="T",
    hidden=True,
    help="Start the clock at T; it then runs at real speed (simulation and tests).",
)
@click.pass_obj
def daemon(obj: Obj, now: str | None) -> None:
    """Run `run --due` in a loop, sleeping until the next due time.

    SIGHUP reloads policies.toml (an invalid file is rejected, the old one kept);
    SIGINT/SIGTERM stop restic cleanly, record interrupted runs and exit 0."""
    from orchestrator.engine.context import Context
    from orchestrator.engine.daemon import Daemon, LogSink, OffsetClock
    from orchestrator.policies.loader import load_config

    cfg = obj.config
    start = parse_time(now, cfg.settings.timezone, "--now")
    logging.getLogger("orchestrator.daemon").setLevel(
        min(logging.INFO, logging.getLogger().getEffectiveLevel())
    )
    ctx = Context.open(cfg, OffsetClock(start) if start else None, simulated=start is not None)
    obj._ctx = ctx
    ctx.events.subscribe(LogSink())
    Daemon(ctx, lambda: load_config(obj.config_path)).run()
