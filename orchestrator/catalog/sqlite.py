"""The default catalog: one SQLite file in WAL mode, schema migrated on open."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.catalog import GOOD_OUTCOMES, RunRecord, SlotRecord, VerificationRecord
from orchestrator.catalog.outbox_sql import MIGRATION as OUTBOX_MIGRATION
from orchestrator.catalog.outbox_sql import OutboxTables
from orchestrator.catalog.tickets_sql import MIGRATION as TICKETS_MIGRATION
from orchestrator.catalog.tickets_sql import TicketTables
from orchestrator.errors import OrchestratorError
from orchestrator.events import Event

# Append only: each entry moves the schema one version forward.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        policy TEXT NOT NULL,
        target TEXT NOT NULL,
        started_at TEXT NOT NULL,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        asked_level TEXT,
        level TEXT,
        level_reason TEXT NOT NULL DEFAULT '',
        slot_key TEXT,
        outcome TEXT NOT NULL,
        finished_at TEXT,
        snapshot_id TEXT,
        files_new INTEGER,
        files_changed INTEGER,
        files_total INTEGER,
        bytes_added INTEGER,
        bytes_total INTEGER,
        seconds REAL,
        error_kind TEXT,
        message TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX runs_by_policy ON runs (policy, target, kind, started_at);
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        time TEXT NOT NULL,
        severity TEXT NOT NULL,
        summary TEXT NOT NULL,
        policy TEXT,
        target TEXT,
        run_id TEXT,
        details TEXT NOT NULL DEFAULT '{}'
    );
    """,
    # verification tiers and restore drills: results, subset parts read, media listings
    """
    CREATE TABLE verifications (
        id TEXT PRIMARY KEY,
        tier TEXT NOT NULL,
        policy TEXT,
        target TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        outcome TEXT NOT NULL,
        error_kind TEXT,
        snapshot_id TEXT,
        part TEXT,
        seed INTEGER,
        files INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0,
        seconds REAL,
        message TEXT NOT NULL DEFAULT '',
        damage TEXT NOT NULL DEFAULT '[]',
        details TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX verifications_by_target ON verifications (target, tier, started_at);
    CREATE TABLE subset_parts (
        target TEXT NOT NULL,
        total INTEGER NOT NULL,
        part INTEGER NOT NULL,
        read_at TEXT NOT NULL,
        verification_id TEXT NOT NULL,
        PRIMARY KEY (target, total, part)
    );
    CREATE TABLE media_files (
        target TEXT NOT NULL,
        path TEXT NOT NULL,
        size INTEGER NOT NULL,
        listed_at TEXT NOT NULL,
        verified_at TEXT,
        PRIMARY KEY (target, path)
    );
    """,
    # the daemon: every slot recorded before its run and after (idempotent passes, crash
    # recovery, missed slots), when each policy was first seen, and small named marks
    """
    CREATE TABLE slots (
        key TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        policy TEXT NOT NULL,
        target TEXT,
        due TEXT NOT NULL,
        due_utc TEXT NOT NULL,
        level TEXT,
        state TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT '',
        outcome TEXT,
        run_ids TEXT NOT NULL DEFAULT '[]',
        attempts INTEGER NOT NULL DEFAULT 0,
        host TEXT NOT NULL DEFAULT '',
        pid INTEGER NOT NULL DEFAULT 0,
        recorded_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT
    );
    CREATE INDEX slots_by_policy ON slots (kind, policy, due_utc);
    CREATE INDEX slots_by_state ON slots (state, due_utc);
    CREATE TABLE policies_seen (
        policy TEXT PRIMARY KEY,
        first_seen TEXT NOT NULL
    );
    CREATE TABLE marks (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    # snapshots no longer in their repository (forgotten by retention, or vanished), and
    # who runs a verification, so that one left `running` by a killed process is recovered
    """
    ALTER TABLE runs ADD COLUMN gone_at TEXT;
    ALTER TABLE runs ADD COLUMN gone_reason TEXT;
    ALTER TABLE verifications ADD COLUMN host TEXT NOT NULL DEFAULT '';
    ALTER TABLE verifications ADD COLUMN pid INTEGER NOT NULL DEFAULT 0;
    """,
    # what every start, `status` and each daemon pass ask: runs still running (without a
    # scan of every run ever made), a pair's runs of any kind newest first, checks by policy
    """
    CREATE INDEX runs_by_outcome ON runs (outcome, host);
    CREATE INDEX runs_by_pair ON runs (policy, target, started_at);
    CREATE INDEX runs_by_level ON runs (policy, target, kind, level, started_at);
    CREATE INDEX runs_by_gone ON runs (gone_reason, target);
    CREATE INDEX slots_by_kind_state ON slots (kind, state, due_utc);
    CREATE INDEX verifications_by_outcome ON verifications (outcome, host);
    CREATE INDEX verifications_by_policy ON verifications (policy, target, tier, started_at);
    """,
    # the ticket store (service workflow, issue 17): catalog/tickets_sql.py
    TICKETS_MIGRATION,
    # the notification outbox (issue 17): catalog/outbox_sql.py
    OUTBOX_MIGRATION,
)

CREATED_MARK = "catalog.created_at"
# Set by `catalog rebuild` for a target whose repository it found missing: the lost catalog
# may have seen snapshots there, so no backup or copy creates one (`target init` may).
MISSING_AT_REBUILD_MARK = "rebuild.repository_missing:"

_RUN_FIELDS = [f.name for f in fields(RunRecord)]
_TIME_FIELDS = {"started_at", "finished_at", "gone_at"}


def _to_row(run: RunRecord) -> dict[str, object]:
    row = {name: getattr(run, name) for name in _RUN_FIELDS}
    for name in _TIME_FIELDS:
        if row[name] is not None:
            row[name] = row[name].isoformat()  # type: ignore[union-attr]
    return row


def _from_row(row: sqlite3.Row) -> RunRecord:
    values = {name: row[name] for name in _RUN_FIELDS}
    for name in _TIME_FIELDS:
        if values[name] is not None:
            values[name] = datetime.fromisoformat(values[name])
    return RunRecord(**values)


class CatalogError(OrchestratorError):
    """The catalog file cannot be used (damaged, disk full, unreadable): one line naming the
    file and what to do, exit 1, never a traceback."""


def catalog_error(path: Path, exc: BaseException) -> CatalogError:
    """Translate a foreign error where it enters: say which file, what is wrong, what to do."""
    text = str(exc)
    low = text.lower()
    full = "full" in low or "no space" in low or getattr(exc, "errno", None) == errno.ENOSPC
    if full or ("disk i/o error" in low and _no_room(path.parent)):
        return CatalogError(
            f"catalog {path}: no space left on the device holding the state directory "
            f"({text}); free space there — runs not recorded are reconciled from the "
            "repositories' run: tags at the next start",
            kind="catalog_full",
        )
    if "malformed" in low or "not a database" in low or "encrypted" in low:
        return CatalogError(
            f"catalog {path} is damaged ({text}): move it aside and run "
            "'orchestrator catalog rebuild' to rebuild it from the repositories",
            kind="catalog_damaged",
        )
    denied = getattr(exc, "errno", None) == errno.EACCES or "unable to open" in low
    if denied and not os.access(path.parent, os.W_OK | os.X_OK):
        return CatalogError(
            f"catalog {path}: permission denied ({text}): run this as the user who owns "
            f"{path.parent} (or through sudo)",
            kind="catalog_denied",
        )
    return CatalogError(f"catalog {path}: {text}", kind="catalog")


def _no_room(directory: Path) -> bool:
    """Whether the file system holding `directory` is (nearly) full: sqlite reports a disk
    that was full before it started as a bare 'disk I/O error'."""
    try:
        st = os.statvfs(directory)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 256 * 1024 or (st.f_files > 0 and st.f_favail == 0)


class _Db:
    """sqlite3 connection whose errors become one CatalogError naming the file."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn, self.path = conn, path

    def execute(self, sql: str, params: object = ()) -> sqlite3.Cursor:
        try:
            return self.conn.execute(sql, params)  # type: ignore[arg-type]
        except sqlite3.Error as exc:
            raise catalog_error(self.path, exc) from None

    def executemany(self, sql: str, rows: object) -> sqlite3.Cursor:
        try:
            return self.conn.executemany(sql, rows)  # type: ignore[arg-type]
        except sqlite3.Error as exc:
            raise catalog_error(self.path, exc) from None

    def rollback(self) -> None:
        """After a failed statement inside BEGIN: roll back if a transaction is still open."""
        if self.conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")

    def close(self) -> None:
        self.conn.close()


