"""One exception family; each error carries its exit code and a sentence for a person.

Foreign exceptions are translated into these where they enter, so that the CLI
can print one line and exit with the documented code instead of a traceback.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The exit codes of the command-line contract (design section 6)."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    PARTIAL = 3
    DAMAGE = 4
    CANCELLED = 130
    BUSY = 75
    DENIED = 77  # not permitted (role): security/access.py


class OrchestratorError(Exception):
    """An expected failure: printed as one line, never as a traceback."""

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if kind is not None:  # a stable failure kind for the catalog and --json
            self.kind = kind


class ConfigError(OrchestratorError):
    """policies.toml (or a command-line argument) is wrong; lists every problem."""

    exit_code = ExitCode.USAGE

    def __init__(self, problems: list[str], source: str = "policies.toml") -> None:
        self.problems = problems
        self.source = source
        count = len(problems)
        head = f"{source}: {count} problem{'s' if count != 1 else ''}"
        super().__init__(head + "\n" + "\n".join(f"  {p}" for p in problems))


class UsageError(OrchestratorError):
    exit_code = ExitCode.USAGE


class SecretError(OrchestratorError):
    """A `secret:NAME` reference could not be resolved. Never carries the value."""

    exit_code = ExitCode.USAGE


class BusyError(OrchestratorError):
    """A lock is held by a live process: try again later."""

    exit_code = ExitCode.BUSY


class AccessDenied(OrchestratorError):
    """The acting person's role does not allow the command (one line naming who, what, why)."""

    exit_code = ExitCode.DENIED
    kind = "access_denied"


class ResticError(OrchestratorError):
    """restic failed; `kind` is a stable classification (see restic/features.py)."""

    def __init__(self, message: str, kind: str = "fatal", returncode: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.returncode = returncode


class CancelledError(OrchestratorError):
    """The operator interrupted a run (Ctrl-C / SIGTERM)."""

    exit_code = ExitCode.CANCELLED


class DamageError(OrchestratorError):
    """Verification found damage."""

    exit_code = ExitCode.DAMAGE


class TargetError(OrchestratorError):
    """A target's storage could not be reached or used (SSH, S3, local disk).

    `kind` is a stable classification like restic's (network, timeout, host_key, auth,
    no_bucket, ...); network and timeout are transient and may be retried.
    """

    def __init__(self, message: str, kind: str = "target") -> None:
        super().__init__(message)
        self.kind = kind
