"""The command line: parse, call one service function, render. Nothing else."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from orchestrator.errors import ExitCode, OrchestratorError, UsageError

LEVEL_CHOICES = ["full", "differential", "incremental", "auto"]


class Obj:
    """Global options, and the config and context opened on first use."""

    def __init__(self, config_path: Path, as_json: bool, verbose: int = 0) -> None:
        self.config_path = config_path
        self.as_json = as_json
        self.verbose = verbose
        self._config: Any = None
        self._ctx: Any = None

    @property
    def config(self) -> Any:
        if self._config is None:
            from orchestrator.policies.loader import load_config

            if not self.config_path.exists() and not self.config_path.is_symlink():
                raise UsageError(
                    f"no policies file at {self.config_path.absolute()}: pass --config PATH or set "
                    "$ORCHESTRATOR_CONFIG (default: ./policies.toml)"
                )
            self._config = load_config(self.config_path)
        return self._config

    def context(self, now: datetime | None = None) -> Any:
        if self._ctx is None:
            from orchestrator.clock import FixedClock
            from orchestrator.engine.context import Context

            clock = FixedClock(now) if now is not None else None
            self._ctx = Context.open(self.config, clock, simulated=now is not None)
        return self._ctx

    def emit(self, command: str, payload: dict[str, Any], text: str | Callable[[], str]) -> None:
        if self.as_json:
            from orchestrator.render import dump_json

            click.echo(dump_json(command, payload))
        else:
            click.echo(text() if callable(text) else text)


def parse_time(value: str | None, tz: str, option: str) -> datetime | None:
    """ISO 8601; a time without offset is read in the configured time zone."""
    if value is None:
        return None
    from zoneinfo import ZoneInfo

    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"{option}: '{value}' is not an ISO 8601 time (e.g. 2026-11-24T01:30)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=ZoneInfo(tz))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=lambda: os.environ.get("ORCHESTRATOR_CONFIG", "policies.toml"),
    show_default="./policies.toml or $ORCHESTRATOR_CONFIG",
    help="The policies file.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
@click.option("-v", "--verbose", count=True, help="Log what is run (-v) and more (-vv) to stderr.")
@click.version_option(package_name="orchestrator")
@click.pass_context
def cli(ctx: click.Context, config_path: Path, as_json: bool, verbose: int) -> None:
    """Policy-driven backups with restic: scheduled, levelled, verified, restorable."""
    logging.basicConfig(
        level=_log_level(verbose), stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    ctx.obj = Obj(config_path, as_json, verbose)
    ctx.call_on_close(lambda: ctx.obj._ctx.close() if ctx.obj._ctx else None)


def _log_level(verbose: int) -> int:
    return {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)


def _late_option(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """--config, --json, -v given after the command name: merged into the shared options."""
    obj = ctx.find_object(Obj)
    if obj is None or not value:
        return
    if param.name == "config_path":
        obj.config_path = value
    elif param.name == "as_json":
        obj.as_json = True
    else:
        obj.verbose += value
        logging.getLogger().setLevel(_log_level(obj.verbose))


def _add_global_options(group: click.Group) -> None:
    """Every command also takes the global options after its name (`status --json`)."""
    for command in group.commands.values():
        command.params += [
            click.Option(
                ["--config", "config_path"],
                type=click.Path(path_type=Path, dir_okay=False),
                expose_value=False,
                callback=_late_option,
                help="The policies file (as before the command).",
            ),
            click.Option(
                ["--json", "as_json"],
                is_flag=True,
                expose_value=False,
                callback=_late_option,
                help="Machine-readable output on stdout.",
            ),
            click.Option(
                ["-v", "--verbose"],
                count=True,
                expose_value=False,
                callback=_late_option,
                help="Log what is run (-v) and more (-vv) to stderr.",
            ),
        ]
        if isinstance(command, click.Group):
            _add_global_options(command)


@cli.command()
@click.pass_obj
def validate(obj: Obj) -> None:
    """Check policies.toml and list every problem at once (exit 2 when there are any)."""
    cfg = obj.config
    warnings = _unset_secrets(cfg)
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
    from orchestrator.security.secrets import SecretStore, env_name, secret_name

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
    store = SecretStore(cfg.settings.state_dir)
    return [
        f"{place}: secret '{name}' is not set: export {env_name(name)} "
        f"or run 'orchestrator secrets set {name}'"
        for place, ref in refs
        if not store.has(ref) and (name := secret_name(ref))
    ]


@cli.command()
@click.option("--from", "start", metavar="T", help="Start of the plan (ISO 8601); default now.")
@click.option("--days", default=7, show_default=True, type=click.IntRange(1, 366))
@click.pass_obj
def plan(obj: Obj, start: str | None, days: int) -> None:
    """What will run when, at which level, and why."""
    from orchestrator.engine.plan import plan as make_plan
    from orchestrator.render import table

    tz = obj.config.settings.timezone
    ctx = obj.context()
    begin = parse_time(start, tz, "--from") or ctx.clock.now()
    runs = make_plan(ctx, begin, days)
    rows = [
        {
            "due": p.slot.due,
            "policy": p.slot.policy,
            "target": p.target,
            "level": p.decision.level,
            "scheduled_level": p.slot.level,
            "schedules": list(p.slot.schedules),
            "slot": p.slot.key,
            "why": f"{p.slot.reason}; {p.decision.reason}",
        }
        for p in runs
    ]
    obj.emit(
        "plan",
        {"from": begin, "days": days, "runs": rows},
        lambda: (
            table(
                ["due", "policy", "target", "level", "why"],
                [[r["due"], r["policy"], r["target"], r["level"], r["why"]] for r in rows],
            )
            if rows
            else "nothing scheduled in this window"
        ),
    )


@cli.command()
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
    ctx = obj.context(parse_time(now, cfg.settings.timezone, "--now"))
    policies = list(cfg.policies.values()) if all_policies else [cfg.policy(policy)]
    runs = []
    for pol in policies:
        made = backup_policy(ctx, pol, level, target)
        runs += made + copy_new_snapshots(ctx, pol, made)  # copy_to: a failed copy exits 3
    code = exit_code_for(runs)
    obj.emit("backup", {"exit_code": int(code), "runs": runs}, lambda: _render_runs(runs))
    _report_problems(runs)
    sys.exit(code)


def _render_runs(runs: list[Any]) -> str:
    from orchestrator.render import human_bytes, table

    rows = [
        [
            r.policy,
            r.target,
            r.outcome,
            r.level or r.asked_level,
            r.snapshot_id[:8] if r.snapshot_id else None,
            r.files_total,
            human_bytes(r.bytes_added),
        ]
        for r in runs
    ]
    text = table(["policy", "target", "outcome", "level", "snapshot", "files", "added"], rows)
    notes = [f"{r.policy}@{r.target}: {r.level_reason}" for r in runs if r.level_reason]
    return "\n".join([text, *notes])


def _report_problems(runs: list[Any]) -> None:
    """Why each run did not succeed, one line each on stderr like every other failure,
    so the reason reaches a person even when stdout is --json or piped away."""
    for r in runs:
        if r.outcome != "success":
            where = f"{r.policy}@{r.target}"
            text = r.message if r.message.startswith(where) else f"{where}: {r.message}"
            click.echo(f"orchestrator: {text}", err=True)


@cli.command()
@click.argument("policy", required=False)
@click.option("--target", help="Only this target.")
@click.pass_obj
def snapshots(obj: Obj, policy: str | None, target: str | None) -> None:
    """The snapshots each target's repository holds, with their levels (read from restic)."""
    from orchestrator.engine.inventory import list_snapshots
    from orchestrator.render import table

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

    def text() -> str:
        out = []
        for lst in listings:
            out.append(f"target {lst.target}:" + (f" {lst.error}" if lst.error else ""))
            if lst.snapshots:
                out.append(
                    table(
                        ["id", "time", "policy", "level", "parent", "paths"],
                        [
                            [
                                s.short_id,
                                s.time,
                                s.tag("policy"),
                                s.tag("level"),
                                s.parent[:8] if s.parent else None,
                                ", ".join(s.paths),
                            ]
                            for s in lst.snapshots
                        ],
                    )
                )
            elif not lst.error:
                out.append("  no snapshots")
        return "\n".join(out)

    obj.emit("snapshots", payload, text)
    for lst in listings:  # why a target could not be read reaches a person even under --json
        if lst.error and lst.error_kind != "no_repository":
            click.echo(f"orchestrator: {lst.error}", err=True)
    if listings and all(lst.error for lst in listings):
        sys.exit(ExitCode.FAILURE)


