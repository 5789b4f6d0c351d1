"""What restic's exit codes and messages mean, keyed by restic version.

restic 0.14 only has exit codes 0, 1, 3 and 130; 0.17 added 10 (no repository),
11 (lock failed) and 12 (wrong password). Everything version-dependent lives in
this table so the rest of the code asks for a *kind* of failure, never a number.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

# Stable failure kinds, used in the catalog, in events and in --json output.
NO_REPOSITORY = "no_repository"
WRONG_PASSWORD = "wrong_password"
LOCKED = "locked"
DISK_FULL = "disk_full"
REPOSITORY_NOT_DIRECTORY = "repository_not_directory"
SOURCE_MISSING = "source_missing"
# The orchestrator's own kinds for the data-loss guards (engine/repository.py, engine/backup.py).
REPOSITORY_MISSING = "repository_missing"  # the catalog saw snapshots there; now nothing
SOURCE_EMPTY = "source_empty"  # the sources hold no files (an unmounted mount point?)
SOURCE_SHRUNK = "source_shrunk"  # far fewer files than the previous good snapshot
PARTIAL = "partial"
INTERRUPTED = "interrupted"
TIMEOUT = "timeout"
NETWORK = "network"
FATAL = "fatal"
REPOSITORY_DAMAGED = "repository_damaged"  # restic says the repository lacks or garbles data
BUSY = "busy"  # our own run lock (state_dir/locks) is held

TRANSIENT_KINDS = frozenset({LOCKED, NETWORK, TIMEOUT})
# Another live process holds a lock: exit 75, try later (restic's lock or ours).
BUSY_KINDS = frozenset({LOCKED, BUSY})


@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Version:
        match = re.search(r"restic (\d+)\.(\d+)\.(\d+)", text)
        if not match:
            return cls(0, 0, 0)
        return cls(*(int(g) for g in match.groups()))

    def at_least(self, major: int, minor: int) -> bool:
        return (self.major, self.minor) >= (major, minor)


# restic >= 0.17 reports these kinds by exit code.
_CODES_0_17 = {10: NO_REPOSITORY, 11: LOCKED, 12: WRONG_PASSWORD}

# Ordered: the first pattern found in stderr decides. Lower-cased text.
_STDERR_PATTERNS: tuple[tuple[str, str], ...] = (
    ("signal interrupt received", INTERRUPTED),  # SIGINT; restic 0.17+ may then exit 1
    ("wrong password or no key found", WRONG_PASSWORD),
    ("no space left on device", DISK_FULL),
    ("repository is already locked", LOCKED),
    ("unable to create lock", LOCKED),
    ("is there a repository at the following location", NO_REPOSITORY),
    ("unable to open config file", NO_REPOSITORY),
    ("not a directory", REPOSITORY_NOT_DIRECTORY),
    ("connection refused", NETWORK),
    ("connection reset", NETWORK),
    ("no route to host", NETWORK),
    ("i/o timeout", NETWORK),
    ("connection closed", NETWORK),
    ("ssh command exited", NETWORK),
)


def classify(version: Version, returncode: int, stderr: str) -> str:
    """Map a restic exit into a stable failure kind."""
    if returncode == 130:
        return INTERRUPTED
    if returncode == 3:
        return PARTIAL
    if version.at_least(0, 17) and returncode in _CODES_0_17:
        return _CODES_0_17[returncode]
    text = stderr.lower()
    for needle, kind in _STDERR_PATTERNS:
        if needle in text:
            return kind
    return FATAL


@dataclass(frozen=True)
class Features:
    """What one restic version can do; the one place that knows which version added what."""

    exit_codes: bool  # 10 no repository, 11 lock failed, 12 wrong password (0.17)
    json_errors: bool  # with --json, a fatal error is {"message_type":"exit_error",...} (0.17)
    retry_lock: bool  # `--retry-lock DURATION` (0.16)
    stdin_from_command: bool  # `backup --stdin-from-command -- CMD...` (0.17)
    check_json: bool  # `check --json` (0.18)
    snapshot_summary: bool  # a snapshot records its backup's counts (`summary`) (0.17)
    # `forget --keep-*`: a rule with counts left at the oldest snapshot keeps it (0.16)
    forget_keeps_oldest: bool


# Each feature and the first restic version that has it. Ordered by version.
_ADDED_IN: dict[str, tuple[int, int]] = {
    "retry_lock": (0, 16),
    "forget_keeps_oldest": (0, 16),
    "exit_codes": (0, 17),
    "json_errors": (0, 17),
    "stdin_from_command": (0, 17),
    "snapshot_summary": (0, 17),
    "check_json": (0, 18),
}


def features_of(version: Version) -> Features:
    """The feature set of `version` (an unknown version, 0.0.0, has none of the new ones)."""
    return Features(**{name: version.at_least(*since) for name, since in _ADDED_IN.items()})


def supports_retry_lock(version: Version) -> bool:
    """`--retry-lock` appeared in restic 0.16; older versions need our own retries."""
    return features_of(version).retry_lock


def plain_errors(text: str) -> str:
    """restic's output with its JSON error messages turned back into plain lines.

    With `--json`, restic 0.17+ prints a fatal error as one JSON line,
    `{"message_type":"exit_error","code":1,"message":"Fatal: ..."}`, where 0.14 prints
    the plain `Fatal: ...` text. Every message shown to a person or stored in the catalog
    is cut from this text, so the JSON is unwrapped here, once, for every version (a
    line that is not such JSON is left as it is)."""
    if "exit_error" not in text:
        return text
    out = []
    for line in text.splitlines():
        message = _exit_error_message(line)
        out.append(line if message is None else message)
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def _exit_error_message(line: str) -> str | None:
    stripped = line.strip()
    if not (stripped.startswith("{") and "exit_error" in stripped):
        return None
    try:
        msg = json.loads(stripped)
    except json.JSONDecodeError:
        return None
    if not isinstance(msg, dict) or msg.get("message_type") != "exit_error":
        return None
    return str(msg.get("message") or f"restic exited {msg.get('code', '?')}")


# What restic says when the repository itself lacks or garbles data (lower-cased text):
# a deleted index gives "id ... not found in repository" (0.14) and, in backup, "tree ...
# is not known; the repository could be damaged" (0.18).
_DAMAGE_PATTERNS = (
    "not found in repository",
    "could be damaged",
    "is damaged",
    "ciphertext verification failed",
    "invalid data returned",
    "repository contains errors",
)


def damage_line(lines: list[str]) -> str | None:
    """The first of restic's message lines saying the repository is damaged, if any."""
    for line in lines:
        low = line.lower()
        if any(p in low for p in _DAMAGE_PATTERNS):
            return line
    return None


_LOCK_HOLDER = re.compile(r"locked (exclusively )?by PID (\d+) on (\S+) by (\S+)")


def lock_holder(stderr: str) -> str | None:
    """Who holds the lock restic ran into, as restic reports it (0.14 and 0.18 alike)."""
    match = _LOCK_HOLDER.search(stderr)
    if not match:
        return None
    exclusive, pid, host, user = match.groups()
    kind = "an exclusive lock" if exclusive else "a lock"
    return f"{kind} held by PID {pid} on host {host} (user {user})"
