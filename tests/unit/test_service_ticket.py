"""A ticket's life as a table of transitions, and the store that keeps it: one ticket per
fingerprint even when two processes file the same failure at once."""

from __future__ import annotations

import dataclasses
import multiprocessing
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.catalog.sqlite import SqliteCatalog
from orchestrator.service import ticket as tk

T = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


def new_ticket(**kw: object) -> tk.Ticket:
    base = tk.Ticket(
        id=7,
        kind="backup-failed",
        status="new",
        priority="important",
        classification="technical",
        requester=tk.SYSTEM,
        description="it failed",
        occurred_at=T,
        opened_at=T,
        respond_by=T + 4 * H,
        resolve_by=T + 72 * H,
        fingerprint="f00",
        policy="web",
        target="nas",
    )
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def test_the_whole_life_of_a_failure_ticket() -> None:
    t = new_ticket()
    t, c = tk.acknowledge(t, "alice", T + H)
    assert (t.status, t.acknowledged_by, c.action) == ("acknowledged", "alice", "ack")
    t, c = tk.assign(t, "alice", "storage-team", T + H)
    assert t.assignee == "storage-team" and c.text == "storage-team"
    t, c = tk.comment(t, "bob", "disk replaced", T + 2 * H)
    assert t.status == "acknowledged" and c.text == "disk replaced"
    t, c = tk.resolve(t, "bob", "replaced the failed disk", T + 3 * H)
    assert (t.status, t.resolved_by, t.solution) == ("resolved", "bob", "replaced the failed disk")
    t, c = tk.close(t, "alice", "", T + 4 * H)
    assert (t.status, t.closed_by, t.solution) == ("closed", "alice", "replaced the failed disk")


def test_a_repeat_counts_on_an_open_ticket_only() -> None:
    t, c = tk.repeated(new_ticket(), T + H, "again")
    assert (t.count, t.status, c.action, t.last_seen) == (2, "new", "repeated", T + H)
    assert t.respond_by == new_ticket().respond_by  # the clock is not restarted by a repeat
    done, _ = tk.resolve(t, tk.SYSTEM, "mended: snapshot abc", T + 2 * H)
    with pytest.raises(tk.TicketError, match="only an open ticket counts a repeat"):
        tk.repeated(done, T + 3 * H, "failed again")


def refused(fn: Callable[..., object], *args: object) -> str:
    with pytest.raises(tk.TicketError) as info:
        fn(*args)
    return str(info.value)


REQUEST: dict[str, object] = dict(kind="restore-request", requester="carol", status="resolved")


@pytest.mark.parametrize(
    ("ticket", "call", "words"),
    [
        (new_ticket(status="acknowledged"), lambda t: tk.acknowledge(t, "a", T), "only a new"),
        (new_ticket(status="closed"), lambda t: tk.assign(t, "a", "x", T), "closed"),
        (new_ticket(), lambda t: tk.assign(t, "a", " ", T), "assign it to someone"),
        (new_ticket(), lambda t: tk.comment(t, "a", "", T), "needs text"),
        (new_ticket(), lambda t: tk.resolve(t, "a", " ", T), "--solution"),
        (new_ticket(status="resolved"), lambda t: tk.resolve(t, "a", "x", T), "only an open"),
        (new_ticket(status="closed"), lambda t: tk.close(t, "a", "x", T), "closed already"),
        (new_ticket(), lambda t: tk.close(t, "a", "", T), "before closing"),
        (new_ticket(status="resolved"), lambda t: tk.rate(t, "a", 5, "", T), "only a person's"),
        (new_ticket(**REQUEST), lambda t: tk.rate(t, "dave", 5, "", T), "only its requester"),
        (new_ticket(**REQUEST), lambda t: tk.rate(t, "carol", 0, "", T), "1 to 5, not 0"),
        (new_ticket(**REQUEST), lambda t: tk.rate(t, "carol", 6, "", T), "1 to 5, not 6"),
        (
            new_ticket(**{**REQUEST, "status": "new"}),
            lambda t: tk.rate(t, "carol", 4, "", T),
            "once it is resolved",
        ),
    ],
)
def test_refused_actions_say_which_ticket_and_why(
    ticket: tk.Ticket, call: Callable[[tk.Ticket], object], words: str
) -> None:
    text = refused(call, ticket)
    assert text.startswith(f"ticket 7 ({ticket.status}): ") and words in text


