"""`source check [POLICY]`: the database sources' preflight (issue 18)."""

from __future__ import annotations

import sys

import click

from orchestrator.cli.common import Obj


@click.group("source")
def source_group() -> None:
    """Database sources ([policies.NAME] database = {...})."""


@source_group.command("check")
@click.argument("policy", required=False)
@click.pass_obj
def source_check(obj: Obj, policy: str | None) -> None:
    """Each database source: reachable, credentials accepted, dump tool able to dump it.
    Exit 1 when any is not."""
    from dataclasses import asdict

    from orchestrator.errors import ExitCode, UsageError
    from orchestrator.render import table
    from orchestrator.sources.check import check_source

    cfg = obj.config
    chosen = [cfg.policy(policy)] if policy else list(cfg.policies.values())
    with_db = [p for p in chosen if p.database is not None]
    if not with_db:
        raise UsageError(
            f"policy '{policy}' has no database source"
            if policy
            else "no policy has a database source"
        )
    ctx = obj.context()
    results = [check_source(p.name, p.database, ctx.secrets.resolve) for p in with_db]  # type: ignore[arg-type]
    obj.emit(
        "source.check",
        {"sources": [asdict(r) for r in results]},
        lambda: table(
            ["policy", "kind", "database", "state", "client", "server", "problem"],
            [
                (
                    r.policy,
                    r.kind,
                    r.database,
                    "ok" if r.ok else "FAILED",
                    r.client or "-",
                    r.server or "-",
                    r.problem or "-",
                )
                for r in results
            ],
        ),
    )
    if not all(r.ok for r in results):
        sys.exit(ExitCode.FAILURE)
