"""`request restore|approve|reject|run`: a restore asked for through a ticket (service
standard 6.2), approved by an operator who did not ask for it, carried out by the daemon
(or `request run`), verified, recorded and resolved with the evidence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from orchestrator.cli.common import Obj, acting_time, parse_time
from orchestrator.cli.ticket_cmds import TICKET_ID


@click.group("request")
def request_group() -> None:
    """Restore requests: ask, approve or reject, run."""


def _who() -> Any:
    from orchestrator.security.identity import current_identity

    return current_identity()


def _emit(obj: Obj, what: str, t: Any, text: str) -> None:
    from dataclasses import asdict

    obj.emit(f"request.{what}", {"ticket": asdict(t)}, text)


@request_group.command("restore")
@click.argument("policy")
@click.option("--path", "paths", multiple=True, help="Only this path of the snapshot (repeatable).")
@click.option("--as-of", "as_of", metavar="T", help="The newest snapshot at or before T.")
@click.option(
    "--to",
    "destination",
    required=True,
    type=click.Path(path_type=Path),
    help="Where to restore (a requester: under restore_roots).",
)
@click.option("--reason", required=True, help="Why the data is needed.")
@click.option("--now", metavar="T", help="Act as at this time (simulation).")
@click.pass_obj
def request_restore(
    obj: Obj,
    policy: str,
    paths: tuple[str, ...],
    as_of: str | None,
    destination: Path,
    reason: str,
    now: str | None,
) -> None:
    """Ask for a restore of POLICY; an operator approves it, the daemon carries it out."""
    from orchestrator.security import access
    from orchestrator.service import requests as rq
    from orchestrator.service.sink import TICKET_OPENED, ticket_event
    from orchestrator.service.ticket import clean_text

    reason = clean_text(reason, "the reason", multiline=True)
    cfg = obj.config
    tz = cfg.settings.timezone
    pol = cfg.policy(policy)
    when = parse_time(as_of, tz, "--as-of")
    ctx = obj.context(acting_time(obj, now))
    at = ctx.clock.now()
    _check_what(ctx, policy, paths, when)
    identity = _who()
    roles = access.roles_of(identity, cfg.access) if cfg.access else (access.OPERATOR,)
    to = Path(access.resolve_destination(destination))
    t, change = rq.file_request(
        identity.user,
        policy,
        pol.importance,
        paths,
        str(to),
        when,
        reason,
        at,
        cfg.service.response_hours,
        cfg.service.resolution_hours,
        cfg.service.assign,
    )
    # who is not an operator stays inside the restore roots, checked again when it runs
    t.details["request"]["within_roots"] = access.OPERATOR not in roles
    filed = ctx.catalog.add_ticket(t, change)
    ctx.events.publish(ticket_event(TICKET_OPENED, filed, at, filed.description, identity.user))
    _emit(
        obj,
        "restore",
        filed,
        f"request {filed.id} filed ({filed.priority}): waiting for an operator's approval",
    )


def _check_what(ctx: Any, policy: str, paths: tuple[str, ...], when: Any) -> None:
    """What can be known before an operator approves: absolute paths, and a snapshot
    at or before --as-of (an operator should not approve what cannot run)."""
    from orchestrator.engine.requests import as_of_snapshot
    from orchestrator.errors import OrchestratorError, UsageError

    for p in paths:
        if not p.startswith("/") or "\x00" in p:
            raise UsageError(f"--path {p!r}: give the absolute path as in the snapshot")
    if when is not None:
        try:
            as_of_snapshot(ctx, policy, when)
        except OrchestratorError as exc:
            raise UsageError(f"--as-of: {exc.message}") from None


def _decide(obj: Obj, ticket_id: int, what: str, decide: Any, now: str | None) -> Any:
    from orchestrator.cli.ticket_cmds import apply_decision

    ctx = obj.context(acting_time(obj, now))
    at = ctx.clock.now()
    who = _who().user
    t, _ = apply_decision(ctx, ticket_id, what, who, lambda cur: decide(cur, who, at), "request")
    return t


@request_group.command("approve")
@click.argument("ticket_id", type=TICKET_ID)
@click.option("--now", metavar="T", help="Act as at this time (simulation).")
@click.pass_obj
def request_approve(obj: Obj, ticket_id: int, now: str | None) -> None:
    """Approve request N (not one's own); the daemon's next pass carries it out."""
    from orchestrator.service import requests as rq

    t = _decide(obj, ticket_id, "approve", rq.approve, now)
    _emit(
        obj,
        "approve",
        t,
        f"request {t.id} approved: the daemon's next pass (or 'request run {t.id}') restores it",
    )


@request_group.command("reject")
@click.argument("ticket_id", type=TICKET_ID)
@click.option("--reason", required=True, help="Why it is rejected.")
@click.option("--now", metavar="T", help="Act as at this time (simulation).")
@click.pass_obj
def request_reject(obj: Obj, ticket_id: int, reason: str, now: str | None) -> None:
    """Reject request N, saying why."""
    from orchestrator.service import requests as rq
    from orchestrator.service.ticket import clean_text

    why = clean_text(reason, "the reason", multiline=True)
    t = _decide(obj, ticket_id, "reject", lambda cur, who, at: rq.reject(cur, who, why, at), now)
    _emit(obj, "reject", t, f"request {t.id} rejected: {reason}")


@request_group.command("run")
@click.argument("ticket_id", type=TICKET_ID)
@click.option("--now", metavar="T", help="Act as at this time (simulation).")
@click.pass_obj
def request_run(obj: Obj, ticket_id: int, now: str | None) -> None:
    """Carry out approved request N now (the daemon does so on its next pass)."""
    from orchestrator.engine.requests import run_request
    from orchestrator.errors import OrchestratorError
    from orchestrator.service import requests as rq

    ctx = obj.context(acting_time(obj, now))
    t = run_request(ctx, ticket_id, _who().user)
    if rq.state(t) == rq.FAILED:
        raise OrchestratorError(f"request {t.id} failed: {t.details['request'].get('error')}")
    _emit(obj, "run", t, f"request {t.id} done: {t.solution}")
