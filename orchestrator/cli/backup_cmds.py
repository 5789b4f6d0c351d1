"""`backup`, `snapshots`, `restore`, `forget`: the data itself."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import click

from orchestrator.cli.common import LEVEL_CHOICES, Obj, simulated_now
from orchestrator.errors import ExitCode, UsageError
from orchestrator.render.listing import render_snapshots
from orchestrator.render.runs import render_forget, render_runs


@click.command()
@click.argument("policy", required=False)
@click.option("--all", "all_policies", is_flag=True, help="Back up every policy.")
@click.option("--level", type=click.Choice(LEVEL_CHOICES), default="auto", show_default=True)
@click.option("--target", help="Only this target of the policy.")
@click.option("--now", metavar="T", help="Simulate this time (snapshots are stamped with it).")
@click.pass_obj
def backup(
    obj: Obj,
    policy: str | None,
    all_policies: bool,
    level: str,
    target: str | None,
    now: str | None,
) -> None:
    """Back up POLICY to its targets (exit 3 when some target failed or was partial)."""
    from orchestrator.engine.backup import backup_policy, exit_code_for
    from orchestrator.engine.copies import copy_new_snapshots

    if bool(policy) == all_policies:
        raise UsageError("name one POLICY or pass --all")
    cfg = obj.config
    ctx = obj.context(simulated_now(now, cfg.settings.timezone))
    policies = list(cfg.policies.values()) if all_policies else [cfg.policy(policy)]
    runs = []
    for pol in policies:
        made = backup_policy(ctx, pol, level, target)
        runs += made + copy_new_snapshots(ctx, pol, made)  # copy_to: a failed copy exits 3
    code = exit_code_for(runs)
    obj.emit("backup", {"exit_code": int(code), "runs": runs}, lambda: render_runs(runs))
    _report_problems(runs)
    sys.exit(code)


def _report_problems(runs: list[Any]) -> None:
    """Why each run did not succeed, one line each on stderr like every other failure,
    so the reason reaches a person even when stdout is --json or piped away."""
    for r in runs:
        if r.outcome != "success":
            where = f"{r.policy}@{r.target}"
            text = r.message if r.message.startswith(where) else f"{where}: {r.message}"
            click.echo(f"orchestrator: {text}", err=True)


@click.command()
@click.argument("policy", required=False)
@click.option("--target", help="Only this target.")
@click.pass_obj
def snapshots(obj: Obj, policy: str | None, target: str | None) -> None:
    """The snapshots each target's repository holds, with their levels (read from restic)."""
    from orchestrator.engine.inventory import list_snapshots

    cfg = obj.config
    pol = cfg.policy(policy) if policy else None
    listings = list_snapshots(obj.context(), pol, target)
    payload = {
        "targets": [
            {
                "target": lst.target,
                "error": lst.error,
                "snapshots": [
                    {
                        "id": s.id,
                        "short_id": s.short_id,
                        "time": s.time,
                        "policy": s.tag("policy"),
                        "level": s.tag("level"),
                        "run": s.tag("run"),
                        "parent": s.parent,
                        "paths": list(s.paths),
                        "hostname": s.hostname,
                    }
                    for s in lst.snapshots
                ],
            }
            for lst in listings
        ]
    }

    obj.emit("snapshots", payload, lambda: render_snapshots(listings))
    for lst in listings:  # why a target could not be read reaches a person even under --json
        if lst.error and lst.error_kind != "no_repository":
            click.echo(f"orchestrator: {lst.error}", err=True)
    if listings and all(lst.error for lst in listings):
        sys.exit(ExitCode.FAILURE)


