"""Who is acting on the command line, and whether a subject of [access] names them.

The person is the Unix user of the process's *real* uid. Through sudo the process runs
as root and the person is `SUDO_USER`: it is honoured only when the real uid is 0,
because only root (or sudo, which is root) can have put it in the environment of a root
process, while any user can set it for their own processes. A non-root process with
`SUDO_USER` (`sudo -u other`) is therefore the real user, never the name it claims.

A user's groups come from the user database (`getgrouplist`, as `id NAME` shows them),
not from the process, so the person reached through sudo keeps their own groups.

Subjects in [access] are a user name, `@group` (a Unix group) or `*` (everybody).
"""

from __future__ import annotations

import grp
import os
import pwd
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

SUDO_USER = "SUDO_USER"
EVERYONE = "*"
GROUP_PREFIX = "@"
# POSIX-ish account names (useradd also allows capitals with --badname, and a final $).
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,255}\$?")
SUBJECT_RULE = "a user name, '@group' or '*'"


@dataclass(frozen=True)
class Identity:
    """The person acting: `user` and their Unix `groups`; `via_sudo` when root ran the
    command on their behalf (then `user` is SUDO_USER, not root)."""

    user: str
    groups: tuple[str, ...] = ()
    via_sudo: bool = False

    def __str__(self) -> str:
        return f"{self.user} (through sudo)" if self.via_sudo else self.user


# Lookups, injectable so identity_from stays a pure function of its inputs.
UserOf = Callable[[int], str | None]
GroupsOf = Callable[[str], tuple[str, ...]]


def identity_from(
    uid: int, environ: Mapping[str, str], user_of: UserOf, groups_of: GroupsOf
) -> Identity:
    """The acting person for a process with real `uid` and environment `environ`."""
    sudo_user = environ.get(SUDO_USER, "").strip()
    if uid == 0 and sudo_user and _NAME.fullmatch(sudo_user):
        return Identity(sudo_user, groups_of(sudo_user), via_sudo=True)
    name = user_of(uid) or f"uid:{uid}"  # a uid with no passwd entry still has a name
    return Identity(name, groups_of(name) if user_of(uid) else (), via_sudo=False)


def current_identity() -> Identity:
    """Who runs this process (the edge: reads the real uid, the environment, the user db)."""
    return identity_from(os.getuid(), os.environ, _user_of, _groups_of)


def _user_of(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def _groups_of(user: str) -> tuple[str, ...]:
    """The user's groups by name (primary first), from the user and group databases."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return ()
    names: list[str] = []
    for gid in os.getgrouplist(user, entry.pw_gid):
        try:
            name = grp.getgrgid(gid).gr_name
        except KeyError:
            continue
        if name not in names:
            names.append(name)
    return tuple(names)


def subject_problem(subject: str) -> str | None:
    """Why `subject` is not a valid [access] subject, or None when it is."""
    if subject == EVERYONE:
        return None
    name = subject.removeprefix(GROUP_PREFIX)
    if subject == GROUP_PREFIX:
        return f"'{subject}' names no group: write '@GROUP'"
    if not _NAME.fullmatch(name):
        return f"'{subject}' is not {SUBJECT_RULE} (names hold only A-Z a-z 0-9 _ . -)"
    return None


def matches(identity: Identity, subject: str) -> bool:
    """Whether `subject` names this person: `*`, their user name, or `@` one of their groups."""
    if subject == EVERYONE:
        return True
    if subject.startswith(GROUP_PREFIX):
        return subject[len(GROUP_PREFIX) :] in identity.groups
    return subject == identity.user


def subject_exists(subject: str) -> bool:
    """Whether this machine has the user or group a subject names (`*` always)."""
    if subject == EVERYONE:
        return True
    try:
        if subject.startswith(GROUP_PREFIX):
            grp.getgrnam(subject[len(GROUP_PREFIX) :])
        else:
            pwd.getpwnam(subject)
    except KeyError:
        return False
    return True