class SqliteCatalog(TicketTables, OutboxTables):
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                conn = sqlite3.connect(path, timeout=30, isolation_level=None)
            except sqlite3.Error as exc:
                raise catalog_error(path, exc) from None
            conn.row_factory = sqlite3.Row
            self.db = _Db(conn, path)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except OSError as exc:
            raise catalog_error(path, exc) from None

    def _migrate(self) -> None:
        """Each step in its own BEGIN IMMEDIATE, with the version read again inside it: two
        first starts at once serialise here, and the second finds the work done."""
        fresh = False
        while True:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                version = self.db.execute("PRAGMA user_version").fetchone()[0]
                if version > len(MIGRATIONS):
                    raise CatalogError(
                        f"catalog {self.path} has schema {version}, newer than this "
                        f"orchestrator knows ({len(MIGRATIONS)}): upgrade the orchestrator"
                    )
                if version == len(MIGRATIONS):
                    if fresh:  # a new catalog: `status` says since when it knows anything
                        self.db.execute(
                            "INSERT OR IGNORE INTO marks (key, value, updated_at) VALUES (?, ?, ?)",
                            (CREATED_MARK, _utcnow(), _utcnow()),
                        )
                    self.db.execute("COMMIT")
                    return
                fresh = fresh or version == 0
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {version + 1}")
                self.db.execute("COMMIT")
            except BaseException:
                self.db.rollback()
                raise

    def start_run(self, run: RunRecord) -> None:
        row = _to_row(run)
        cols = ", ".join(row)
        marks = ", ".join(f":{c}" for c in row)
        self.db.execute(f"INSERT INTO runs ({cols}) VALUES ({marks})", row)

    def finish_run(self, run: RunRecord) -> None:
        row = _to_row(run)
        sets = ", ".join(f"{c} = :{c}" for c in row if c != "id")
        self.db.execute(f"UPDATE runs SET {sets} WHERE id = :id", row)

    def get_run(self, run_id: str) -> RunRecord | None:
        row = self.db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _from_row(row) if row else None

    def runs(
        self,
        policy: str | None = None,
        target: str | None = None,
        kind: str | None = None,
        limit: int = 50,
    ) -> list[RunRecord]:
        where, params = _filters(policy=policy, target=target, kind=kind)
        sql = f"SELECT * FROM runs {where} ORDER BY started_at DESC, rowid DESC LIMIT ?"
        return [_from_row(r) for r in self.db.execute(sql, [*params, limit])]

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
        where, params = _filters(policy=policy, target=target, kind=kind, level=level)
        marks = ", ".join("?" for _ in outcomes)
        where += f" AND outcome IN ({marks}) AND gone_at IS NULL"
        rows = self.db.execute(
            f"SELECT * FROM runs {where} ORDER BY started_at DESC, rowid DESC",
            [*params, *outcomes],
        )
        # Times are stored with their offsets: compare them as datetimes, not as text.
        for run in map(_from_row, rows):
            if before is None or run.started_at < before:
                return run
        return None

    def run_pairs(self, kind: str = "backup") -> set[tuple[str, str]]:
        rows = self.db.execute(
            "SELECT DISTINCT policy, target FROM runs WHERE kind = ?", (kind,)
        ).fetchall()
        return {(r[0], r[1]) for r in rows}

    def run_trail(
        self, policy: str, target: str, kind: str = "backup"
    ) -> Iterator[tuple[datetime, str | None, str, bool]]:
        rows = self.db.execute(
            "SELECT started_at, level, outcome, gone_at FROM runs "
            "WHERE policy = ? AND target = ? AND kind = ? ORDER BY started_at DESC, rowid DESC",
            (policy, target, kind),
        )
        for started, level, outcome, gone in rows:
            yield datetime.fromisoformat(started), level, outcome, gone is not None

    def newest_runs(
        self,
        pairs: Iterable[tuple[str, str]],
        *,
        kind: str = "backup",
        level: str | None = None,
        outcomes: tuple[str, ...] = GOOD_OUTCOMES,
    ) -> dict[tuple[str, str], RunRecord]:
        marks = ", ".join("?" for _ in outcomes)
        where = f"outcome IN ({marks}) AND gone_at IS NULL" + (" AND level = ?" if level else "")
        return self._newest_per_pair(pairs, kind, where, [*outcomes, *([level] if level else [])])

    def last_attempts(
        self, pairs: Iterable[tuple[str, str]], kind: str = "backup"
    ) -> dict[tuple[str, str], RunRecord]:
        return self._newest_per_pair(pairs, kind, "outcome != 'skipped'", [])

    def _newest_per_pair(
        self, pairs: Iterable[tuple[str, str]], kind: str, where: str, params: list[str]
    ) -> dict[tuple[str, str], RunRecord]:
        """The newest run (by started_at, then rowid, as `newest_run` orders) of each
        pair that matches `where`: one statement, one index seek per pair inside SQLite."""
        wanted = json.dumps(list(pairs))  # tuples encode as arrays
        sql = (
            "SELECT r.* FROM json_each(?) AS j JOIN runs AS r ON r.rowid = ("
            "SELECT rowid FROM runs WHERE policy = json_extract(j.value, '$[0]') "
            "AND target = json_extract(j.value, '$[1]') AND kind = ? "
            f"AND {where} ORDER BY started_at DESC, rowid DESC LIMIT 1)"
        )
        rows = self.db.execute(sql, [wanted, kind, *params])
        return {(run.policy, run.target): run for run in map(_from_row, rows)}

    def gone_runs(self, target: str, reason: str, policy: str | None = None) -> list[RunRecord]:
        where, params = _filters(target=target, gone_reason=reason, policy=policy)
        sql = f"SELECT * FROM runs {where} ORDER BY started_at DESC, rowid DESC"
        return [_from_row(r) for r in self.db.execute(sql, params)]

    def running_runs(self) -> list[RunRecord]:
        rows = self.db.execute(
            "SELECT * FROM runs WHERE outcome = 'running' ORDER BY started_at DESC, rowid DESC"
        )
        return [_from_row(r) for r in rows]

    def find_run(self, prefix: str, kind: str | None = None) -> RunRecord | None:
        if not prefix:
            return None
        where, params = _filters(kind=kind)
        rows = self.db.execute(
            f"SELECT * FROM runs {where} AND substr(id, 1, ?) = ? LIMIT 2",
            [*params, len(prefix), prefix],
        ).fetchall()
        return _from_row(rows[0]) if len(rows) == 1 else None

    def mark_gone(
        self, target: str, snapshot_ids: list[str], reason: str, now: datetime
    ) -> list[RunRecord]:
        if not snapshot_ids:
            return []
        rows = self.db.execute(
            "SELECT * FROM runs WHERE target = ? AND snapshot_id IS NOT NULL "
            "AND gone_at IS NULL AND kind IN ('backup', 'copy')",
            (target,),
        ).fetchall()
        marked = []
        for run in map(_from_row, rows):
            if any(same_snapshot(run.snapshot_id, sid) for sid in snapshot_ids):
                run.gone_at, run.gone_reason = now, reason
                self.finish_run(run)
                marked.append(run)
        return marked

    def ever_had_snapshot(self, target: str) -> bool:
        marks = ", ".join("?" for _ in GOOD_OUTCOMES)
        row = self.db.execute(
            f"SELECT 1 FROM runs WHERE target = ? AND snapshot_id IS NOT NULL "
            f"AND outcome IN ({marks}) LIMIT 1",
            (target, *GOOD_OUTCOMES),
        ).fetchone()
        return row is not None or self.get_mark(MISSING_AT_REBUILD_MARK + target) is not None

    def oldest_run(
        self,
        policy: str,
        target: str,
        *,
        kind: str = "backup",
        outcomes: tuple[str, ...] = GOOD_OUTCOMES,
    ) -> RunRecord | None:
        where, params = _filters(policy=policy, target=target, kind=kind)
        marks = ", ".join("?" for _ in outcomes)
        sql = (
            f"SELECT * FROM runs {where} AND outcome IN ({marks}) "
            "ORDER BY started_at ASC, rowid ASC LIMIT 1"
        )
        row = self.db.execute(sql, [*params, *outcomes]).fetchone()
        return _from_row(row) if row else None

    def recover_interrupted(
        self,
        host: str,
        is_alive: Callable[[int], bool],
        now: datetime,
        on_check: Callable[[VerificationRecord], None] | None = None,
    ) -> list[RunRecord]:
        rows = self.db.execute(
            "SELECT * FROM runs WHERE outcome = 'running' AND host = ?", (host,)
        ).fetchall()
        found = []
        for run in map(_from_row, rows):
            if is_alive(run.pid):
                continue
            run.outcome = "interrupted"
            run.finished_at = now
            run.error_kind = "interrupted"
            run.message = "the orchestrator process stopped before the run finished"
            self.finish_run(run)
            found.append(run)
        rows = self.db.execute(
            "SELECT * FROM verifications WHERE outcome = 'running' AND host = ? AND pid > 0",
            (host,),
        ).fetchall()
        for rec in map(_verification_from, rows):
            if is_alive(rec.pid):
                continue
            rec.outcome, rec.error_kind, rec.finished_at = "interrupted", "interrupted", now
            rec.message = f"the orchestrator process (pid {rec.pid}) stopped before it finished"
            self.finish_verification(rec)
            if on_check is not None:
                on_check(rec)
        return found

    def add_event(self, event: Event) -> None:
        self.db.execute(
            "INSERT INTO events (kind, time, severity, summary, policy, target, run_id, details) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.kind,
                event.time.isoformat(),
                event.severity,
                event.summary,
                event.policy,
                event.target,
                event.run_id,
                json.dumps(event.details, sort_keys=True, default=str),
            ),
        )

    def events(self, limit: int = 50) -> list[Event]:
        rows = self.db.execute("SELECT * FROM events ORDER BY seq DESC LIMIT ?", (limit,))
        return [
            Event(
                kind=r["kind"],
                time=datetime.fromisoformat(r["time"]),
                severity=r["severity"],
                summary=r["summary"],
                policy=r["policy"],
                target=r["target"],
                run_id=r["run_id"],
                details=json.loads(r["details"]),
            )
            for r in rows
        ]

    # --- verification tiers and drills ---

    def start_verification(self, rec: VerificationRecord) -> None:
        row = _verification_row(rec)
        cols = ", ".join(row)
        marks = ", ".join(f":{c}" for c in row)
        self.db.execute(f"INSERT INTO verifications ({cols}) VALUES ({marks})", row)

    def finish_verification(self, rec: VerificationRecord) -> None:
        row = _verification_row(rec)
        sets = ", ".join(f"{c} = :{c}" for c in row if c != "id")
        self.db.execute(f"UPDATE verifications SET {sets} WHERE id = :id", row)

    def verifications(
        self,
        target: str | None = None,
        tier: str | None = None,
        policy: str | None = None,
        outcomes: tuple[str, ...] | None = None,
        limit: int = 50,
    ) -> list[VerificationRecord]:
        where, params = _filters(target=target, tier=tier, policy=policy)
        if outcomes:
            where += f" AND outcome IN ({', '.join('?' for _ in outcomes)})"
            params += list(outcomes)
        sql = f"SELECT * FROM verifications {where} ORDER BY started_at DESC, rowid DESC LIMIT ?"
        return [_verification_from(r) for r in self.db.execute(sql, [*params, limit])]

    def newest_verifications(
        self, keys: Iterable[tuple[str, str, str]], outcomes: tuple[str, ...] | None = None
    ) -> dict[tuple[str, str, str], VerificationRecord]:
        wanted = json.dumps(list(keys))
        where = f"AND outcome IN ({', '.join('?' for _ in outcomes)}) " if outcomes else ""
        sql = (
            "SELECT v.* FROM json_each(?) AS j JOIN verifications AS v ON v.rowid = ("
            "SELECT rowid FROM verifications WHERE policy = json_extract(j.value, '$[0]') "
            "AND target = json_extract(j.value, '$[1]') AND tier = json_extract(j.value, '$[2]') "
            f"{where}ORDER BY started_at DESC, rowid DESC LIMIT 1)"
        )
        rows = self.db.execute(sql, [wanted, *(outcomes or ())])
        return {(r.policy or "", r.target, r.tier): r for r in map(_verification_from, rows)}

    def newest_verification_times(
        self, keys: Iterable[tuple[str, str, str]], outcomes: tuple[str, ...] | None = None
    ) -> dict[tuple[str, str, str], datetime]:
        wanted = json.dumps([list(k) for k in keys])
        where = f"AND outcome IN ({', '.join('?' for _ in outcomes)}) " if outcomes else ""
        sql = (
            "SELECT j.value AS k, (SELECT started_at FROM verifications "
            "WHERE policy = json_extract(j.value, '$[0]') "
            "AND target = json_extract(j.value, '$[1]') AND tier = json_extract(j.value, '$[2]') "
            f"{where}ORDER BY started_at DESC, rowid DESC LIMIT 1) AS newest "
            "FROM json_each(?) AS j"
        )
        rows = self.db.execute(sql, [*(outcomes or ()), wanted])
        return {
            tuple(json.loads(r["k"])): datetime.fromisoformat(r["newest"])  # type: ignore[misc]
            for r in rows
            if r["newest"]
        }

    def subset_parts(self, target: str, total: int) -> dict[int, datetime]:
        rows = self.db.execute(
            "SELECT part, read_at FROM subset_parts WHERE target = ? AND total = ?",
            (target, total),
        )
        return {r["part"]: datetime.fromisoformat(r["read_at"]) for r in rows}

    def record_subset_part(
        self, target: str, total: int, part: int, when: datetime, verification_id: str
    ) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO subset_parts (target, total, part, read_at, verification_id) "
            "VALUES (?, ?, ?, ?, ?)",
            (target, total, part, when.isoformat(), verification_id),
        )

    def media_files(self, target: str) -> dict[str, tuple[int, datetime | None]]:
        rows = self.db.execute(
            "SELECT path, size, verified_at FROM media_files WHERE target = ?", (target,)
        )
        return {
            r["path"]: (
                r["size"],
                datetime.fromisoformat(r["verified_at"]) if r["verified_at"] else None,
            )
            for r in rows
        }

    def record_media_listing(self, target: str, files: dict[str, int], when: datetime) -> None:
        old = self.media_files(target)
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute("DELETE FROM media_files WHERE target = ?", (target,))
            self.db.executemany(
                "INSERT INTO media_files (target, path, size, listed_at, verified_at) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (
                        target,
                        path,
                        size,
                        when.isoformat(),
                        _iso(old[path][1]) if path in old and old[path][0] == size else None,
                    )
                    for path, size in files.items()
                ],
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.rollback()
            raise

    def mark_media_verified(self, target: str, paths: list[str], when: datetime) -> None:
        self.db.executemany(
            "UPDATE media_files SET verified_at = ? WHERE target = ? AND path = ?",
            [(when.isoformat(), target, p) for p in paths],
        )

    def accept_media_removals(self, target: str, paths: list[str]) -> int:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            cur = self.db.executemany(
                "DELETE FROM media_files WHERE target = ? AND path = ?",
                [(target, p) for p in paths],
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.rollback()
            raise
        return cur.rowcount

    # --- the daemon's slots ---

    def claim_slot(self, rec: SlotRecord) -> bool:
        row = _slot_row(rec)
        cols = ", ".join(row)
        marks = ", ".join(f":{c}" for c in row)
        self.db.execute("BEGIN IMMEDIATE")
        try:
            cur = self.db.execute(
                f"INSERT INTO slots ({cols}) VALUES ({marks}) ON CONFLICT (key) DO NOTHING", row
            )
            claimed = cur.rowcount == 1
            if not claimed:
                sets = ", ".join(f"{c} = :{c}" for c in row if c not in ("key", "attempts"))
                cur = self.db.execute(
                    f"UPDATE slots SET {sets}, attempts = attempts + 1 "
                    "WHERE key = :key AND state = 'interrupted'",
                    row,
                )
                claimed = cur.rowcount == 1
            self.db.execute("COMMIT")
        except BaseException:
            self.db.rollback()
            raise
        return claimed

    def record_slot(self, rec: SlotRecord) -> None:
        row = _slot_row(rec)
        cols = ", ".join(row)
        marks = ", ".join(f":{c}" for c in row)
        sets = ", ".join(f"{c} = excluded.{c}" for c in row if c != "key")
        self.db.execute(
            f"INSERT INTO slots ({cols}) VALUES ({marks}) ON CONFLICT (key) DO UPDATE SET {sets}",
            row,
        )

    def get_slot(self, key: str) -> SlotRecord | None:
        row = self.db.execute("SELECT * FROM slots WHERE key = ?", (key,)).fetchone()
        return _slot_from(row) if row else None

    def slots(
        self,
        kind: str | None = None,
        policy: str | None = None,
        states: tuple[str, ...] | None = None,
        limit: int = 1000,
    ) -> list[SlotRecord]:
        where, params = _filters(kind=kind, policy=policy)
        if states:
            where += f" AND state IN ({', '.join('?' for _ in states)})"
            params += list(states)
        sql = f"SELECT * FROM slots {where} ORDER BY due_utc DESC, key DESC LIMIT ?"
        return [_slot_from(r) for r in self.db.execute(sql, [*params, limit])]

    def newest_slot_due(self, kind: str, policy: str) -> datetime | None:
        row = self.db.execute(
            "SELECT due FROM slots WHERE kind = ? AND policy = ? ORDER BY due_utc DESC LIMIT 1",
            (kind, policy),
        ).fetchone()
        return datetime.fromisoformat(row["due"]) if row else None

    def first_seen(self, policy: str, now: datetime) -> datetime:
        self.db.execute(
            "INSERT INTO policies_seen (policy, first_seen) VALUES (?, ?) "
            "ON CONFLICT (policy) DO NOTHING",
            (policy, now.isoformat()),
        )
        row = self.db.execute(
            "SELECT first_seen FROM policies_seen WHERE policy = ?", (policy,)
        ).fetchone()
        return datetime.fromisoformat(row["first_seen"])

    def newest_slot_dues(self, kind: str, policies: Iterable[str]) -> dict[str, datetime]:
        rows = self.db.execute(
            "SELECT j.value AS policy, (SELECT due FROM slots WHERE kind = ? AND policy = j.value "
            "ORDER BY due_utc DESC LIMIT 1) AS due FROM json_each(?) AS j",
            (kind, json.dumps(list(policies))),
        )
        return {r["policy"]: datetime.fromisoformat(r["due"]) for r in rows if r["due"]}

    def first_seen_all(self, policies: Iterable[str], now: datetime) -> dict[str, datetime]:
        names = json.dumps(list(policies))
        self.db.execute(
            "INSERT INTO policies_seen (policy, first_seen) SELECT value, ? FROM json_each(?) "
            "WHERE true ON CONFLICT (policy) DO NOTHING",
            (now.isoformat(), names),
        )
        rows = self.db.execute(
            "SELECT policy, first_seen FROM policies_seen "
            "WHERE policy IN (SELECT value FROM json_each(?))",
            (names,),
        )
        return {r["policy"]: datetime.fromisoformat(r["first_seen"]) for r in rows}

    def marks(self, prefix: str) -> dict[str, str]:
        rows = self.db.execute(
            "SELECT key, value FROM marks WHERE substr(key, 1, ?) = ?", (len(prefix), prefix)
        )
        return {r["key"]: r["value"] for r in rows}

    def get_mark(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM marks WHERE key = ?", (key,)).fetchone()
        return row["value"] if row else None

    def set_mark(self, key: str, value: str | None, now: datetime) -> None:
        if value is None:
            self.db.execute("DELETE FROM marks WHERE key = ?", (key,))
            return
        self.db.execute(
            "INSERT INTO marks (key, value, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
            "updated_at = excluded.updated_at",
            (key, value, now.isoformat()),
        )

    def close(self) -> None:
        self.db.close()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _utcnow() -> str:
    return datetime.now(UTC).isoformat()


def same_snapshot(a: str | None, b: str | None) -> bool:
    """restic 0.14 reports 8-character ids where 0.18 reports 64: equal when one is the
    other's prefix (and at least 8 characters long)."""
    if not a or not b or min(len(a), len(b)) < 8:
        return False
    return a.startswith(b) or b.startswith(a)


_VERIFICATION_FIELDS = [f.name for f in fields(VerificationRecord)]


def _verification_row(rec: VerificationRecord) -> dict[str, object]:
    row: dict[str, object] = {name: getattr(rec, name) for name in _VERIFICATION_FIELDS}
    row["started_at"] = rec.started_at.isoformat()
    row["finished_at"] = _iso(rec.finished_at)
    row["damage"] = json.dumps(rec.damage, sort_keys=True, default=str)
    row["details"] = json.dumps(rec.details, sort_keys=True, default=str)
    return row


def _verification_from(row: sqlite3.Row) -> VerificationRecord:
    values = {name: row[name] for name in _VERIFICATION_FIELDS}
    values["started_at"] = datetime.fromisoformat(row["started_at"])
    values["finished_at"] = (
        datetime.fromisoformat(row["finished_at"]) if row["finished_at"] else None
    )
    values["damage"] = json.loads(row["damage"])
    values["details"] = json.loads(row["details"])
    return VerificationRecord(**values)


_SLOT_FIELDS = [f.name for f in fields(SlotRecord)]
_SLOT_TIMES = ("due", "recorded_at", "started_at", "finished_at")


def _slot_row(rec: SlotRecord) -> dict[str, object]:
    row: dict[str, object] = {name: getattr(rec, name) for name in _SLOT_FIELDS}
    for name in _SLOT_TIMES:
        row[name] = _iso(getattr(rec, name))
    # `due` keeps the policy's zone for people; `due_utc` sorts correctly across DST.
    row["due_utc"] = rec.due.astimezone(UTC).isoformat()
    row["run_ids"] = json.dumps(list(rec.run_ids))
    return row


def _slot_from(row: sqlite3.Row) -> SlotRecord:
    values = {name: row[name] for name in _SLOT_FIELDS}
    for name in _SLOT_TIMES:
        values[name] = datetime.fromisoformat(row[name]) if row[name] else None
    values["run_ids"] = tuple(json.loads(row["run_ids"]))
    return SlotRecord(**values)


def _filters(**conditions: str | None) -> tuple[str, list[str]]:
    clauses = [f"{col} = ?" for col, val in conditions.items() if val is not None]
    params = [val for val in conditions.values() if val is not None]
    return "WHERE " + (" AND ".join(clauses) if clauses else "1 = 1"), params
