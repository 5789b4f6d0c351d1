"""`tickets list|show|ack|assign|comment|resolve|close|rate`: following a failure through
the service process. Every change is one transaction in the catalog, decided by
service/ticket.py, and goes on the event bus (so into the audit log) naming who did it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click

from orchestrator.cli.common import Obj

ListFilter = click.Choice(["open", "resolved", "closed", "all"])
TICKET_ID = click.IntRange(1, 2**63 - 1)  # SQLite's integers: a larger one is no ticket


def _now(obj: Obj, value: str | None = None) -> datetime:
    """The time of the action: now, or `--now T` (a simulated month, tests)."""
    from orchestrator.cli.common import acting_time

    return obj.context(acting_time(obj, value)).clock.now().astimezone(UTC)


_now_option = click.option("--now", metavar="T", help="Act as at this time (simulation).")


def _who() -> str:
    from orchestrator.security.identity import current_identity

    return current_identity().user


def _ticket_dict(t: Any, now: datetime) -> dict[str, Any]:
    """The ticket's fields and the state of its two clocks at `now`."""
    from dataclasses import asdict

    from orchestrator.service import clock

    data = asdict(t)
    times = clock.ClockTimes.of(t)
    data["response"] = clock.response_state(times, now)
    data["resolution"] = clock.resolution_state(times, now)
    return data


def apply_decision(
    ctx: Any, ticket_id: int, what: str, who: str, decide: Callable[[Any], Any], noun: str
) -> tuple[Any, Any]:
    """One person's decision on a ticket (or request): never dated before its last
    change; an unknown one or a refused change is one line, a refused one an audit
    record too (`ticket.refused`); the change goes on the bus naming who made it."""
    from orchestrator.errors import UsageError
    from orchestrator.service.sink import TICKET_CHANGED, refused_event, ticket_event
    from orchestrator.service.ticket import TicketError, not_before

    history = ctx.catalog.ticket_history(ticket_id)
    last = history[-1].at if history else None
    holder: list[Any] = []

    def recorded(t: Any) -> Any:
        t_after, change = decide(t)
        not_before(t, last, change.at)
        holder.append(change)
        return t_after, change

    try:
        t = ctx.catalog.change_ticket(ticket_id, recorded)
    except TicketError as exc:
        ctx.events.publish(refused_event(ticket_id, who, what, exc.message, ctx.clock.now()))
        raise
    if t is None:
        raise UsageError(
            f"no {noun} {ticket_id}: 'orchestrator tickets list --status all' lists them"
        )
    change = holder[-1]
    text = f"{what} by {who}" + (f": {change.text}" if change.text else "")
    ctx.events.publish(ticket_event(TICKET_CHANGED, t, change.at, text, who=who, action=what))
    return t, change


def _change(obj: Obj, ticket_id: int, what: str, decide: Callable[[Any], Any]) -> Any:
    t, change = apply_decision(obj.context(), ticket_id, what, _who(), decide, "ticket")
    obj.emit(
        f"tickets.{what}",
        {"ticket": _ticket_dict(t, change.at)},
        f"ticket {t.id}: {t.status}" + (f" ({change.text})" if change.text else ""),
    )
    return t


@click.group("tickets")
def tickets_group() -> None:
    """The tickets filed for failures and restore requests (service standard ch. 2, 4)."""


@tickets_group.command("list")
@click.option("--policy", default=None, help="Only this policy's tickets.")
@click.option("--status", "which", type=ListFilter, default="open", show_default=True)
@click.option("--limit", type=click.IntRange(1, 100_000), default=200, show_default=True)
@click.pass_obj
def tickets_list(obj: Obj, policy: str | None, which: str, limit: int) -> None:
    """Tickets, newest first, with the state of their response clock."""
    from orchestrator.render.tickets import ticket_table

    statuses = {
        "open": ("new", "acknowledged"),
        "resolved": ("resolved",),
        "closed": ("closed",),
        "all": None,
    }[which]
    found = obj.context().catalog.tickets(statuses=statuses, policy=policy, limit=limit)
    now = obj.context().clock.now()
    rows = [_ticket_dict(t, now) for t in found]
    obj.emit("tickets.list", {"tickets": rows}, lambda: ticket_table(rows))


