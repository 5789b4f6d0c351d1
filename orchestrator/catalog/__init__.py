"""The state store behind one small interface (SQLite by default).

The engine only sees `Catalog`; a PostgreSQL catalog shared by a fleet of hosts
implements the same protocol later without the engine changing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from orchestrator.events import Event

if TYPE_CHECKING:
    from orchestrator.catalog.outbox_sql import OutboxRow
    from orchestrator.service.ticket import Change, Ticket

# `skipped`: refused before it began (another run of the same policy and target held the
# lock, exit 75): not an attempt, so it never counts as a failed full.
OUTCOMES = ("running", "success", "partial", "failed", "cancelled", "interrupted", "skipped")
GOOD_OUTCOMES = ("success", "partial")


@dataclass
class RunRecord:
    """One run of one operation on one target, from start to outcome."""

    id: str
    kind: str  # backup | restore | copy
    policy: str
    target: str
    started_at: datetime
    host: str
    pid: int
    asked_level: str | None = None
    level: str | None = None
    level_reason: str = ""
    slot_key: str | None = None
    outcome: str = "running"
    finished_at: datetime | None = None
    snapshot_id: str | None = None
    files_new: int | None = None
    files_changed: int | None = None
    files_total: int | None = None
    bytes_added: int | None = None
    bytes_total: int | None = None
    seconds: float | None = None
    error_kind: str | None = None
    message: str = ""
    # The snapshot is no longer in the repository: `forgotten` by our retention, or
    # `vanished` (found missing by a listing). Such a run is history, never "newest good".
    gone_at: datetime | None = None
    gone_reason: str | None = None


# `interrupted`: its process died (kill -9) before it recorded an outcome.
VERIFY_OUTCOMES = ("running", "ok", "damaged", "failed", "interrupted")


@dataclass
class VerificationRecord:
    """One verification tier (check, subset, media) or restore drill on one target."""

    id: str
    tier: str  # check | subset | media | drill
    policy: str | None
    target: str
    started_at: datetime
    # running | ok | damaged | failed | skipped (busy: not an attempt) | cancelled | interrupted
    outcome: str = "running"
    finished_at: datetime | None = None
    error_kind: str | None = None
    snapshot_id: str | None = None
    part: str | None = None  # subset: "i/N"
    seed: int | None = None  # drill: the sample's seed
    files: int = 0
    bytes: int = 0
    seconds: float | None = None
    message: str = ""
    damage: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    host: str = ""  # who runs it, so a record left `running` by a dead process is recovered
    pid: int = 0


SLOT_STATES = ("started", "done", "missed", "skipped", "interrupted")
# A slot in one of these states is settled: no later pass runs it again.
SETTLED_SLOT_STATES = ("done", "missed", "skipped")


@dataclass
class SlotRecord:
    """One scheduled job (a backup slot, a retention or prune job), recorded before it runs.

    `state`: started (claimed, running), done (outcome recorded), missed (past grace and
    covered by a catch-up run under another key), skipped (past grace, deliberately not
    run: catch_up = skip, or superseded), interrupted (its process died mid-run; the next
    pass catches it up by the policy's rule).
    """

    key: str
    kind: str  # backup | forget | prune
    policy: str  # "" for a prune job (per target)
    due: datetime
    level: str | None
    state: str
    target: str | None = None
    note: str = ""
    outcome: str | None = None
    run_ids: tuple[str, ...] = ()
    attempts: int = 0
    host: str = ""
    pid: int = 0
    recorded_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class Catalog(Protocol):
    def start_run(self, run: RunRecord) -> None:
        """Record a run before it starts, so a crash mid-run is found on the next start."""

    def finish_run(self, run: RunRecord) -> None: ...

    def get_run(self, run_id: str) -> RunRecord | None: ...

    def runs(
        self,
        policy: str | None = None,
        target: str | None = None,
        kind: str | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        """Newest first."""

    def newest_run(
        self,
        policy: str,
        target: str,
        *,
        kind: str = "backup",
        level: str | None = None,
        outcomes: tuple[str, ...] = GOOD_OUTCOMES,
        before: datetime | None = None,
    ) -> RunRecord | None:
        """The newest run whose snapshot is still held (not gone), started before `before`."""

    def run_pairs(self, kind: str = "backup") -> set[tuple[str, str]]:
        """Every (policy, target) with at least one run of this kind: many-policy passes
        skip the others' per-pair queries."""
        ...

    def run_trail(
        self, policy: str, target: str, kind: str = "backup"
    ) -> Iterator[tuple[datetime, str | None, str, bool]]:
        """(started_at, level, outcome, gone) of the pair's runs, newest first as
        `newest_run` orders them, read lazily: callers stop at what they need."""
        ...

    def newest_runs(
        self,
        pairs: Iterable[tuple[str, str]],
        *,
        kind: str = "backup",
        level: str | None = None,
        outcomes: tuple[str, ...] = GOOD_OUTCOMES,
    ) -> dict[tuple[str, str], RunRecord]:
        """`newest_run` (no `before`) for many (policy, target) pairs at once; pairs with
        no such run are absent. A pass over 10,000 policies asks one query, not 10,000."""
        ...

    def last_attempts(
        self, pairs: Iterable[tuple[str, str]], kind: str = "backup"
    ) -> dict[tuple[str, str], RunRecord]:
        """Per pair, the newest run of any outcome but `skipped` (a refusal as busy was no
        attempt), gone or not."""
        ...

    def gone_runs(self, target: str, reason: str, policy: str | None = None) -> list[RunRecord]:
        """Runs on the target whose snapshot is gone for this reason, newest first."""
        ...

    def running_runs(self) -> list[RunRecord]:
        """Every run still marked running, newest first."""
        ...

    def ever_had_snapshot(self, target: str) -> bool:
        """A good run (backup or copy, any policy) once recorded a snapshot on `target`:
        its repository existed, so a missing one is an alarm, never a reason to create it."""

    def oldest_run(
        self,
        policy: str,
        target: str,
        *,
        kind: str = "backup",
        outcomes: tuple[str, ...] = GOOD_OUTCOMES,
    ) -> RunRecord | None:
        """The first run of these outcomes (`status`: since when checks are expected)."""

    def recover_interrupted(
        self,
        host: str,
        is_alive: Callable[[int], bool],
        now: datetime,
        on_check: Callable[[VerificationRecord], None] | None = None,
    ) -> list[RunRecord]:
        """Mark runs and verifications left 'running' by a dead process of this host as
        interrupted; `on_check` is called with each verification so recovered (to clean
        up what its dead process left, e.g. a drill's scratch copy)."""

    def find_run(self, prefix: str, kind: str | None = None) -> RunRecord | None:
        """The run whose id starts with `prefix` (None when none or several match)."""

    def mark_gone(
        self, target: str, snapshot_ids: list[str], reason: str, now: datetime
    ) -> list[RunRecord]:
        """Record that these snapshots are no longer in `target` (forgotten or vanished);
        returns the runs newly marked."""

    def start_verification(self, rec: VerificationRecord) -> None: ...

    def finish_verification(self, rec: VerificationRecord) -> None: ...

    def verifications(
        self,
        target: str | None = None,
        tier: str | None = None,
        policy: str | None = None,
        outcomes: tuple[str, ...] | None = None,
        limit: int = 50,
    ) -> list[VerificationRecord]:
        """Newest first."""

    def newest_verifications(
        self, keys: Iterable[tuple[str, str, str]], outcomes: tuple[str, ...] | None = None
    ) -> dict[tuple[str, str, str], VerificationRecord]:
        """Per (policy, target, tier), the newest verification of these outcomes (any when
        None), as `verifications(..., limit=1)` gives it; keys with none are absent."""
        ...

    def newest_verification_times(
        self, keys: Iterable[tuple[str, str, str]], outcomes: tuple[str, ...] | None = None
    ) -> dict[tuple[str, str, str], datetime]:
        """Per (policy, target, tier), the start of the newest verification of these
        outcomes (any when None); keys with none are absent. One statement for a pass."""
        ...

    def subset_parts(self, target: str, total: int) -> dict[int, datetime]:
        """When each part i of `--read-data-subset i/total` was last read without damage."""

    def record_subset_part(
        self, target: str, total: int, part: int, when: datetime, verification_id: str
    ) -> None: ...

    def media_files(self, target: str) -> dict[str, tuple[int, datetime | None]]:
        """The last recorded listing: path -> (size, when last hashed without damage)."""

    def record_media_listing(self, target: str, files: dict[str, int], when: datetime) -> None:
        """Replace the listing; paths whose size is unchanged keep their verified time."""

    def mark_media_verified(self, target: str, paths: list[str], when: datetime) -> None: ...

    def accept_media_removals(self, target: str, paths: list[str]) -> int:
        """Drop files that our own forget/prune removed from the last listing, so the next
        media run does not report them missing; returns how many were in the listing."""

    # --- the daemon's slots (see engine/due.py) ---

    def claim_slot(self, rec: SlotRecord) -> bool:
        """Record a slot as started before its run; False when it is already recorded
        (another pass has it) unless it was interrupted, which is claimed again."""

    def record_slot(self, rec: SlotRecord) -> None:
        """Insert or overwrite a slot's record (missed, skipped, interrupted, done)."""

    def get_slot(self, key: str) -> SlotRecord | None: ...

    def slots(
        self,
        kind: str | None = None,
        policy: str | None = None,
        states: tuple[str, ...] | None = None,
        limit: int = 1000,
    ) -> list[SlotRecord]:
        """Newest due first."""

    def newest_slot_due(self, kind: str, policy: str) -> datetime | None:
        """The due time of the newest recorded slot: every earlier one has been decided."""

    def first_seen(self, policy: str, now: datetime) -> datetime:
        """When the orchestrator first saw the policy (recorded as `now` the first time)."""

    def newest_slot_dues(self, kind: str, policies: Iterable[str]) -> dict[str, datetime]:
        """`newest_slot_due` for many policies at once; policies with no slot are absent."""
        ...

    def first_seen_all(self, policies: Iterable[str], now: datetime) -> dict[str, datetime]:
        """`first_seen` for many policies at once (records `now` for those new)."""
        ...

    def marks(self, prefix: str) -> dict[str, str]:
        """Every mark whose key starts with `prefix`."""
        ...

    def get_mark(self, key: str) -> str | None: ...

    def set_mark(self, key: str, value: str | None, now: datetime) -> None:
        """Set (or with None, delete) a small named fact, e.g. an open RPO alert."""

    def add_event(self, event: Event) -> None: ...

    def events(self, limit: int = 50) -> list[Event]: ...

    # --- the ticket store (service/ticket.py decides; the store keeps) ---

    def file_ticket(
        self, fingerprint: str, decide: Callable[[Ticket | None], tuple[Ticket, Change]]
    ) -> Ticket:
        """Open a ticket for a failure or add to the one not yet closed for its
        fingerprint, atomically: two processes never open two for one fingerprint."""

    def add_ticket(self, ticket: Ticket, change: Change) -> Ticket: ...

    def change_ticket(
        self, ticket_id: int, decide: Callable[[Ticket], tuple[Ticket, Change]]
    ) -> Ticket | None: ...

    def get_ticket(self, ticket_id: int) -> Ticket | None: ...

    def open_ticket_for(self, fingerprint: str) -> Ticket | None: ...

    def tickets(
        self,
        statuses: Iterable[str] | None = None,
        policy: str | None = None,
        limit: int | None = None,
    ) -> list[Ticket]: ...

    def ticket_history(self, ticket_id: int) -> list[Change]: ...

    # --- the notification outbox (notify/outbox.py sends; the store keeps) ---

    def enqueue(self, rows: list[tuple[str, int, str, str]], now: datetime) -> None:
        """(channel, ticket id, event, notice JSON) rows, due at once."""

    def due_notices(self, now: datetime, limit: int = 200) -> list[OutboxRow]: ...

    def claim_notice(self, row_id: int, now: datetime) -> bool: ...

    def notice_sent(self, row_id: int, now: datetime) -> None: ...

    def notice_failed(self, row_id: int, error: str, next_at: datetime | None) -> None: ...

    def failing_channels(self) -> dict[str, tuple[int, str]]: ...

    def close(self) -> None: ...


class CatalogEventSink:
    """Records every engine event in the catalog until tickets and audit subscribe."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def publish(self, event: Event) -> None:
        from orchestrator.errors import OrchestratorError

        try:
            self.catalog.add_event(event)
        except OrchestratorError as exc:  # a full or damaged catalog: one line, no traceback
            logging.getLogger("orchestrator.catalog").error(
                "event %s not recorded: %s", event.kind, exc.message
            )
