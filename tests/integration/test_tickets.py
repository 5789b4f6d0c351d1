"""Tickets for failures, proved through the command line against real restic: what the
ticket store holds after a failure, a repeat and a success, the escalation of an
unacknowledged ticket, and what the audit log says of each change."""

from __future__ import annotations

import json

import pytest
from conftest import Workspace

pytestmark = pytest.mark.integration

SERVICE = """
[service]
assign = { backup = "ops-storage", "policy:files" = "files-team" }
escalate = ["duty"]

[notify.duty]
kind = "webhook"
url = "http://127.0.0.1:9/duty-manager"
secret = "secret:duty-hook"
"""


def tickets(ws: Workspace, *args: str) -> list[dict]:
    return json.loads(ws.orc("--json", "tickets", "list", *args).stdout)["tickets"]


def audit(ws: Workspace) -> list[dict]:
    records = json.loads(ws.orc("--json", "audit", "show").stdout)["records"]
    return [r for r in records if r["what"].startswith("ticket.")]


def test_a_failure_opens_one_ticket_a_repeat_counts_and_a_success_resolves_it(
    workspace: Workspace,
) -> None:
    ws = workspace
    ws.config.write_text(ws.config.read_text() + SERVICE)
    hidden = ws.root / "data-moved"
    ws.data.rename(hidden)  # the source is gone: the backup fails

    ws.orc("backup", "files", "--now", "2026-11-02T01:30", check=1)
    [t] = tickets(ws)
    assert (t["kind"], t["status"], t["priority"], t["classification"]) == (
        "backup-failed",
        "new",
        "urgent",  # critical data, nothing protected: urgent
        "urgent",
    )
    assert (t["policy"], t["target"], t["assignee"], t["requester"]) == (
        "files",
        "local",
        "files-team",
        "system",
    )
    assert t["repository"] == f"local:{ws.repo}"
    assert t["respond_by"].startswith("2026-11-02T03:30")  # 2 hours, urgent
    assert "2026-11-02T01:30" in t["description"] and t["count"] == 1

    ws.orc("backup", "files", "--now", "2026-11-02T02:00", check=1)
    [again] = tickets(ws)
    assert (again["id"], again["count"]) == (t["id"], 2)

    hidden.rename(ws.data)
    good = ws.orc_json("backup", "files", "--now", "2026-11-02T02:30")
    snapshot = good["runs"][0]["snapshot_id"]
    assert tickets(ws) == []  # no open ticket left
    [done] = tickets(ws, "--status", "resolved")
    assert done["id"] == t["id"] and done["resolved_by"] == "system"
    assert snapshot[:8] in done["solution"]  # the evidence: the good run's snapshot
    assert done["response"] == "met"  # mended before anyone had to answer

    shown = ws.orc_json("tickets", "show", str(t["id"]))
    assert [c["action"] for c in shown["history"]] == ["opened", "repeated", "resolve"]

    ws.orc("tickets", "close", str(t["id"]), "--solution", "the NAS mount came back")
    [closed] = tickets(ws, "--status", "closed")
    assert closed["solution"] == "the NAS mount came back"
    kinds = [r["what"] for r in audit(ws)]
    assert kinds == ["ticket.opened", "ticket.repeated", "ticket.resolved", "ticket.changed"]
    ws.orc("audit", "verify")


def test_an_unacknowledged_ticket_is_escalated_once_by_the_daemon(workspace: Workspace) -> None:
    ws = workspace
    ws.config.write_text(ws.config.read_text() + SERVICE)
    ws.data.rename(ws.root / "gone")
    ws.orc("backup", "files", "--now", "2026-11-02T01:30", check=1)
    [t] = tickets(ws)

    # a pass before the deadline: nothing; after it: breached and escalated, once
    ws.orc("run", "--due", "--now", "2026-11-02T03:00", check=None)
    assert tickets(ws)[0]["escalated_at"] is None
    ws.orc("run", "--due", "--now", "2026-11-02T04:00", check=None)
    ws.orc("run", "--due", "--now", "2026-11-02T05:00", check=None)
    [late] = tickets(ws)
    assert late["escalated_at"].startswith("2026-11-02T04:00")
    assert late["response"] == "breached"
    escalations = [r for r in audit(ws) if r["what"] == "ticket.escalated"]
    assert len(escalations) == 1
    assert "told duty" in escalations[0]["summary"]

    ws.orc("tickets", "ack", str(t["id"]), "--now", "2026-11-02T05:10")
    [acked] = tickets(ws)
    assert (acked["status"], acked["response"]) == ("acknowledged", "late")
    # the audit record keeps the real time beside the one the operator claimed
    [ack] = [r for r in audit(ws) if r["details"] and r["details"].get("action") == "ack"]
    assert ack["event_time"].startswith("2026-11-02T05:10")
    assert not ack["time"].startswith("2026-11-02")


def test_refused_ticket_actions_are_one_line_exit_2_and_audited(workspace: Workspace) -> None:
    ws = workspace
    ws.data.rename(ws.root / "gone")
    ws.orc("backup", "files", check=1)
    [t] = tickets(ws)
    for args, words in [
        (("rate", str(t["id"]), "5"), "only a person's request is rated"),
        (("resolve", str(t["id"]), "--solution", " "), "say how it was solved"),
        (("ack", "999"), "no ticket 999"),
    ]:
        result = ws.orc("tickets", *args, check=2)
        assert words in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    refusals = [r for r in audit(ws) if r["what"] == "ticket.refused"]
    assert len(refusals) == 2 and refusals[0]["outcome"] == "refused"
    assert [r["details"]["action"] for r in refusals] == ["rate", "resolve"]
