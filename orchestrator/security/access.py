"""Who may do what: pure role decisions over [access], and the denial hook.

Roles (design section 10): an *operator* may do everything; a *requester* may restore
the policies named for them, only under `restore_roots`, and list those policies'
snapshots; an *auditor* reads (status, plan, snapshots, audit, reports). Every role may
run `status` and `plan`; `validate` and `demo` are open to everyone (they read only the
file given or bundled data). Without [access] everyone may do everything, as before it
existed; root (not through sudo) is always an operator: the daemon runs as root, and no
check stops root anyway. A command this table does not know needs an operator, so a
new command is closed until someone decides who may run it.

`decide` does no I/O: a restore destination reaches it already resolved
(`resolve_destination`), and the roots were resolved when policies.toml was read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.events import ACCESS_DENIED, Event, EventBus
from orchestrator.security.identity import Identity, matches

if TYPE_CHECKING:
    from orchestrator.policies.model import AccessSettings

OPERATOR, REQUESTER, AUDITOR = "operator", "requester", "auditor"
ROOT = "root"

# Actions. Commands map onto them below; `approve` is for restore requests (later).
BACKUP, RESTORE, FORGET, VERIFY, DRILL = "backup", "restore", "forget", "verify", "drill"
RUN, DAEMON, SECRETS, APPROVE = "run", "daemon", "secrets", "approve"
TARGET_INIT, TARGET_CHECK, CATALOG_REBUILD = "target.init", "target.check", "catalog.rebuild"
AUDIT_INIT = "audit.init"
VALIDATE, DEMO, STATUS, PLAN, SNAPSHOTS = "validate", "demo", "status", "plan", "snapshots"
AUDIT_READ, REPORT = "audit.read", "report"
# every role reads the tickets; a requester rates their own (service/ticket.py checks whose)
TICKETS_READ, TICKETS_RATE = "tickets.read", "tickets.rate"
TICKETS_CHANGE = "tickets.change"  # ack, assign, comment, resolve, close: an operator's
NOTIFY_SEND = "notify.send"
# checks a proof against files the person brings (no log, no config): anyone's to run
CHECK_PROOF = "audit.check-proof"

OPEN = frozenset({VALIDATE, DEMO, CHECK_PROOF})  # anyone, with or without a role
ANY_ROLE = frozenset({STATUS, PLAN, TICKETS_READ, TICKETS_RATE})  # every role
AUDITOR_READS = frozenset({STATUS, PLAN, SNAPSHOTS, AUDIT_READ, REPORT})

# Command path (as typed after `orchestrator`) -> action; a group's name covers all its
# subcommands. Anything not here is operator-only (see action_for).
COMMANDS: Mapping[str, str] = {
    "validate": VALIDATE,
    "demo": DEMO,
    "status": STATUS,
    "plan": PLAN,
    "snapshots": SNAPSHOTS,
    "restore": RESTORE,
    "backup": BACKUP,
    "forget": FORGET,
    "verify": VERIFY,
    "drill": DRILL,
    "run": RUN,
    "daemon": DAEMON,
    "target check": TARGET_CHECK,
    "source check": TARGET_CHECK,  # the same preflight, for database sources
    "target init": TARGET_INIT,
    "catalog rebuild": CATALOG_REBUILD,
    "secrets": SECRETS,
    "audit init": AUDIT_INIT,
    "audit checkpoint": AUDIT_INIT,  # signs and publishes: the operator's
    "audit verify": AUDIT_READ,
    "audit show": AUDIT_READ,
    "audit prove": AUDIT_READ,
    "audit consistency": AUDIT_READ,
    "audit check-proof": CHECK_PROOF,
    "report": REPORT,
    "tickets list": TICKETS_READ,
    "tickets show": TICKETS_READ,
    "tickets rate": TICKETS_RATE,
    "tickets ack": TICKETS_CHANGE,
    "tickets assign": TICKETS_CHANGE,
    "tickets comment": TICKETS_CHANGE,
    "tickets resolve": TICKETS_CHANGE,
    "tickets close": TICKETS_CHANGE,
    "notify send": NOTIFY_SEND,
    "request restore": RESTORE,  # a requester: their policies, into restore_roots
    "request approve": APPROVE,
    "request reject": APPROVE,
    "request run": APPROVE,
}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


def action_for(command: str) -> str:
    """The action a command path performs (`secrets` covers its whole group); an unknown
    command is its own action, which only an operator may perform."""
    return COMMANDS.get(command) or COMMANDS.get(command.split(" ", 1)[0], command)


def roles_of(identity: Identity, access: AccessSettings) -> tuple[str, ...]:
    """The roles [access] gives this person, in the order operator, requester, auditor."""
    found = []
    if identity.user == ROOT or any(matches(identity, s) for s in access.operators):
        found.append(OPERATOR)
    if any(matches(identity, s) for s in access.requesters):
        found.append(REQUESTER)
    if any(matches(identity, s) for s in access.auditors):
        found.append(AUDITOR)
    return tuple(found)


def requested_policies(identity: Identity, access: AccessSettings) -> tuple[str, ...]:
    """The policies this person may restore as a requester (`*`: all)."""
    names: dict[str, None] = {}
    for subject, policies in access.requesters.items():
        if matches(identity, subject):
            names.update(dict.fromkeys(policies))
    return ("*",) if "*" in names else tuple(names)


def decide(
    identity: Identity,
    action: str,
    access: AccessSettings | None,
    policy: str | None = None,
    path: Path | None = None,
) -> Decision:
    """May `identity` perform `action` (on `policy`, into the resolved `path`)?"""
    if action in OPEN:
        return Decision(True, "open to everyone")
    if access is None:
        return Decision(True, "no [access] in policies.toml: every user may do everything")
    roles = roles_of(identity, access)
    if OPERATOR in roles:
        return Decision(True, "root is always an operator" if identity.user == ROOT else OPERATOR)
    if not roles:
        return Decision(False, f"{identity.user} holds no role in [access]")
    held = " and ".join(roles)
    if action in ANY_ROLE or (AUDITOR in roles and action in AUDITOR_READS):
        return Decision(True, held)
    if REQUESTER in roles and action in (RESTORE, SNAPSHOTS):
        return _as_requester(identity, action, access, policy, path)
    return Decision(False, f"{_needs(action)}; {identity.user} is {held}")


def _needs(action: str) -> str:
    readers = "an operator or an auditor" if action in AUDITOR_READS else "an operator"
    return f"only {readers} may {action.replace('.', ' ')}"


def _as_requester(
    identity: Identity,
    action: str,
    access: AccessSettings,
    policy: str | None,
    path: Path | None,
) -> Decision:
    allowed = requested_policies(identity, access)
    mine = "all policies" if allowed == ("*",) else ", ".join(allowed)
    if policy is None:
        return Decision(False, f"a requester must name one of their policies ({mine})")
    if "*" not in allowed and policy not in allowed:
        return Decision(False, f"{identity.user} may restore only {mine}, not '{policy}'")
    if action == SNAPSHOTS:
        return Decision(True, REQUESTER)
    if path is None:
        return Decision(False, "a requester's restore needs a destination under restore_roots")
    if not access.restore_roots:
        return Decision(False, "[access] names no restore_roots: a requester may restore nowhere")
    if root := root_of(path, access.restore_roots):
        return Decision(True, f"{REQUESTER}, under the restore root {root}")
    roots = ", ".join(str(r) for r in access.restore_roots)
    return Decision(False, f"{path} is outside the restore roots ({roots})")


def root_of(path: Path, roots: tuple[Path, ...]) -> Path | None:
    """The restore root holding the resolved `path` (or being it), if any."""
    return next((root for root in roots if path.is_relative_to(root)), None)


def access_warnings(
    access: AccessSettings | None, known: Callable[[str], bool] = lambda subject: True
) -> list[str]:
    """What `validate` says about [access]: its absence, requesters with nowhere to
    restore, subjects `known` says this machine does not have (a typo locks them out)."""
    if access is None:
        return [
            "no [access] in policies.toml: every user who can run orchestrator may do "
            "everything, as root and the service user always may (add [access] to give roles)"
        ]
    warnings = []
    if access.requesters and not access.restore_roots:
        warnings.append("access.restore_roots: none given: requesters can restore nowhere")
    places = [
        (f"access.{key}", s) for key in ("operators", "auditors") for s in getattr(access, key)
    ]
    places += [("access.requesters", s) for s in access.requesters]
    warnings += [
        f"{place}: {'group' if s.startswith('@') else 'user'} '{s.lstrip('@')}' does not exist "
        "on this machine"
        for place, s in places
        if not known(s)
    ]
    return warnings


# --------------------------------------------------------------------------- the edges


def untrusted_config(path: Path) -> str | None:
    """Why the policies file at `path` is not root's alone, or None when it is.

    Through sudo the process is root, and the policies file decides everything it does
    (the roles, `state_dir`, the key file, `restic_binary`): a file the person could write,
    or put in a folder they can write, would let them grant themselves any role or run
    any program as root. The file itself (links followed) and every folder above it must
    be owned by root and not writable by group or others (a sticky folder such as /tmp
    protects root's entries and is accepted)."""
    try:
        real = Path(os.path.realpath(path))
        st = os.stat(real)
    except OSError as exc:
        return f"the policies file {path} ({exc.strerror})"
    if st.st_uid != 0 or st.st_mode & 0o022:
        return f"the policies file {real} (owner uid {st.st_uid}, mode {st.st_mode & 0o777:o})"
    for folder in real.parents:
        fst = os.stat(folder)
        writable = fst.st_mode & 0o022 and not fst.st_mode & 0o1000
        if fst.st_uid != 0 or writable:
            return (
                f"the policies file {real} in the folder {folder} (owner uid {fst.st_uid}, "
                f"mode {fst.st_mode & 0o7777:o})"
            )
    return None


def resolve_destination(given: Path) -> Path:
    """Where a restore into `given` writes: absolute, `~` expanded, `..` and every
    symlink of the parts that exist followed (as the kernel will when restoring)."""
    return Path(os.path.realpath(given.expanduser()))


def escape_route(given: Path) -> str:
    """Why `given` ends up elsewhere than it reads: the first symlink on its way, or `..`."""
    path = given.expanduser()
    path = path if path.is_absolute() else Path.cwd() / path
    walked = Path(path.anchor)
    for part in path.parts[1:]:
        walked = walked / part
        if part != ".." and os.path.islink(walked):
            return f"through the symbolic link {walked} -> {os.readlink(walked)}"
    return "through '..'" if ".." in path.parts else ""


# Denials of a process without a Context (most commands check before opening one):
# the audit log subscribes here as well as to each Context's bus; each denial reaches
# exactly one of the two.
DENIALS = EventBus()


def on_denied(
    identity: Identity,
    action: str,
    reason: str,
    *,
    policy: str | None = None,
    path: Path | None = None,
    events: EventBus | None = None,
    now: datetime | None = None,
) -> Event:
    """Publish the denial as an `access.denied` Event: on `events` (a Context's bus) when
    the command has one, else on the process-wide DENIALS bus."""
    event = Event(
        kind=ACCESS_DENIED,
        time=now or datetime.now(UTC),
        severity="warning",
        summary=f"{identity} may not {action.replace('.', ' ')}: {reason}",
        policy=policy,
        details={
            "user": identity.user,
            "groups": list(identity.groups),
            "via_sudo": identity.via_sudo,
            "action": action,
            "reason": reason,
            **({"path": str(path)} if path is not None else {}),
        },
    )
    (events if events is not None else DENIALS).publish(event)
    return event
