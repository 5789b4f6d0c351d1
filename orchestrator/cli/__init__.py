"""The command line: parse, call one service function, render. Nothing else.

The root group, its global options and the entry point live here; each command group
has its module (`*_cmds.py`), and what they print is built in `orchestrator.render`."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from orchestrator.cli import (
    audit_cmds,
    backup_cmds,
    catalog_cmds,
    check_cmds,
    config_cmds,
    daemon_cmds,
    demo_cmd,
    notify_cmds,
    report_cmd,
    request_cmds,
    secrets_cmds,
    source_cmds,
    status_cmd,
    target_cmds,
    ticket_cmds,
)
from orchestrator.cli.common import Obj
from orchestrator.cli.guard import guard_commands
from orchestrator.errors import ExitCode, OrchestratorError


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


for _command in (
    config_cmds.validate,
    config_cmds.plan,
    backup_cmds.backup,
    backup_cmds.snapshots,
    backup_cmds.restore,
    backup_cmds.forget,
    status_cmd.status,
    check_cmds.verify,
    check_cmds.drill,
    target_cmds.target_group,
    catalog_cmds.catalog_group,
    secrets_cmds.secrets,
    demo_cmd.demo,
    daemon_cmds.run_cmd,
    daemon_cmds.daemon,
    audit_cmds.audit_group,
    ticket_cmds.tickets_group,
    notify_cmds.notify_group,
    request_cmds.request_group,
    report_cmd.report,
    source_cmds.source_group,
):
    cli.add_command(_command)


def _raise_interrupt(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


_add_global_options(cli)
guard_commands(cli)  # every command checks the acting person's role first (exit 77)


def main() -> None:
    """Entry point: expected failures print one line and exit with the documented code."""
    signal.signal(signal.SIGTERM, _raise_interrupt)  # restic then gets SIGINT, like Ctrl-C
    as_json = "--json" in sys.argv[1:]
    try:
        try:
            cli.main(standalone_mode=False)
        except SystemExit as done:
            _audit_written(done.code, as_json)
            raise
        _audit_written(0, as_json)
    except click.exceptions.Abort:
        _fail("interrupted", ExitCode.CANCELLED, "cancelled", as_json)
    except click.exceptions.NoArgsIsHelpError as exc:
        exc.show()  # the help itself, as asked for by giving nothing
        sys.exit(ExitCode.USAGE)
    except click.ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        _fail(exc.format_message() + hint, ExitCode.USAGE, "usage", as_json)
    except OrchestratorError as exc:
        _fail(exc.message, exc.exit_code, getattr(exc, "kind", type(exc).__name__), as_json)
    except KeyboardInterrupt:
        _fail("interrupted", ExitCode.CANCELLED, "cancelled", as_json)
    except PermissionError as exc:  # a file of the installation this user may not read
        _fail(
            f"permission denied: {exc.filename}: run this as the user who owns the "
            "installation's files (or through sudo)",
            ExitCode.FAILURE,
            "permission",
            as_json,
        )
    except Exception as exc:
        if not as_json:
            raise  # a bug: its traceback is the report
        import traceback

        traceback.print_exc()
        _fail(f"internal error: {type(exc).__name__}: {exc}", ExitCode.FAILURE, "internal", True)
    sys.exit(0)


def _audit_written(code: object, as_json: bool) -> None:
    """A command whose actions could not all be written to the audit log does not exit
    0: what it did stands (the catalog has it), but nobody may read it as audited."""
    sink = sys.modules.get("orchestrator.audit.sink")
    missing = list(getattr(sink, "UNWRITTEN", ()))
    if not missing:
        return
    what = ", ".join(dict.fromkeys(missing))
    message = (
        f"the audit log could not be written for {len(missing)} action(s) ({what}): "
        "they were done but are NOT audited; free space where the audit log lives and "
        "check 'orchestrator audit verify'"
    )
    if code in (0, None):
        _fail(message, ExitCode.FAILURE, "audit_unwritten", as_json)
    click.echo(f"orchestrator: {message}", err=True)


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
