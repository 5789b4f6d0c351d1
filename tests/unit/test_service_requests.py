"""The restore request's state machine as a table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.service import requests as rq
from orchestrator.service import ticket as tk

T = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def filed(importance: str = "high") -> tk.Ticket:
    t, change = rq.file_request(
        "alice", "web", importance, ("/srv/web/a",), "/restores/x", None, "lost it", T
    )
    assert change.who == "alice" and change.action == "requested"
    return tk.Ticket(**{**t.__dict__, "id": 3})


@pytest.mark.parametrize(
    ("importance", "priority", "respond_hours"),
    [("critical", "urgent", 2), ("high", "important", 4), ("normal", "general", 8)],
)
def test_priority_and_deadline_follow_importance(
    importance: str, priority: str, respond_hours: int
) -> None:
    t = filed(importance)
    assert (t.priority, t.respond_by - T) == (priority, timedelta(hours=respond_hours))
    assert rq.state(t) == rq.AWAITING and t.requester == "alice"


def test_approve_run_finish() -> None:
    t, _ = rq.approve(filed(), "bob", T + timedelta(minutes=5))
    assert (rq.state(t), t.status, t.acknowledged_by) == (rq.APPROVED, "acknowledged", "bob")
    t, _ = rq.started(t, "system", T + timedelta(minutes=6))
    assert rq.state(t) == rq.RUNNING
    ev = {"files": 2, "bytes": 10, "snapshot": "abc", "target": "nas", "to": "/r", "seconds": 1}
    t, c = rq.finished(t, T + timedelta(minutes=7), ev)
    assert (rq.state(t), t.status, t.snapshot) == (rq.DONE, "resolved", "abc")
    assert "restored 2 files" in t.solution and c.action == "done"


def test_a_failed_run_stays_open_for_an_operator() -> None:
    t, _ = rq.approve(filed(), "bob", T)
    t, _ = rq.started(t, "system", T)
    t, c = rq.finished(t, T, None, "disk full")
    assert (rq.state(t), t.status, c.text) == (rq.FAILED, "acknowledged", "disk full")


@pytest.mark.parametrize(
    ("steps", "words"),
    [
        ([lambda t: rq.approve(t, "alice", T)], "may not approve their own request"),
        ([lambda t: rq.approve(t, "bob", T)] * 2, "only a request awaiting approval"),
        ([lambda t: rq.reject(t, "bob", " ", T)], "say why"),
        ([lambda t: rq.started(t, "system", T)], "only an approved request is run"),
        (
            [lambda t: rq.reject(t, "bob", "no", T), lambda t: rq.approve(t, "carol", T)],
            "only a request awaiting approval",
        ),
    ],
)
def test_refusals(steps: list, words: str) -> None:
    t = filed()
    with pytest.raises(tk.TicketError, match=words):
        for step in steps:
            t, _ = step(t)


def test_a_request_needs_a_reason_and_a_failure_ticket_is_no_request() -> None:
    with pytest.raises(tk.TicketError, match="needs a reason"):
        rq.file_request("a", "web", "low", (), "/r", None, " ", T)
    failure = tk.Ticket(**{**filed().__dict__, "kind": "backup-failed"})
    with pytest.raises(tk.TicketError, match="not a restore request"):
        rq.approve(failure, "bob", T)


def test_rejected_is_resolved_with_the_reason() -> None:
    t, _ = rq.reject(filed(), "bob", "the file is in last night's copy", T)
    assert t.status == "resolved" and t.solution.startswith("rejected by bob: the file")


def test_a_run_whose_process_died_fails_and_may_be_approved_again() -> None:
    t, _ = rq.approve(filed(), "bob", T)
    t, _ = rq.started(t, "system", T, "host1", 4242)
    assert t.details["request"]["runner"] == {"host": "host1", "pid": 4242}
    t, c = rq.died(t, T + timedelta(minutes=1))
    assert rq.state(t) == rq.FAILED and "pid 4242" in c.text
    t, _ = rq.approve(t, "carol", T + timedelta(minutes=2))  # a failed run: approved again
    assert rq.state(t) == rq.APPROVED and t.details["request"]["approved_by"] == "carol"
    with pytest.raises(tk.TicketError, match="it is not running"):
        rq.died(t, T)
