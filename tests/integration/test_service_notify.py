"""Ticket changes reach people: a real backup failure opens a ticket, the outbox sends
it to a real SMTP server, a webhook receiver that checks the signature, and a real
Request Tracker; a channel that is down never fails a backup and shows in `status`; the
next good backup resolves the ticket there too."""

from __future__ import annotations

import json

import pytest
from conftest import Workspace
from rt_server import RTServer, rt_fixture  # noqa: F401  (a fixture)
from test_notify_email import smtp_server
from test_notify_webhook import SECRET, receiver

from orchestrator.notify.rt import RTClient

pytestmark = pytest.mark.integration


def channels(smtp_port: int, hook_port: int, rt: RTServer) -> str:
    return f"""
[notify.mail]
kind = "email"
to = ["ops@example.net"]
from = "backup@example.net"
server = "127.0.0.1:{smtp_port}"
starttls = false

[notify.chat]
kind = "webhook"
url = "http://127.0.0.1:{hook_port}/hooks/backup"
secret = "secret:hook"
timeout = "5s"

[notify.tracker]
kind = "rt"
url = "{rt.url}"
queue = "{rt.queue}"
token = "secret:rt-token"
requestor = "root"
"""


def test_a_failure_is_told_by_mail_webhook_and_request_tracker(
    workspace: Workspace, rt: RTServer
) -> None:
    ws = workspace
    ws.env["ORCHESTRATOR_SECRET_HOOK"] = SECRET
    ws.env["ORCHESTRATOR_SECRET_RT_TOKEN"] = rt.token
    with smtp_server() as (smtp_port, inbox), receiver() as hook:
        ws.config.write_text(ws.config.read_text() + channels(smtp_port, hook.port, rt))
        ws.orc("validate")
        ws.data.rename(ws.root / "moved")
        ws.orc("backup", "files", check=1)  # its own failure: the notices only wait
        assert inbox.received == [] and hook.received == []

        sent = ws.orc_json("notify", "send")
        assert len(sent["sent"]) == 3 and sent["retry"] == []
        [(_, rcpt, content, _)] = inbox.received
        assert rcpt == ["ops@example.net"]
        assert b"ticket 1 opened: backup-failed of files@local" in content
        [post] = hook.received
        assert post["valid"]  # the receiver checked the HMAC signature
        body = json.loads(post["body"])
        assert (body["ticket_id"], body["event"], body["priority"]) == (1, "opened", "urgent")
        fingerprint = body["fields"]["fingerprint"]

    client = RTClient(rt.url, rt.token, rt.queue)
    number = client.find_open(fingerprint)
    assert number is not None
    shown = ws.orc_json("tickets", "show", "1")
    assert shown["ticket"]["details"]["rt_ticket"] == number
    assert "mirrored" in [c["action"] for c in shown["history"]]
    assert ws.orc_json("notify", "send")["sent"] == []  # nothing is sent twice

    # The SMTP server and the webhook are gone: the backup is unaffected, the
    # notices wait, and `status` says which channels fail.
    ws.orc("backup", "files", check=1)
    sent = ws.orc_json("notify", "send")
    assert sorted(ch for ch, _ in sent["retry"]) == ["chat", "mail"]
    assert [ch for ch, _ in sent["sent"]] == ["tracker"]
    status = ws.orc("status").stdout
    assert "notification channel 'mail' is failing: 1 notice(s) not delivered" in status
    assert "notification channel 'chat' is failing" in status
    assert "open tickets: 1 (files 1)" in status

    (ws.root / "moved").rename(ws.data)
    ws.orc("backup", "files")
    ws.orc("notify", "send")
    assert client.get(number)["Status"] == "resolved"
    assert client.find_open(fingerprint) is None
