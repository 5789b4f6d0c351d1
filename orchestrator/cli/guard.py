"""The role check every command passes before it acts (security/access.py decides).

`guard_commands` wraps each command's callback once, after the command line is parsed
(so a late `--config` counts) and before the command touches anything: a denial is one
line naming who, what and why, exit 77, and an `access.denied` event."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from orchestrator.cli.common import Obj
from orchestrator.errors import AccessDenied


def guard_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> None:
    """Put the role check in front of every command of `group`, subgroups included."""
    for name, command in group.commands.items():
        path = (*prefix, name)
        if isinstance(command, click.Group):
            guard_commands(command, path)
        elif command.callback is not None:
            command.callback = _guarded(" ".join(path), command.callback)


def _guarded(command: str, callback: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        obj = click.get_current_context().find_object(Obj)
        if obj is not None:
            check(obj, command, kwargs.get("policy"), kwargs.get("destination"))
        return callback(*args, **kwargs)

    return run


def check(obj: Obj, command: str, policy: str | None, destination: Path | None) -> None:
    """Raise AccessDenied (exit 77) unless the acting person may run `command`."""
    from orchestrator.security import access
    from orchestrator.security.identity import current_identity

    action = access.action_for(command)
    if action in (access.DEMO, access.CHECK_PROOF):
        return  # needs no config and touches nothing of the installation
    identity = current_identity()
    if identity.via_sudo:  # root acting for a person: the person must not choose the rules
        problem = access.untrusted_config(obj.config_path)
        if problem:
            raise AccessDenied(
                f"not permitted: {identity} may not run '{command}' with {problem}: through "
                "sudo only a policies file that root alone can change is honoured"
            )
    if action in access.OPEN:
        return
    config = obj.config
    path = None
    if action == access.RESTORE and destination is not None:
        path = access.resolve_destination(destination)
    decision = access.decide(identity, action, config.access, policy, path)
    if decision.allowed:
        return
    reason = decision.reason
    if destination is not None and path is not None and str(destination) != str(path):
        route = access.escape_route(destination)  # the `..` or symlink that leads out
        shown = f"{destination} resolves to {path}{f' ({route})' if route else ''}, which"
        reason = reason.replace(f"{path} is outside", f"{shown} is outside", 1)
    event = access.on_denied(
        identity,
        action,
        reason,
        policy=policy,
        path=path,
        events=obj._ctx.events if obj._ctx is not None else None,
    )
    if obj._ctx is None:  # no Context (and so no audit subscriber) yet: record it here
        _audit_denial(config, event)
    what = f"{command} {policy}" if policy else command
    raise AccessDenied(f"not permitted: {identity} may not run '{what}': {reason}")


def _audit_denial(config: Any, event: Any) -> None:
    """A denial is an audit record, written before the command exits 77. A person the
    system itself does not let write the log (running the command directly, not through
    sudo or the service) leaves no record: that is said with -v, and their refusal
    stays one line."""
    import logging

    from orchestrator.audit.sink import event_record
    from orchestrator.audit.trail import open_trail
    from orchestrator.errors import OrchestratorError

    try:
        open_trail(config).record(event_record(event))
    except (OrchestratorError, OSError) as exc:
        why = getattr(exc, "message", None) or str(exc)
        logging.getLogger("orchestrator.audit").info("denial not audited: %s", why)
