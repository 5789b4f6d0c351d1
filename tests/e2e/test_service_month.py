"""A simulated month (`--now`) of the service, through the real command run by real
Unix users: failures open tickets with their priority and deadline, one is answered in
time and one escalated, the next good backups resolve them, a restore request is asked,
refused when self-approved, approved, carried out and rated, and the month's report
(text, JSON, HTML with charts) holds every figure of the standard's chapter 9."""

from __future__ import annotations

import json

import pytest
from conftest import Workspace
from test_roles_cli import ALICE, BOB, POLICIES, as_user, give_to, users, ws  # noqa: F401

pytestmark = pytest.mark.e2e


def test_a_month_of_service(ws: Workspace) -> None:  # noqa: F811
    roots = ws.root / "restores"
    ws.write_policies(
        POLICIES.replace('importance = "normal"\nsources = ["data"]',
                         'importance = "high"\nsources = ["data"]\nrpo_hours = 26', 1)
        + f'\n[access]\nrestore_roots = ["{roots}"]\noperators = ["{BOB}"]\n'
        f'requesters = {{ "{ALICE}" = ["files"] }}\n'
        '[service]\nescalate = ["duty"]\n[notify.duty]\nkind = "webhook"\n'
        'url = "http://127.0.0.1:9/duty"\nsecret = "secret:duty-hook"\n'
    )  # fmt: skip

    def root(*args: str, check: int | None = 0) -> str:
        return as_user(ws, None, *args, check=check).stdout

    root("backup", "files", "--now", "2026-11-02T01:30")
    moved = ws.root / "moved"
    ws.data.rename(moved)
    root("backup", "files", "--now", "2026-11-03T01:30", check=1)  # ticket 1
    root("tickets", "ack", "1", "--now", "2026-11-03T02:00")  # in time (4 h: high data)
    moved.rename(ws.data)
    root("backup", "files", "--now", "2026-11-03T05:00")  # resolves ticket 1
    root("tickets", "close", "1", "--now", "2026-11-03T06:00")  # a person closes it
    ws.data.rename(moved)
    root("backup", "files", "--now", "2026-11-10T01:30", check=1)  # ticket 2, never answered
    root("run", "--due", "--now", "2026-11-10T08:00")  # escalated
    moved.rename(ws.data)
    root("backup", "files", "--now", "2026-11-10T09:00")  # resolves ticket 2

    give_to(ws.root, ALICE)
    backdated = as_user(ws, ALICE, "request", "restore", "files", "--to", str(roots / "x"),
                        "--reason", "r", "--now", "2026-11-01T00:00", check=77)  # fmt: skip
    assert "only an operator may, for simulations" in backdated.stderr
    asked = root("--json", "request", "restore", "files", "--path", str(ws.data / "a.txt"),
                 "--to", str(roots / "r"), "--reason", "lost a.txt",
                 "--now", "2026-11-12T10:00")  # fmt: skip
    n = str(json.loads(asked)["ticket"]["id"])
    give_to(ws.root, BOB)
    as_user(ws, BOB, "request", "approve", n, "--now", "2026-11-12T10:30")
    give_to(ws.root, ALICE)
    as_user(ws, ALICE, "request", "approve", n, check=77)  # a requester never approves
    root("request", "run", n, "--now", "2026-11-12T10:40")
    root("tickets", "rate", n, "4", "--comment", "quick", "--now", "2026-11-12T11:00")

    tickets = json.loads(root("--json", "tickets", "list", "--status", "all"))["tickets"]
    by_id = {t["id"]: t for t in tickets}
    assert by_id[1]["priority"] == "important" and by_id[1]["response"] == "met"
    assert by_id[2]["escalated_at"].startswith("2026-11-10T08:00")
    assert by_id[2]["status"] == "resolved" and by_id[1]["status"] == "closed"
    audit = json.loads(root("--json", "audit", "show"))["records"]
    assert next(r for r in audit if r["what"] == "ticket.escalated")["details"]["ticket"] == 2

    html = ws.root / "november.html"
    month = ("--from", "2026-11-01", "--to", "2026-12-01", "--now", "2026-11-30T23:00")
    report = json.loads(root("--json", "report", *month, "--html", str(html)))
    important = next(p for p in report["priorities"] if p["priority"] == "important")
    assert (important["opened"], important["responded"], important["resolved"]) == (3, 3, 3)
    assert important["response_within_target"] == pytest.approx(2 / 3, abs=1e-3)
    assert report["satisfaction"] == 4.0 and report["ratings"] == 1
    assert report["success"]["backups"] == {"ok": 3, "total": 5, "rate": 0.6}
    assert report["success"]["restores"]["ok"] == 1
    assert [b["ticket"] for b in report["breaches"]] == [2]
    [rpo] = [x for x in report["rpo"] if x["policy"] == "files"]
    # 26 hours after each of the three good backups, in a period of 29 days 23 hours
    assert rpo["compliance"] == pytest.approx(3 * 26 / (29 * 24 + 23), abs=0.005)
    page = html.read_text()
    assert page.count("<img") == 3 and "Backup service report" in page
    text = root("report", *month)
    assert "satisfaction: 4.0 / 5" in text and "breaches: 1" in text