@cli.command()
@click.argument("policy")
@click.option(
    "--to",
    "destination",
    required=True,
    type=click.Path(path_type=Path),
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


@cli.command()
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
    payload = {
        "timezone": tz,  # every time below is in this zone (the config's `timezone`)
        "now": ctx.clock.now(),
        "warnings": warnings,
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
    obj.emit(
        "status",
        _in_zone(payload, tz),
        lambda: "\n".join([_render_status(rows, tz), *warnings]),
    )


def _catalog_warnings(ctx: Any, rows: list[Any]) -> list[str]:
    """`status` reads only the catalog: say when the catalog itself may be what is wrong
    (new since a date while targets have no backup; snapshots that vanished)."""
    from orchestrator.catalog.sqlite import CREATED_MARK
    from orchestrator.engine.reconcile import lost_snapshots

    out = []
    empty = [f"{r.policy}@{r.target}" for r in rows if r.newest is None]
    if empty:
        created = ctx.catalog.get_mark(CREATED_MARK)
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
    return out


def _in_zone(value: Any, tz: str) -> Any:
    """`value` with every aware datetime in it (records included) shown in zone `tz`."""
    from dataclasses import asdict, is_dataclass
    from zoneinfo import ZoneInfo

    if isinstance(value, datetime):
        return value.astimezone(ZoneInfo(tz)) if value.tzinfo else value
    if is_dataclass(value) and not isinstance(value, type):
        return _in_zone(asdict(value), tz)
    if isinstance(value, dict):
        return {k: _in_zone(v, tz) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_in_zone(v, tz) for v in value]
    return value


def _render_status(rows: list[Any], tz: str = "UTC") -> str:
    from orchestrator.render import human_age, table

    def local(when: datetime) -> datetime:
        return _in_zone(when, tz)

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
                f"{_in_zone(run.started_at, tz):%Y-%m-%d %H:%M} "
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


@cli.command()
@click.argument("policy", required=False)
@click.option("--target", help="Only this target.")
@click.option(
    "--tier",
    type=click.Choice(["check", "subset", "media", "all"]),
    default="all",
    show_default=True,
    help="check: restic check; subset: read part i/N of the data; media: hash every file.",
)
@click.pass_obj
def verify(obj: Obj, policy: str | None, target: str | None, tier: str) -> None:
    """Verify the repositories of POLICY (or all targets); exit 4 when damage is found."""
    from orchestrator.engine.verification import exit_code_for
    from orchestrator.engine.verification import verify as run_verify

    cfg = obj.config
    records = run_verify(obj.context(), cfg.policy(policy) if policy else None, target, tier)
    code = exit_code_for(records)
    obj.emit(
        "verify",
        {"exit_code": int(code), "verifications": records},
        lambda: _render_verifications(records),
    )
    _report_damage(records)
    sys.exit(code)


@cli.command()
@click.argument("policy")
@click.option("--target", help="Only this target of the policy.")
@click.option("--seed", type=int, help="Repeat the sample of an earlier drill (see its record).")
@click.pass_obj
def drill(obj: Obj, policy: str, target: str | None, seed: int | None) -> None:
    """Restore a sample of POLICY's newest snapshot, compare it, measure the recovery time."""
    from orchestrator.engine.verification import drill as run_drill
    from orchestrator.engine.verification import exit_code_for

    records = run_drill(obj.context(), obj.config.policy(policy), target, seed)
    code = exit_code_for(records)
    obj.emit(
        "drill",
        {"exit_code": int(code), "drills": records},
        lambda: _render_verifications(records),
    )
    _report_damage(records)
    sys.exit(code)


def _render_verifications(records: list[Any]) -> str:
    from orchestrator.render import human_bytes, table

    text = table(
        ["tier", "target", "outcome", "files", "bytes", "seconds", "summary"],
        [
            [r.tier, r.target, r.outcome, r.files, human_bytes(r.bytes), r.seconds, r.message]
            for r in records
        ],
    )
    lines = [text]
    for r in records:
        if r.tier == "drill" and r.details:
            d = r.details
            rto = d.get("extrapolated_full_restore_seconds")
            rate = d.get("throughput_bytes_per_second")
            lines.append(
                f"drill {r.policy}@{r.target}: snapshot {str(d.get('snapshot'))[:8]}, "
                f"seed {d.get('seed')}, {d.get('files_checked')} of "
                f"{d.get('files_in_snapshot')} files ({human_bytes(d.get('bytes_checked'))}) "
                f"checked, {len(d.get('mismatches', []))} mismatches, restore "
                f"{d.get('restore_seconds')}s, {human_bytes(int(rate or 0))}/s, "
                f"full restore ~{(rto or 0) / 60:.1f} min"
                + (
                    f" vs RTO {d['rto_minutes']} min ({'met' if d.get('rto_met') else 'MISSED'})"
                    if d.get("rto_minutes")
                    else ""
                )
            )
    return "\n".join(lines)


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


@cli.group("target")
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
        lambda: "\n".join(_render_check(c) for c in checks),
    )
    for c in checks:
        if not c.ok:
            click.echo(f"orchestrator: {c.problem}", err=True)
    sys.exit(code)


def _render_check(c: Any) -> str:
    from orchestrator.render import human_bytes

    def yes(value: bool | None, good: str, bad: str) -> str | None:
        return None if value is None else (good if value else bad)

    facts = [
        yes(c.reachable, "reachable", "NOT reachable"),
        *c.notes,
        yes(
            c.initialised,
            "repository initialised",
            "repository MISSING"
            if c.problem_kind == "repository_missing"
            else "repository not initialised yet",
        ),
        yes(c.password_ok, f"password accepted ({c.snapshots} snapshots)", "WRONG password"),
        yes(c.writable, "writable", "NOT writable"),
        f"restic {c.restic_version}" + ("" if c.restic_compatible else " (too old)"),
        f"free {human_bytes(c.free_bytes)}" if c.free_bytes is not None else "free space unknown",
        f"next backup ~{human_bytes(c.next_backup_bytes)}"
        if c.next_backup_bytes is not None
        else None,
    ]
    line = f"{c.target}  {'ok' if c.ok else 'FAILED'}  {c.where}: " + "; ".join(
        f for f in facts if f
    )
    return line + (f"\n  problem: {c.problem}" if c.problem else "")


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


@cli.group("catalog")
def catalog_group() -> None:
    """The catalog (state_dir/catalog.sqlite): rebuild it from the repositories' tags."""


@catalog_group.command("rebuild")
@click.pass_obj
def catalog_rebuild(obj: Obj) -> None:
    """Record every snapshot the targets hold (from its policy:, level:, run: tags), finish
    interrupted runs whose snapshot exists, accept vanished ones; a damaged catalog file is
    moved aside first. Exit 3 when some targets could not be read, 1 when none could."""
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
    obj.emit("catalog.rebuild", {"exit_code": int(code), **payload}, "\n".join(lines))
    for name, error in done.errors.items():
        click.echo(f"orchestrator: catalog rebuild: target '{name}': {error}", err=True)
    sys.exit(code)


@cli.group()
def secrets() -> None:
    """Repository passwords and credentials (referenced as secret:NAME)."""


@secrets.command("set")
@click.argument("name")
@click.option("--generate", is_flag=True, help="Store a new random value instead of reading one.")
@click.pass_obj
def secrets_set(obj: Obj, name: str, generate: bool) -> None:
    """Store secret NAME, read from stdin (or a hidden prompt), never from argv."""
    from orchestrator.security.secrets import PREFIX, SecretStore, secret_name

    secret_name(PREFIX + name)  # a bad name is refused before the value is asked for
    store = SecretStore(obj.config.settings.state_dir)
    if generate:
        path = store.generate(name)
    else:
        value = (
            click.prompt(f"value of {name}", hide_input=True, confirmation_prompt=True)
            if sys.stdin.isatty()
            else sys.stdin.readline().rstrip("\n")
        )
        path = store.set(name, value)
    obj.emit(
        "secrets.set", {"name": name, "path": path}, f"secret '{name}' stored in {path} (mode 0600)"
    )


@secrets.command("list")
@click.pass_obj
def secrets_list(obj: Obj) -> None:
    """Names of the stored secrets (never their values)."""
    from orchestrator.security.secrets import SecretStore

    names = SecretStore(obj.config.settings.state_dir).names()
    obj.emit("secrets.list", {"names": names}, "\n".join(names) or "no secrets stored")


@cli.command()
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Keep the demo's files here (default: a temporary directory, removed after).",
)
@click.pass_obj
def demo(obj: Obj, workdir: Path | None) -> None:
    """The whole idea in under a minute: a fast-forwarded month of backups, a restore, status."""
    from orchestrator.demo import run_demo

    lines: list[str] = []
    run_demo(workdir, echo=lines.append if obj.as_json else click.echo)
    if obj.as_json:
        text = "\n".join(lines)
        obj.emit("demo", {"workdir": workdir, "kept": workdir is not None, "output": text}, text)


