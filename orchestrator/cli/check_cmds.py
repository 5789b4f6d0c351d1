"""`verify` and `drill`: is what the repositories hold still readable and restorable."""

from __future__ import annotations

import sys
from typing import Any

import click

from orchestrator.cli.common import Obj
from orchestrator.render.checks import render_verifications


@click.command()
@click.argument("policy", required=False)
@click.option("--target", help="Only this target.")
@click.option(
    "--tier",
    type=click.Choice(["check", "subset", "media", "all"]),
    default="all",
    show_default=True,
    help="check: restic check; subset: read part i/N of the data; media: hash every file.",
)
@click.option(
    "--accept-missing",
    is_flag=True,
    help="media: report the files missing since the last listing once more, then forget "
    "them (after a repair, or to accept the loss).",
)
@click.pass_obj
def verify(
    obj: Obj, policy: str | None, target: str | None, tier: str, accept_missing: bool
) -> None:
    """Verify the repositories of POLICY (or all targets); exit 4 when damage is found."""
    from orchestrator.engine.verification import verify as run_verify

    cfg = obj.config
    records = run_verify(
        obj.context(), cfg.policy(policy) if policy else None, target, tier, accept_missing
    )
    _finish(obj, "verify", "verifications", records)


@click.command()
@click.argument("policy")
@click.option("--target", help="Only this target of the policy.")
@click.option("--seed", type=int, help="Repeat the sample of an earlier drill (see its record).")
@click.pass_obj
def drill(obj: Obj, policy: str, target: str | None, seed: int | None) -> None:
    """Restore a sample of POLICY's newest snapshot, compare it, measure the recovery time."""
    from orchestrator.engine.verification import drill as run_drill

    records = run_drill(obj.context(), obj.config.policy(policy), target, seed)
    _finish(obj, "drill", "drills", records)


def _finish(obj: Obj, command: str, key: str, records: list[Any]) -> None:
    """Render the records, say what is damaged on stderr, exit with the worst outcome."""
    from orchestrator.engine.verification import exit_code_for

    code = exit_code_for(records)
    obj.emit(command, {"exit_code": int(code), key: records}, lambda: render_verifications(records))
    _report_damage(records)
    sys.exit(code)


def _report_damage(records: list[Any]) -> None:
    """Exactly what is damaged (or why a tier could not run), on stderr, one line each."""
    for r in records:
        for d in r.damage:
            hashes = (
                f" (expected {d['expected']}, actual {d['actual']})"
                if d.get("expected") is not None or d.get("actual") is not None
                else ""
            )
            where = f"{d['path']}: " if d.get("path") else ""
            click.echo(
                f"orchestrator: DAMAGE {r.tier}@{r.target}: {d['kind']}: {where}{d['message']}"
                f"{hashes}",
                err=True,
            )
        if r.outcome == "failed":
            click.echo(f"orchestrator: {r.tier}@{r.target}: {r.message}", err=True)
