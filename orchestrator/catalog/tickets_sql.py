"""The ticket store in the SQLite catalog (migration 5 of catalog/sqlite.py).

Every change is one `BEGIN IMMEDIATE` transaction that reads the ticket, lets a pure
function of service/ticket.py decide, and writes the ticket and its history line: two
processes (two daemons' passes, a daemon and an operator) never open two tickets for
one fingerprint (a unique index on the open ones backs this) nor lose each other's change.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import fields, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from orchestrator.service.ticket import Change, Ticket

if TYPE_CHECKING:
    import sqlite3

MIGRATION = """
    CREATE TABLE tickets (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        priority TEXT NOT NULL,
        classification TEXT NOT NULL,
        requester TEXT NOT NULL,
        description TEXT NOT NULL,
        occurred_at TEXT NOT NULL,
        opened_at TEXT NOT NULL,
        respond_by TEXT NOT NULL,
        resolve_by TEXT NOT NULL,
        fingerprint TEXT,
        host TEXT NOT NULL DEFAULT '',
        policy TEXT NOT NULL DEFAULT '',
        target TEXT NOT NULL DEFAULT '',
        repository TEXT NOT NULL DEFAULT '',
        snapshot TEXT NOT NULL DEFAULT '',
        assignee TEXT NOT NULL DEFAULT '',
        count INTEGER NOT NULL DEFAULT 1,
        last_seen TEXT,
        acknowledged_at TEXT,
        acknowledged_by TEXT NOT NULL DEFAULT '',
        escalated_at TEXT,
        resolved_at TEXT,
        resolved_by TEXT NOT NULL DEFAULT '',
        solution TEXT NOT NULL DEFAULT '',
        closed_at TEXT,
        closed_by TEXT NOT NULL DEFAULT '',
        rating INTEGER,
        feedback TEXT NOT NULL DEFAULT '',
        details TEXT NOT NULL DEFAULT '{}'
    );
    CREATE UNIQUE INDEX tickets_one_per_problem ON tickets (fingerprint)
        WHERE fingerprint IS NOT NULL AND status IN ('new', 'acknowledged');
    CREATE INDEX tickets_by_status ON tickets (status, respond_by);
    CREATE INDEX tickets_by_policy ON tickets (policy, status);
    CREATE TABLE ticket_history (
        ticket_id INTEGER NOT NULL REFERENCES tickets (id),
        at TEXT NOT NULL,
        who TEXT NOT NULL,
        action TEXT NOT NULL,
        status TEXT NOT NULL,
        text TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX ticket_history_by_ticket ON ticket_history (ticket_id, at)
"""

_FIELDS = [f.name for f in fields(Ticket)]
_TIMES = {"occurred_at", "opened_at", "respond_by", "resolve_by", "last_seen"} | {
    "acknowledged_at",
    "escalated_at",
    "resolved_at",
    "closed_at",
}
Decide = Callable[[Ticket], tuple[Ticket, Change]]


def _row(t: Ticket) -> dict[str, Any]:
    row = {name: getattr(t, name) for name in _FIELDS}
    for name in _TIMES:
        if row[name] is not None:
            row[name] = row[name].isoformat()
    row["details"] = json.dumps(t.details, sort_keys=True)
    return row


def _ticket(row: sqlite3.Row) -> Ticket:
    values = {name: row[name] for name in _FIELDS}
    for name in _TIMES:
        if values[name] is not None:
            values[name] = datetime.fromisoformat(values[name])
    values["details"] = json.loads(values["details"] or "{}")
    return Ticket(**values)


class TicketTables:
    """The ticket half of SqliteCatalog (which provides `self.db`)."""

    db: Any

    def file_ticket(
        self, fingerprint: str, decide: Callable[[Ticket | None], tuple[Ticket, Change]]
    ) -> Ticket:
        """Open a ticket for a failure, or add to the one open for its fingerprint:
        `decide` gets the open (new or acknowledged) ticket or None. A failure after its
        ticket was resolved is a new occurrence: a new ticket, with deadlines of its own."""
        return self._in_transaction(lambda: self._save(*decide(self.open_ticket_for(fingerprint))))

    def add_ticket(self, ticket: Ticket, change: Change) -> Ticket:
        """A ticket that is no failure's (a restore request): stored as it is, numbered."""
        return self._in_transaction(lambda: self._save(ticket, change))

    def change_ticket(self, ticket_id: int, decide: Decide) -> Ticket | None:
        """Apply one decision to ticket `ticket_id`; None when there is no such ticket."""

        def body() -> Ticket | None:
            current = self._one("SELECT * FROM tickets WHERE id = ?", (ticket_id,))
            return None if current is None else self._save(*decide(current))

        return self._in_transaction(body)

    def get_ticket(self, ticket_id: int) -> Ticket | None:
        return self._one("SELECT * FROM tickets WHERE id = ?", (ticket_id,))

    def open_ticket_for(self, fingerprint: str) -> Ticket | None:
        return self._one(
            "SELECT * FROM tickets WHERE fingerprint = ? AND status IN ('new', 'acknowledged')",
            (fingerprint,),
        )

    def tickets(
        self,
        statuses: Iterable[str] | None = None,
        policy: str | None = None,
        limit: int | None = None,
    ) -> list[Ticket]:
        """Newest first."""
        where, params = [], []
        if statuses is not None:
            wanted = list(statuses)
            where.append(f"status IN ({', '.join('?' * len(wanted))})")
            params += wanted
        if policy is not None:
            where.append("policy = ?")
            params.append(policy)
        sql = "SELECT * FROM tickets"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_ticket(r) for r in self.db.execute(sql, params).fetchall()]

    def ticket_history(self, ticket_id: int) -> list[Change]:
        rows = self.db.execute(
            "SELECT * FROM ticket_history WHERE ticket_id = ? ORDER BY rowid", (ticket_id,)
        ).fetchall()
        return [
            Change(datetime.fromisoformat(r["at"]), r["who"], r["action"], r["status"], r["text"])
            for r in rows
        ]

    # ------------------------------------------------------------------ internals

    def _one(self, sql: str, params: tuple[object, ...]) -> Ticket | None:
        row = self.db.execute(sql, params).fetchone()
        return _ticket(row) if row else None

    def _save(self, ticket: Ticket, change: Change) -> Ticket:
        row = _row(ticket)
        if ticket.id == 0:  # a new ticket: its number is the store's
            del row["id"]
            cols = ", ".join(row)
            cur = self.db.execute(
                f"INSERT INTO tickets ({cols}) VALUES ({', '.join(':' + c for c in row)})", row
            )
            ticket = replace(ticket, id=int(cur.lastrowid))
        else:
            sets = ", ".join(f"{c} = :{c}" for c in row if c != "id")
            self.db.execute(f"UPDATE tickets SET {sets} WHERE id = :id", row)
        self.db.execute(
            "INSERT INTO ticket_history (ticket_id, at, who, action, status, text) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                ticket.id,
                change.at.isoformat(),
                change.who,
                change.action,
                change.status,
                change.text,
            ),
        )
        return ticket

    def _in_transaction(self, body: Callable[[], Any]) -> Any:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            result = body()
            self.db.execute("COMMIT")
        except BaseException:
            self.db.rollback()
            raise
        return result
