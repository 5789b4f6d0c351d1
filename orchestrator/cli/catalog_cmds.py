"""`catalog rebuild`: the catalog from the repositories' tags."""

from __future__ import annotations

import sys

import click

from orchestrator.cli.common import Obj
from orchestrator.errors import ExitCode


@click.group("catalog")
def catalog_group() -> None:
    """The catalog (state_dir/catalog.sqlite): rebuild it from the repositories' tags."""


@catalog_group.command("rebuild")
@click.pass_obj
def catalog_rebuild(obj: Obj) -> None:
    """Record every snapshot the targets hold (from its policy:, level:, run: tags), finish
    interrupted runs whose snapshot exists, accept vanished ones; a damaged catalog file is
    moved aside first. Exit 3 when some targets could not be read, 1 when none could."""
    from orchestrator.audit.sink import record_action
    from orchestrator.engine.reconcile import rebuild

    obj._ctx, done = rebuild(obj.config)
    lines = [f"catalog: damaged file moved aside to {done.set_aside}"] if done.set_aside else []
    lines += [
        f"{t.target}: {len(t.added)} snapshot(s) recorded, {len(t.recovered)} interrupted "
        f"run(s) completed, {len(t.vanished)} vanished"
        for t in done.targets
    ]
    lines += [f"{name}: NOT read: {error}" for name, error in done.errors.items()]
    payload = {
        "set_aside": done.set_aside,
        "targets": [
            {
                "target": t.target,
                "added": [r.id for r in t.added],
                "recovered": [r.id for r in t.recovered],
                "vanished": [r.snapshot_id for r in t.vanished],
            }
            for t in done.targets
        ],
        "errors": done.errors,
    }
    code = ExitCode.OK
    if done.errors:
        code = ExitCode.PARTIAL if done.targets else ExitCode.FAILURE
    outcome = {ExitCode.OK: "success", ExitCode.PARTIAL: "partial"}.get(code, "failed")
    record_action(
        obj.config,
        "catalog.rebuild",
        outcome,
        set_aside=str(done.set_aside) if done.set_aside else None,
        summary="; ".join(lines),
        errors=done.errors,
    )
    obj.emit("catalog.rebuild", {"exit_code": int(code), **payload}, "\n".join(lines))
    for name, error in done.errors.items():
        click.echo(f"orchestrator: catalog rebuild: target '{name}': {error}", err=True)
    sys.exit(code)