def test_the_requester_rates_their_request() -> None:
    t, c = tk.rate(new_ticket(**REQUEST), "carol", 4, "quick", T)
    assert (t.rating, t.feedback, c.text) == (4, "quick", "4/5 quick")


def test_an_open_ticket_closed_as_a_false_alarm_is_resolved_at_once() -> None:
    t, _ = tk.close(new_ticket(), "alice", "false alarm: the NAS was being moved", T + H)
    assert (t.status, t.resolved_at, t.resolved_by) == ("closed", T + H, "alice")


# ---------------------------------------------------------------- the store


def _file(path: Path, fp: str, when: datetime) -> tk.Ticket:
    cat = SqliteCatalog(path)

    def decide(cur: tk.Ticket | None) -> tuple[tk.Ticket, tk.Change]:
        if cur is None:
            t = new_ticket(id=0, fingerprint=fp, opened_at=when)
            return t, tk.Change(when, tk.SYSTEM, "opened", "new", "first")
        return tk.repeated(cur, when, "again")

    try:
        return cat.file_ticket(fp, decide)
    finally:
        cat.close()


def test_the_store_keeps_one_ticket_per_problem_and_its_history(tmp_path: Path) -> None:
    db = tmp_path / "catalog.sqlite"
    first = _file(db, "fp-a", T)
    again = _file(db, "fp-a", T + H)
    other = _file(db, "fp-b", T + H)
    assert first.id == again.id != other.id and again.count == 2
    cat = SqliteCatalog(db)
    assert [c.action for c in cat.ticket_history(first.id)] == ["opened", "repeated"]
    assert [t.id for t in cat.tickets(statuses=("new",))] == [other.id, first.id]
    assert cat.tickets(policy="nope") == []
    closed = cat.change_ticket(first.id, lambda t: tk.close(t, "alice", "fixed", T + 2 * H))
    assert closed is not None and closed.status == "closed"
    cat.close()
    reborn = _file(db, "fp-a", T + 3 * H)  # a closed ticket is history: a new one opens
    assert reborn.id not in (first.id, other.id) and reborn.count == 1
    cat = SqliteCatalog(db)
    mended = cat.change_ticket(reborn.id, lambda t: tk.resolve(t, "bob", "fixed", T + 4 * H))
    assert mended is not None and mended.status == "resolved"
    cat.close()
    again = _file(db, "fp-a", T + 5 * H)  # after a resolution: a new occurrence, a new ticket
    assert again.id != reborn.id and (again.count, again.opened_at) == (1, T + 5 * H)


def test_a_refused_change_writes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "catalog.sqlite"
    t = _file(db, "fp", T)
    cat = SqliteCatalog(db)
    with pytest.raises(tk.TicketError):
        cat.change_ticket(t.id, lambda cur: tk.rate(cur, "x", 9, "", T))
    assert cat.get_ticket(t.id) == t
    assert len(cat.ticket_history(t.id)) == 1
    assert cat.change_ticket(999, lambda cur: tk.comment(cur, "x", "y", T)) is None


def _file_many(args: tuple[str, int]) -> int:
    path, i = args
    return _file(Path(path), "same-problem", T + timedelta(seconds=i)).id


def test_two_processes_filing_one_failure_open_one_ticket(tmp_path: Path) -> None:
    db = tmp_path / "catalog.sqlite"
    SqliteCatalog(db).close()  # migrated once, so the race is on the ticket alone
    with multiprocessing.get_context("fork").Pool(4) as pool:
        ids = pool.map(_file_many, [(str(db), i) for i in range(24)])
    assert len(set(ids)) == 1
    cat = SqliteCatalog(db)
    [t] = cat.tickets()
    assert t.count == 24 and len(cat.ticket_history(t.id)) == 24
