"""What every command shares: the options object (config and context opened on first
use) and reading a time given on the command line."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from orchestrator.errors import UsageError

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
    if not EARLIEST <= parsed.replace(tzinfo=None) <= LATEST:
        raise UsageError(
            f"{option}: '{value}' is outside {EARLIEST.year}..{LATEST.year} (the calendar, "
            "the catalog and restic's snapshot times work within these years)"
        )
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=ZoneInfo(tz))


# Times accepted on the command line: a pass at year 1 recorded "first seen" there, and
# every later pass then failed computing days before it.
EARLIEST, LATEST = datetime(1971, 1, 1), datetime(9998, 12, 31)


def simulated_now(value: str | None, tz: str) -> datetime | None:
    """--now for commands that make snapshots: a time ahead of the real clock is warned
    about, since the snapshots are stamped with it and then sort after later real ones."""
    when = parse_time(value, tz, "--now")
    if when is not None and when > datetime.now(when.tzinfo):
        click.echo(
            f"orchestrator: warning: --now {when.isoformat()} is in the future: snapshots are "
            "stamped with it, so never use it on a real repository",
            err=True,
        )
    return when


def acting_time(obj: Obj, value: str | None) -> datetime | None:
    """--now on ticket and request commands: an operator's, for simulations. Anyone else
    acts at the real time: a requester backdating a request would falsify the SLA."""
    when = parse_time(value, obj.config.settings.timezone, "--now")
    if when is None or obj.config.access is None:
        return when
    from orchestrator.errors import AccessDenied
    from orchestrator.security import access
    from orchestrator.security.identity import current_identity

    identity = current_identity()
    if access.OPERATOR not in access.roles_of(identity, obj.config.access):
        raise AccessDenied(
            f"not permitted: {identity} may not act as at another time (--now): only an "
            "operator may, for simulations"
        )
    return when