@cli.command("run")
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
    ctx = obj.context(parse_time(now, cfg.settings.timezone, "--now"))
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
        lambda: _render_pass(report),
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


def _render_pass(report: Any) -> str:
    lines = []
    if report.runs:
        lines.append(_render_runs(report.runs))
    for rec in report.recorded:
        if rec.state != "started":
            lines.append(f"slot {rec.key} {rec.state}: {rec.note}")
    for rec in report.interrupted:
        lines.append(f"slot {rec.key} interrupted: {rec.note}")
    lines += [r.summary for r in report.retention]
    lines += [f"prune {t}: {e or 'done'}" for t, e in report.prunes]
    lines += [
        f"{c.tier} of {c.policy} on {c.target}: {c.outcome}: {c.message}" for c in report.checks
    ]
    lines += [
        f"RPO breached: {b.policy}@{b.target} newest good backup {b.age_hours:.1f}h old "
        f"(rpo {b.rpo_hours:g}h)"
        for b in report.breaches
    ]
    return "\n".join(lines) or f"nothing due at {report.now.isoformat(timespec='minutes')}"


@cli.command()
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


@cli.command()
@click.argument("policy", required=False)
@click.option("--target", help="Only this target of the policy.")
@click.option("--dry-run", is_flag=True, help="Show the plan; remove nothing.")
@click.option(
    "--max-share",
    type=click.FloatRange(0, 1, min_open=True),
    help="Override forget_max_share for this run (e.g. 0.9 after retention was tightened).",
)
@click.pass_obj
def forget(
    obj: Obj, policy: str | None, target: str | None, dry_run: bool, max_share: float | None
) -> None:
    """Apply retention: restic plans (--dry-run --json), we check, then forget by id."""
    from orchestrator.engine.retention import forget_policy
    from orchestrator.render import table
    from orchestrator.restic.features import BUSY_KINDS

    cfg = obj.config
    policies = (
        [cfg.policy(policy)]
        if policy
        else [p for p in cfg.policies.values() if not p.retention.is_empty()]
    )
    ctx = obj.context()
    results = []
    for pol in policies:
        results += forget_policy(ctx, pol, dry_run, target, max_share)
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
        lambda: (
            table(
                ["policy", "target", "keep", "remove", "result"],
                [
                    [
                        r.policy,
                        r.target,
                        len(r.keep),
                        len(r.remove),
                        r.error
                        or r.refused
                        or (
                            "removed"
                            if r.removed
                            else "dry run"
                            if r.remove
                            else "nothing to remove"
                        ),
                    ]
                    for r in results
                ],
            )
            + "".join(
                f"\n{r.policy}@{r.target}: kept {i[:8]}: {why}"
                for r in results
                for i, why in r.reasons.items()
            )
            if results
            else "no policy has retention rules"
        ),
    )
    for r in bad:
        click.echo(f"orchestrator: {r.summary}", err=True)
    sys.exit(code)