@tickets_group.command("show")
@click.argument("ticket_id", type=TICKET_ID)
@click.pass_obj
def tickets_show(obj: Obj, ticket_id: int) -> None:
    """One ticket: every field and its status history."""
    from dataclasses import asdict

    from orchestrator.errors import UsageError
    from orchestrator.render.tickets import ticket_text

    catalog = obj.context().catalog
    t = catalog.get_ticket(ticket_id)
    if t is None:
        raise UsageError(f"no ticket {ticket_id}: 'orchestrator tickets list --status all'")
    history = [asdict(c) for c in catalog.ticket_history(ticket_id)]
    data = _ticket_dict(t, obj.context().clock.now())
    obj.emit(
        "tickets.show", {"ticket": data, "history": history}, lambda: ticket_text(data, history)
    )


@tickets_group.command("ack")
@_now_option
@click.argument("ticket_id", type=TICKET_ID)
@click.pass_obj
def tickets_ack(obj: Obj, ticket_id: int, now: str | None) -> None:
    """Acknowledge a new ticket: the first response, which stops its response clock."""
    from orchestrator.service import ticket as tk

    who, at = _who(), _now(obj, now)
    _change(obj, ticket_id, "ack", lambda t: tk.acknowledge(t, who, at))


@tickets_group.command("assign")
@_now_option
@click.argument("ticket_id", type=TICKET_ID)
@click.argument("to")
@click.pass_obj
def tickets_assign(obj: Obj, ticket_id: int, to: str, now: str | None) -> None:
    """Give the ticket to a person or team."""
    from orchestrator.service import ticket as tk

    who, at = _who(), _now(obj, now)
    to = tk.clean_text(to, "the assignee")
    _change(obj, ticket_id, "assign", lambda t: tk.assign(t, who, to, at))


@tickets_group.command("comment")
@_now_option
@click.argument("ticket_id", type=TICKET_ID)
@click.argument("text")
@click.pass_obj
def tickets_comment(obj: Obj, ticket_id: int, text: str, now: str | None) -> None:
    """Add a line to the ticket's history (progress, who else was called in)."""
    from orchestrator.service import ticket as tk

    who, at = _who(), _now(obj, now)
    text = tk.clean_text(text, "the comment", multiline=True)
    _change(obj, ticket_id, "comment", lambda t: tk.comment(t, who, text, at))


@tickets_group.command("resolve")
@_now_option
@click.argument("ticket_id", type=TICKET_ID)
@click.option("--solution", required=True, help="How it was solved.")
@click.pass_obj
def tickets_resolve(obj: Obj, ticket_id: int, solution: str, now: str | None) -> None:
    """Mark the problem solved (the requester may then rate it; a person closes it)."""
    from orchestrator.service import ticket as tk

    who, at = _who(), _now(obj, now)
    solution = tk.clean_text(solution, "the solution", multiline=True)
    _change(obj, ticket_id, "resolve", lambda t: tk.resolve(t, who, solution, at))


@tickets_group.command("close")
@_now_option
@click.argument("ticket_id", type=TICKET_ID)
@click.option("--solution", default="", help="The solution (required unless it has one).")
@click.pass_obj
def tickets_close(obj: Obj, ticket_id: int, solution: str, now: str | None) -> None:
    """Close the ticket with its solution (the standard's archiving step)."""
    from orchestrator.service import ticket as tk

    who, at = _who(), _now(obj, now)
    solution = tk.clean_text(solution, "the solution", multiline=True)
    _change(obj, ticket_id, "close", lambda t: tk.close(t, who, solution, at))


@tickets_group.command("rate")
@_now_option
@click.argument("ticket_id", type=TICKET_ID)
@click.argument("rating", type=int)
@click.option("--comment", "feedback", default="", help="What went well or not.")
@click.pass_obj
def tickets_rate(obj: Obj, ticket_id: int, rating: int, feedback: str, now: str | None) -> None:
    """The requester's satisfaction with a resolved request, 1 (poor) to 5 (excellent)."""
    from orchestrator.service import ticket as tk

    who, at = _who(), _now(obj, now)
    feedback = tk.clean_text(feedback, "the comment", multiline=True)
    _change(obj, ticket_id, "rate", lambda t: tk.rate(t, who, rating, feedback, at))