@click.command()
@click.argument("policy")
@click.option(
    "--to",
    "destination",
    required=True,
    callback=lambda _ctx, _param, value: _destination(value),
    help="Directory to restore into (must be empty unless --overwrite).",
)
@click.option("--snapshot", default="latest", show_default=True, help="Snapshot id or 'latest'.")
@click.option("--path", "paths", multiple=True, help="Only this path of the snapshot (repeatable).")
@click.option("--target", help="Restore from this target (default: the first that works).")
@click.option("--overwrite", is_flag=True, help="Restore into a non-empty directory.")
@click.pass_obj
def restore(
    obj: Obj,
    policy: str,
    destination: Path,
    snapshot: str,
    paths: tuple[str, ...],
    target: str | None,
    overwrite: bool,
) -> None:
    """Restore a snapshot of POLICY; restic re-reads what it wrote (--verify)."""
    from orchestrator.engine.restore import restore_policy
    from orchestrator.render import human_bytes

    if not snapshot.strip():  # a prefix of every id: "ambiguous" would mislead
        raise UsageError("--snapshot is empty: give a snapshot id or 'latest'")
    cfg = obj.config
    result = restore_policy(
        obj.context(), cfg.policy(policy), destination, snapshot, paths, target, overwrite
    )
    obj.emit(
        "restore",
        {
            "run": result.run,
            "snapshot": result.snapshot.id,
            "destination": result.destination,
            "files": result.files,
            "bytes": result.bytes,
            "fallbacks": list(result.fallbacks),
        },
        f"restored snapshot {result.snapshot.short_id} of '{policy}' from target "
        f"'{result.run.target}' to {result.destination}: {result.files} files, "
        f"{human_bytes(result.bytes)} (verified by restic)",
    )
    for why in result.fallbacks:  # a restore from another target than asked says why
        click.echo(
            f"orchestrator: restored from '{result.run.target}' because an earlier target "
            f"failed: {why}",
            err=True,
        )


def _destination(value: str) -> Path:
    """`--to ""` would be the current directory: a restore there must be asked for by name."""
    if not value.strip():
        raise click.BadParameter("is empty: name the directory to restore into", param_hint="--to")
    return Path(value)


def _finite_share(value: float | None) -> float | None:
    """click's range lets NaN through (every comparison with it is false): refuse it."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(
            f"{value} is not a number between 0 and 1", param_hint="--max-share"
        )
    return value


@click.command()
@click.argument("policy", required=False)
@click.option("--target", help="Only this target of the policy.")
@click.option("--dry-run", is_flag=True, help="Show the plan; remove nothing.")
@click.option(
    "--max-share",
    type=click.FloatRange(0, 1, min_open=True),
    callback=lambda _ctx, _param, value: _finite_share(value),
    help="Override forget_max_share for this run (e.g. 0.9 after retention was tightened).",
)
@click.pass_obj
def forget(
    obj: Obj, policy: str | None, target: str | None, dry_run: bool, max_share: float | None
) -> None:
    """Apply retention: planned from one listing per target, checked, then forgotten by id."""
    from orchestrator.engine.retention import forget_policies
    from orchestrator.restic.features import BUSY_KINDS

    cfg = obj.config
    policies = (
        [cfg.policy(policy)]
        if policy
        else [p for p in cfg.policies.values() if not p.retention.is_empty()]
    )
    ctx = obj.context()
    # all at once: one listing (and one `restic forget`) per target, however many policies
    results = forget_policies(ctx, policies, dry_run, target, max_share)
    # A dry run shows a refusal as its plan; only errors fail it.
    bad = [r for r in results if r.error or (r.refused and not dry_run)]
    code = (
        ExitCode.OK
        if not bad
        else ExitCode.BUSY  # only locks held by live processes: try later
        if all(r.error_kind in BUSY_KINDS for r in bad)
        else (ExitCode.FAILURE if len(bad) == len(results) else ExitCode.PARTIAL)
    )
    obj.emit(
        "forget",
        {"exit_code": int(code), "dry_run": dry_run, "results": results},
        lambda: render_forget(results),
    )
    for r in bad:
        click.echo(f"orchestrator: {r.summary}", err=True)
    sys.exit(code)
