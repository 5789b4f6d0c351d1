"""The validated configuration: frozen dataclasses built once from policies.toml.

Everything downstream reads these objects and never the raw TOML, so a value is
checked in exactly one place (policies/loader.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from orchestrator.service.rules import DEFAULT_PRIORITIES as _DEFAULT_PRIORITIES

Level = Literal["full", "differential", "incremental"]
LEVELS: tuple[Level, ...] = ("full", "differential", "incremental")
# Higher rank wins when schedules collide in one slot: full > differential > incremental.
LEVEL_RANK: dict[str, int] = {"incremental": 0, "differential": 1, "full": 2}

Importance = Literal["critical", "high", "normal", "low"]
IMPORTANCES: tuple[Importance, ...] = ("critical", "high", "normal", "low")

CatchUp = Literal["once", "skip", "all"]
CATCH_UPS: tuple[CatchUp, ...] = ("once", "skip", "all")

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Settings:
    """The [orchestrator] table."""

    state_dir: Path
    timezone: str = "UTC"
    max_parallel: int = 2
    misfire_grace_minutes: int = 60
    max_full_interval_days: int = 35
    restic_binary: str = "restic"
    timeout_seconds: int = 6 * 3600
    # The daemon (engine/due.py, engine/daemon.py):
    retries: int = 3  # extra attempts of a transiently failed run, per slot
    retry_backoff_seconds: int = 30  # first wait; doubles after each attempt
    forget_max_share: float = 0.5  # refuse a retention plan removing more of a policy's snapshots
    # The secret store's key file; the loader always fills it (security/keys.py:
    # keys/secrets.key beside policies.toml, or an earlier version's default in use).
    secrets_key_file: Path | None = None


@dataclass(frozen=True)
class TargetSpec:
    """Where a repository lives. `password` is a `secret:NAME` reference, never a value."""

    name: str
    kind: Literal["local", "sftp", "s3"]
    password: str


@dataclass(frozen=True)
class LocalTargetSpec(TargetSpec):
    path: Path = Path()


@dataclass(frozen=True)
class SftpTargetSpec(TargetSpec):
    host: str = ""
    port: int = 22
    user: str = ""
    path: str = ""
    identity_file: Path | None = None
    known_hosts: Path | None = None
    connect_timeout: int = 30  # seconds for connecting and for each network read


@dataclass(frozen=True)
class S3TargetSpec(TargetSpec):
    bucket: str = ""
    prefix: str = ""
    endpoint: str | None = None
    region: str | None = None
    credentials: str | None = None
    connect_timeout: int = 30  # seconds for connecting and for each network read


@dataclass(frozen=True)
class ScheduleEntry:
    """One calendar rule of a policy.

    `name` is `daily`, `weekly`, `monthly` or `cron[i]`. `cron` is the five-field
    expression; for `monthly` with day > 28, `month_day` is kept so the calendar can
    clamp it to the last day of shorter months (see policies/schedule.py).
    """

    name: str
    cron: str
    level: Level
    month_day: int | None = None


@dataclass(frozen=True)
class Retention:
    """How many snapshots to keep per period (restic's --keep-* options)."""

    last: int | None = None
    hourly: int | None = None
    daily: int | None = None
    weekly: int | None = None
    monthly: int | None = None
    yearly: int | None = None

    def is_empty(self) -> bool:
        return all(v is None for v in vars(self).values())


@dataclass(frozen=True)
class VerifySpec:
    every: str = "weekly"
    read_data_fraction: str | None = None
    media: bool = False
    media_budget: str | None = None


@dataclass(frozen=True)
class DrillSpec:
    every: str = "monthly"
    sample_files: int | None = None
    sample_bytes: str | None = None
    rto_minutes: int | None = None
    check_sql: str | None = None


@dataclass(frozen=True)
class DatabaseSpec:
    """A database source (issue 18). Servers: `name` on `host:port` as `user`, the
    password a `secret:NAME`; SQLite: the file `path` (`name` defaults to its stem)."""

    kind: Literal["postgres", "mariadb", "mysql", "sqlite"]
    name: str
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = None
    path: Path | None = None


@dataclass(frozen=True)
class Policy:
    name: str
    importance: Importance
    targets: tuple[str, ...]
    schedules: tuple[ScheduleEntry, ...]
    description: str = ""
    sources: tuple[Path, ...] = ()
    exclude: tuple[str, ...] = ()
    database: DatabaseSpec | None = None
    catch_up: CatchUp = "once"
    retention: Retention = field(default_factory=Retention)
    verify: VerifySpec | None = None
    drill: DrillSpec | None = None
    rpo_hours: float | None = None
    # Targets that get a `restic copy` of each new snapshot (backed up once, copied after).
    copy_to: tuple[str, ...] = ()
    # A run whose sources hold no files fails (source_empty) unless this is true.
    allow_empty: bool = False
    # A run with fewer files than this share of the previous good snapshot's fails
    # (source_shrunk); 0 turns the guard off.
    min_files_ratio: float = 0.5


@dataclass(frozen=True)
class ServiceSettings:
    """[service]: who gets which ticket, how fast, and the priority table (service/)."""

    # policy:NAME, a failure class, a category (backup, verify, retention, restore) or
    # default -> a person or team (service/rules.py: assignee)
    assign: dict[str, str] = field(default_factory=dict)
    response_hours: dict[str, float] = field(
        default_factory=lambda: {"urgent": 2, "important": 4, "general": 8}
    )
    resolution_hours: dict[str, float] = field(
        default_factory=lambda: {"urgent": 24, "important": 72, "general": 168}
    )
    # group (loss, protection, assurance) -> importance -> priority; the defaults of
    # service/rules.py with [service.priorities] laid over them
    priorities: dict[str, dict[str, str]] = field(
        default_factory=lambda: {g: dict(r) for g, r in _DEFAULT_PRIORITIES.items()}
    )
    escalate: tuple[str, ...] = ()  # [notify.NAME] channels told of a response deadline passed
    notify: tuple[str, ...] = ()


@dataclass(frozen=True)
class AccessSettings:
    """The [access] table: who holds which role (security/access.py decides with it).

    A subject is a user name, `@group` (a Unix group) or `*` (everybody). `requesters`
    maps each subject to the policies it may restore (`*`: all of them); the list form
    `requesters = ["alice"]` reads as every policy. `restore_roots` are resolved (symlinks
    followed) when the file is read."""

    operators: tuple[str, ...] = ()
    auditors: tuple[str, ...] = ()
    requesters: dict[str, tuple[str, ...]] = field(default_factory=dict)
    restore_roots: tuple[Path, ...] = ()


@dataclass(frozen=True)
class AuditSettings:
    """[audit] (audit log, issue 16); the loader fills the default paths."""

    # [audit] key_file: an earlier version's PEM key, moved into the secret store when found
    legacy_key_file: Path = Path()  # default <config dir>/keys/audit-ed25519.pem
    export_dir: Path = Path()  # default <state_dir>/audit/export; point it off this host
    checkpoint_every: int = 100  # sign and publish a checkpoint every N records (and daily)
    origin: str = ""  # the checkpoints' origin line; default "<hostname>/orchestrator-audit"


@dataclass(frozen=True)
class Config:
    """The whole validated policies.toml."""

    path: Path
    settings: Settings
    targets: dict[str, TargetSpec]
    policies: dict[str, Policy]
    service: ServiceSettings = field(default_factory=ServiceSettings)
    access: AccessSettings | None = None  # None: no [access] table (everyone as before)
    sha256: str = ""
    audit: AuditSettings = field(default_factory=AuditSettings)  # audit log (issue 16)
    # [notify.NAME]: where ticket changes are sent (notify/routing.py's channels)
    notify: tuple[Any, ...] = ()

    def policy(self, name: str) -> Policy:
        from orchestrator.errors import UsageError

        try:
            return self.policies[name]
        except KeyError:
            known = ", ".join(sorted(self.policies)) or "none"
            raise UsageError(f"unknown policy '{name}' (known: {known})") from None

    def targets_of(self, policy: Policy, only: str | None = None) -> list[TargetSpec]:
        from orchestrator.errors import UsageError

        if only is not None and only not in policy.targets:
            raise UsageError(
                f"policy '{policy.name}' has no target '{only}' "
                f"(its targets: {', '.join(policy.targets)})"
            )
        names = [only] if only else list(policy.targets)
        return [self.targets[n] for n in names]

    def holders_of(self, policy: Policy, only: str | None = None) -> list[TargetSpec]:
        """Every target holding the policy's snapshots, for reading them (snapshots, restore,
        verify, drill): its backup targets, then its copy_to targets."""
        from orchestrator.errors import UsageError

        names = [*policy.targets, *policy.copy_to]
        if only is not None and only not in names:
            raise UsageError(
                f"policy '{policy.name}' has no target '{only}' (its targets: {', '.join(names)})"
            )
        return [self.targets[n] for n in ([only] if only else names)]
