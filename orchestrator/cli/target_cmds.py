"""`target check` and `target init`: where repositories live."""

from __future__ import annotations

import sys

import click

from orchestrator.cli.common import Obj
from orchestrator.render.checks import render_check


@click.group("target")
def target_group() -> None:
    """Targets (where repositories live): preflight checks and creating repositories."""


@target_group.command("check")
@click.argument("name", required=False)
@click.pass_obj
def target_check(obj: Obj, name: str | None) -> None:
    """One line per target: reachable, host key, credentials, bucket, writable, repository,
    restic version, free space (exit 3 when some targets fail, 1 when all do)."""
    from orchestrator.engine.preflight import check_targets, exit_code_for

    checks = check_targets(obj.context(), name)
    code = exit_code_for(checks)
    obj.emit(
        "target.check",
        {"exit_code": int(code), "targets": checks},
        lambda: "\n".join(render_check(c) for c in checks),
    )
    for c in checks:
        if not c.ok:
            click.echo(f"orchestrator: {c.problem}", err=True)
    sys.exit(code)


@target_group.command("init")
@click.argument("name")
@click.pass_obj
def target_init(obj: Obj, name: str) -> None:
    """Create target NAME's repository if it has none (a copy target with its source's
    chunker parameters); an existing one is left as it is. Backups create a repository
    themselves only where the catalog has never recorded a snapshot."""
    from orchestrator.engine.repository import init_target

    result = init_target(obj.context(), name)
    obj.emit(
        "target.init",
        {"exit_code": 0, "target": result},
        lambda: f"{result.target}  {result.where}: {result.message}",
    )
