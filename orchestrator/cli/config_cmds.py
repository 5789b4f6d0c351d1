"""`validate` and `plan`: read policies.toml, show what it means."""

from __future__ import annotations

from typing import Any

import click

from orchestrator.cli.common import Obj, parse_time


@click.command()
@click.pass_obj
def validate(obj: Obj) -> None:
    """Check policies.toml and list every problem at once (exit 2 when there are any)."""
    from orchestrator.security.access import access_warnings
    from orchestrator.security.identity import subject_exists

    cfg = obj.config
    warnings = _unset_secrets(cfg) + access_warnings(cfg.access, subject_exists)
    obj.emit(
        "validate",
        {
            "valid": True,
            "path": cfg.path,
            "policies": sorted(cfg.policies),
            "targets": sorted(cfg.targets),
            "warnings": warnings,
        },
        f"{cfg.path}: valid ({len(cfg.policies)} policies, {len(cfg.targets)} targets)",
    )
    for warning in warnings:
        click.echo(f"orchestrator: warning: {warning}", err=True)


def _unset_secrets(cfg: Any) -> list[str]:
    """Referenced secrets that are set nowhere yet: a warning (a fresh install sets them
    after writing the file), not an error."""
    from orchestrator.errors import SecretError
    from orchestrator.security.secrets import SecretStore

    refs = [(f"targets.{t.name}.password", t.password) for t in cfg.targets.values()]
    refs += [
        (f"targets.{t.name}.credentials", t.credentials)
        for t in cfg.targets.values()
        if getattr(t, "credentials", None)
    ]
    refs += [
        (f"policies.{p.name}.database.password", p.database.password)
        for p in cfg.policies.values()
        if p.database and p.database.password
    ]
    store = SecretStore.of(cfg.settings)
    try:
        return _unset(store, refs)
    except SecretError as exc:  # the store cannot be opened here: say so, do not fail
        return [f"cannot check the secrets in the store: {exc.message}"]


def _unset(store: Any, refs: list[tuple[str, str]]) -> list[str]:
    from orchestrator.security.secrets import env_name, secret_name

    return [
        f"{place}: secret '{name}' is not set: export {env_name(name)} "
        f"or run 'orchestrator secrets set {name}'"
        for place, ref in refs
        if not store.has(ref) and (name := secret_name(ref))
    ]


def _check_window(begin: Any, days: int) -> None:
    """The plan's window (with a day to spare for time zones) must fit the calendar."""
    from datetime import datetime, timedelta

    from orchestrator.errors import UsageError

    if begin.replace(tzinfo=None) > datetime.max - timedelta(days=days + 2):
        raise UsageError(
            f"--from {begin.date()} with --days {days} runs past the last date this "
            "program can count (9999-12-31): choose an earlier --from"
        )


@click.command()
@click.option("--from", "start", metavar="T", help="Start of the plan (ISO 8601); default now.")
@click.option("--days", default=7, show_default=True, type=click.IntRange(1, 366))
@click.option(
    "--policy",
    "policies",
    multiple=True,
    metavar="NAME",
    help="Only this policy's runs (repeatable); default every policy.",
)
@click.pass_obj
def plan(obj: Obj, start: str | None, days: int, policies: tuple[str, ...]) -> None:
    """What will run when, at which level, and why."""
    import gc

    # A short-lived command that builds hundreds of thousands of small objects and no
    # cycles: the collector's passes over them were a third of a month's plan of
    # 10,000 policies. Off for the command, back on after (tests run it in-process).
    gc.disable()
    try:
        _plan(obj, start, days, policies)
    finally:
        gc.enable()


def _plan(obj: Obj, start: str | None, days: int, policies: tuple[str, ...]) -> None:
    from orchestrator.engine.plan import plan_parts
    from orchestrator.errors import UsageError
    from orchestrator.render.listing import plan_json_parts_pieces, plan_table_pieces

    tz = obj.config.settings.timezone
    unknown = [name for name in policies if name not in obj.config.policies]
    if unknown:
        raise UsageError(
            f"--policy: no policy named {', '.join(repr(n) for n in unknown)} in "
            f"{obj.config.path}: see 'orchestrator validate --json' for the names"
        )
    ctx = obj.context()
    begin = parse_time(start, tz, "--from") or ctx.clock.now()
    _check_window(begin, days)
    out = click.get_text_stream("stdout")
    # Written in pieces: the whole table of a month of 10,000 policies is 46 MB.
    parts = plan_parts(ctx, begin, days, policies or None)
    if obj.as_json:  # one run a line
        for piece in plan_json_parts_pieces(begin, days, parts, tz):
            out.write(piece)
        out.write("\n")
        return
    for piece in plan_table_pieces(parts, tz):
        out.write(piece)
