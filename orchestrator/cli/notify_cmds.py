"""`notify send`: deliver the queued notices now (the daemon does it every pass)."""

from __future__ import annotations

import click

from orchestrator.cli.common import Obj


@click.group("notify")
def notify_group() -> None:
    """The notification outbox ([notify.NAME] channels: e-mail, webhook, Request Tracker)."""


@notify_group.command("send")
@click.option("--now", metavar="T", help="Act as at this time (simulation).")
@click.pass_obj
def notify_send(obj: Obj, now: str | None) -> None:
    """Send every queued notice whose time has come; failures are retried later."""
    from orchestrator.cli.common import parse_time
    from orchestrator.notify.outbox import deliver_due

    ctx = obj.context(parse_time(now, obj.config.settings.timezone, "--now"))
    done = deliver_due(ctx.catalog, obj.config.notify, ctx.secrets.resolve, ctx.clock.now())
    lines = [f"sent {len(done.sent)} notice(s)"]
    lines += [f"will retry {ch}: {err}" for ch, err in done.retry]
    lines += [f"gave up on {ch}: {err}" for ch, err in done.given_up]
    payload = {"sent": done.sent, "retry": done.retry, "given_up": done.given_up}
    obj.emit("notify.send", payload, "\n".join(lines))