def _raise_interrupt(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


_add_global_options(cli)


def main() -> None:
    """Entry point: expected failures print one line and exit with the documented code."""
    signal.signal(signal.SIGTERM, _raise_interrupt)  # restic then gets SIGINT, like Ctrl-C
    as_json = "--json" in sys.argv[1:]
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        _fail("interrupted", ExitCode.CANCELLED, "cancelled", as_json)
    except click.ClickException as exc:
        if as_json:
            _fail(exc.format_message(), ExitCode.USAGE, "usage", as_json)
        exc.show()
        sys.exit(ExitCode.USAGE)
    except OrchestratorError as exc:
        _fail(exc.message, exc.exit_code, getattr(exc, "kind", type(exc).__name__), as_json)
    except KeyboardInterrupt:
        _fail("interrupted", ExitCode.CANCELLED, "cancelled", as_json)
    except Exception as exc:
        if not as_json:
            raise  # a bug: its traceback is the report
        import traceback

        traceback.print_exc()
        _fail(f"internal error: {type(exc).__name__}: {exc}", ExitCode.FAILURE, "internal", True)
    sys.exit(0)


def _fail(message: str, code: int, kind: str, as_json: bool) -> NoReturn:
    if as_json:
        from orchestrator.render import dump_json

        click.echo(
            dump_json(
                "error", {"error": {"kind": kind, "message": message, "exit_code": int(code)}}
            )
        )
    click.echo(f"orchestrator: {message}", err=True)
    sys.exit(code)
