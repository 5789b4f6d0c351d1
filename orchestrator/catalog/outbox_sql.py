"""The notification outbox in the SQLite catalog (migration 6 of catalog/sqlite.py).

A ticket change is queued here, one row per channel, inside the process that made it;
the daemon's pass sends what is due. Sending never blocks or fails the action that
caused it, and a channel that keeps failing is visible (`status`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

MIGRATION = """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        channel TEXT NOT NULL,
        ticket_id INTEGER NOT NULL,
        event TEXT NOT NULL,
        notice TEXT NOT NULL,
        created_at TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at TEXT NOT NULL,
        last_error TEXT NOT NULL DEFAULT '',
        sent_at TEXT,
        claimed_at TEXT
    );
    CREATE INDEX outbox_due ON outbox (state, next_at);
    CREATE INDEX outbox_by_channel ON outbox (channel, state)
"""

# failed: given up (permanent error, or too old); sending: claimed by one sender
STATES = ("pending", "sending", "sent", "failed")
CLAIM_SECONDS = 900  # a claim older than this was a sender that died: the row is due again


@dataclass(frozen=True)
class OutboxRow:
    id: int
    channel: str
    ticket_id: int
    event: str
    notice: str  # Notice.to_json()
    created_at: datetime
    state: str
    attempts: int
    next_at: datetime
    last_error: str
    sent_at: datetime | None


def _row(r: Any) -> OutboxRow:
    return OutboxRow(
        r["id"],
        r["channel"],
        r["ticket_id"],
        r["event"],
        r["notice"],
        datetime.fromisoformat(r["created_at"]),
        r["state"],
        r["attempts"],
        datetime.fromisoformat(r["next_at"]),
        r["last_error"],
        datetime.fromisoformat(r["sent_at"]) if r["sent_at"] else None,
    )


class OutboxTables:
    """The outbox half of SqliteCatalog (which provides `self.db`)."""

    db: Any

    def enqueue(self, rows: list[tuple[str, int, str, str]], now: datetime) -> None:
        """(channel, ticket id, event, notice JSON) rows, due at once."""
        self.db.executemany(
            "INSERT INTO outbox (channel, ticket_id, event, notice, created_at, next_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(*r, now.isoformat(), now.isoformat()) for r in rows],
        )

    def due_notices(self, now: datetime, limit: int = 200) -> list[OutboxRow]:
        """Pending rows whose time has come, oldest first (per channel, order is kept),
        and rows a dead sender claimed long ago (sent again: at least once)."""
        stale = (now - timedelta(seconds=CLAIM_SECONDS)).isoformat()
        rows = self.db.execute(
            "SELECT * FROM outbox WHERE (state = 'pending' AND next_at <= ?) "
            "OR (state = 'sending' AND claimed_at <= ?) ORDER BY id LIMIT ?",
            (now.isoformat(), stale, limit),
        ).fetchall()
        return [_row(r) for r in rows]

    def claim_notice(self, row_id: int, now: datetime) -> bool:
        """Take one row for sending; False when another sender has it (two senders at
        once, the daemon and `notify send`, never send one notice twice)."""
        stale = (now - timedelta(seconds=CLAIM_SECONDS)).isoformat()
        cur = self.db.execute(
            "UPDATE outbox SET state = 'sending', claimed_at = ? WHERE id = ? AND "
            "(state = 'pending' OR (state = 'sending' AND claimed_at <= ?))",
            (now.isoformat(), row_id, stale),
        )
        return bool(cur.rowcount == 1)

    def notice_sent(self, row_id: int, now: datetime) -> None:
        self.db.execute(
            "UPDATE outbox SET state = 'sent', sent_at = ?, attempts = attempts + 1 WHERE id = ?",
            (now.isoformat(), row_id),
        )

    def notice_failed(self, row_id: int, error: str, next_at: datetime | None) -> None:
        """A failed attempt: tried again at `next_at`, or given up when it is None."""
        if next_at is None:
            self.db.execute(
                "UPDATE outbox SET state = 'failed', attempts = attempts + 1, last_error = ? "
                "WHERE id = ?",
                (error, row_id),
            )
        else:
            self.db.execute(
                "UPDATE outbox SET state = 'pending', attempts = attempts + 1, last_error = ?, "
                "next_at = ? WHERE id = ?",
                (error, next_at.isoformat(), row_id),
            )

    def failing_channels(self) -> dict[str, tuple[int, str]]:
        """Channel -> (notices not delivered after a failure, the newest error): what
        `status` shows. Cleared for a channel by its next successful delivery."""
        rows = self.db.execute(
            "SELECT channel, COUNT(*) AS n, MAX(id) AS newest FROM outbox AS o "
            "WHERE last_error != '' AND state != 'sent' AND id > COALESCE(("
            "SELECT MAX(id) FROM outbox AS s WHERE s.channel = o.channel AND s.state = 'sent'"
            "), 0) GROUP BY channel"
        ).fetchall()
        out = {}
        for r in rows:
            error = self.db.execute(
                "SELECT last_error FROM outbox WHERE id = ?", (r["newest"],)
            ).fetchone()["last_error"]
            out[r["channel"]] = (int(r["n"]), error)
        return out
