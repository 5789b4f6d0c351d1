"""Issue 17, Request Tracker: the REST 2 client against a real RT 5 (tests/rt_server.py).

The RT is shared by the session; each test uses fingerprints of its own. What RT recorded
is read back with plain HTTP requests, not with the client under test.
"""

from __future__ import annotations

import json
import socket
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.request import Request, urlopen

import pytest
from rt_server import SLA_MINUTES, RTServer, rt_fixture  # noqa: F401
from servers import free_port

from orchestrator.notify.rt import RTClient, RTError

pytestmark = pytest.mark.slow

WRONG_TOKEN = "1-14-0123456789abcdef0123456789abcdef"


def client(rt: RTServer, **kw: object) -> RTClient:
    return RTClient(rt.url, rt.token, rt.queue, **kw)  # type: ignore[arg-type]


def fingerprint() -> str:
    return f"files|local|backup-failed|{uuid.uuid4().hex}"


def rest(rt: RTServer, path: str) -> dict:
    """RT's own answer to a GET, as any HTTP client sees it (the witness)."""
    request = Request(f"{rt.url}/REST/2.0{path}", headers={"Authorization": f"token {rt.token}"})
    with urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def history(rt: RTServer, ticket: int) -> list[tuple[str, str]]:
    """(type, text) of each transaction of the ticket, text from its attachments."""
    found = []
    items = rest(rt, f"/ticket/{ticket}/history?fields=Type&per_page=100")["items"]
    for txn in items:
        parts = rest(rt, f"/transaction/{txn['id']}/attachments?fields=Content")["items"]
        found.append((txn["Type"], "".join(p.get("Content") or "" for p in parts)))
    return found


def test_create_then_find_open_returns_that_ticket(rt: RTServer) -> None:
    """One ticket per problem: the repeat finds the open ticket instead of creating one."""
    rt_client = client(rt)
    fp = fingerprint()
    assert rt_client.find_open(fp) is None
    ticket = rt_client.create("backup of files failed", "restic exited 1", fp, "important")
    assert rt_client.find_open(fp) == ticket
    assert rt_client.find_open(fp) == ticket  # asked again: still that one
    got = rt_client.get(ticket)
    assert got["Status"] == "new"
    assert got["Subject"] == "backup of files failed"
    assert got["CustomFields"]["Fingerprint"] == fp
    assert got["SLA"] == "important"
    assert rest(rt, f"/ticket/{ticket}")["Queue"]["id"] == "1"  # General


def test_comment_is_in_the_ticket_history(rt: RTServer) -> None:
    rt_client = client(rt)
    ticket = rt_client.create("copy failed", "first failure", fingerprint(), "general")
    rt_client.comment(ticket, "failed again at 03:00 (2 times)")
    assert ("Comment", "failed again at 03:00 (2 times)") in history(rt, ticket)
    assert ("Create", "first failure") in history(rt, ticket)


def test_resolve_sets_resolved_and_find_open_forgets_it(rt: RTServer) -> None:
    rt_client = client(rt)
    fp = fingerprint()
    ticket = rt_client.create("check found damage", "pack abc damaged", fp, "urgent")
    rt_client.resolve(ticket, "next run succeeded: snapshot 1a2b3c4d")
    assert rest(rt, f"/ticket/{ticket}")["Status"] == "resolved"
    assert rt_client.get(ticket)["Status"] == "resolved"
    assert rt_client.find_open(fp) is None
    assert ("Comment", "next run succeeded: snapshot 1a2b3c4d") in history(rt, ticket)
    # A new occurrence after the resolution opens a new ticket, which find_open then finds.
    again = rt_client.create("check found damage", "again", fp, "urgent")
    assert again != ticket and rt_client.find_open(fp) == again
    rt_client.resolve(again)  # without a text: no comment, still resolved
    assert rt_client.find_open(fp) is None


def test_a_fingerprint_with_quotes_and_backslashes_is_searched_as_text(rt: RTServer) -> None:
    """TicketSQL is built from the fingerprint: quotes and backslashes must not end the
    string or change the query (no match for another ticket, no TicketSQL error)."""
    rt_client = client(rt)
    tag = uuid.uuid4().hex
    odd = f"pol'icy\\{tag}\\' OR Status = 'resolved\" \\\\ end"
    ticket = rt_client.create("odd fingerprint", "text", odd, "general")
    assert rt_client.get(ticket)["CustomFields"]["Fingerprint"] == odd
    assert rt_client.find_open(odd) == ticket
    assert rt_client.find_open(f"pol'icy\\{tag}") is None  # a prefix is another fingerprint
    assert rt_client.find_open(f"x' OR 'CF.{{Fingerprint}}' = '{odd}") is None
    assert rt_client.find_open("\\") is None and rt_client.find_open("'") is None


def test_sla_sets_a_due_date_when_the_ticket_has_a_requestor(rt: RTServer) -> None:
    """RT's Response clock runs from a Requestor's message: a ticket whose requestor is the
    token's own user (who writes the ticket) gets Due = created + the level's minutes;
    without a requestor RT sets no Due (the documented RT behaviour, docs/request-tracker.md)."""
    rt_client = client(rt)
    before = datetime.now(UTC).replace(microsecond=0)
    ticket = rt_client.create("drill over RTO", "text", fingerprint(), "urgent", requestor="root")
    after = datetime.now(UTC)
    got = rt_client.get(ticket)
    assert got["SLA"] == "urgent"
    assert got["Due"] is not None
    due = datetime.fromisoformat(got["Due"].replace("Z", "+00:00"))
    minutes = timedelta(minutes=SLA_MINUTES["urgent"])
    assert before + minutes <= due <= after + minutes + timedelta(seconds=1)

    plain = rt_client.create("drill over RTO", "text", fingerprint(), "general")
    assert rt_client.get(plain)["SLA"] == "general" and rt_client.get(plain)["Due"] is None


def test_priorities_map_to_the_configured_sla_levels(rt: RTServer) -> None:
    rt_client = client(rt, sla_levels={"urgent": "important", "general": "general"})
    ticket = rt_client.create("s", "t", fingerprint(), "urgent")
    assert rt_client.get(ticket)["SLA"] == "important"
    with pytest.raises(ValueError, match="'important' has no RT SLA level"):
        rt_client.create("s", "t", fingerprint(), "important")


def test_a_wrong_token_is_a_permanent_error_that_does_not_show_the_token(rt: RTServer) -> None:
    rt_client = RTClient(rt.url, WRONG_TOKEN, rt.queue)
    with pytest.raises(RTError) as caught:
        rt_client.find_open(fingerprint())
    error = caught.value
    assert error.transient is False
    assert "refused the token" in str(error)
    assert rt.url in str(error) and "queue General" in str(error)
    for shown in (str(error), repr(error), repr(rt_client), str(error.args)):
        assert WRONG_TOKEN not in shown and "0123456789abcdef" not in shown
    with pytest.raises(RTError, match="refused the token") as caught:
        rt_client.create("s", "t", fingerprint(), "general")
    assert caught.value.transient is False


def test_a_queue_that_does_not_exist_is_a_permanent_error(rt: RTServer) -> None:
    rt_client = RTClient(rt.url, rt.token, "No Such Queue")
    with pytest.raises(RTError) as caught:
        rt_client.create("s", "t", fingerprint(), "general")
    assert caught.value.transient is False
    assert "queue No Such Queue" in str(caught.value) and "HTTP 404" in str(caught.value)
    assert rt.token not in str(caught.value)


def test_a_queue_without_the_fingerprint_field_is_refused(rt: RTServer) -> None:
    """RT drops an unknown custom field silently; every repeat would then open a new
    ticket. The client checks the queue first and says what is missing."""
    name = f"nofp-{uuid.uuid4().hex[:8]}"
    body = json.dumps({"Name": name}).encode()
    request = Request(
        f"{rt.url}/REST/2.0/queue",
        data=body,
        method="POST",
        headers={"Authorization": f"token {rt.token}", "Content-Type": "application/json"},
    )
    with urlopen(request, timeout=10):
        pass
    with pytest.raises(RTError, match="no ticket custom field 'Fingerprint'") as caught:
        RTClient(rt.url, rt.token, name).create("s", "t", fingerprint(), "general")
    assert caught.value.transient is False


def test_rt_unreachable_is_a_transient_error(rt: RTServer) -> None:
    """Nothing listens on the port (an RT that is stopped): retry later."""
    port = free_port()
    rt_client = RTClient(f"http://127.0.0.1:{port}", rt.token, "General", timeout=2)
    for call in (
        lambda: rt_client.create("s", "t", fingerprint(), "general"),
        lambda: rt_client.find_open("fp"),
        lambda: rt_client.comment(1, "x"),
        lambda: rt_client.resolve(1, None),
        lambda: rt_client.get(1),
    ):
        with pytest.raises(RTError) as caught:
            call()
        assert caught.value.transient is True
        assert f"http://127.0.0.1:{port}" in str(caught.value)
        assert "connection refused" in str(caught.value)
        assert rt.token not in str(caught.value)


def test_rt_that_does_not_answer_is_a_transient_timeout() -> None:
    """A server that accepts the connection and never answers: the timeout, then retry."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        rt_client = RTClient(f"http://127.0.0.1:{port}", WRONG_TOKEN, "General", timeout=0.5)
        with pytest.raises(RTError) as caught:
            rt_client.find_open("fp")
    assert caught.value.transient is True
    assert "timed out" in str(caught.value)
    assert WRONG_TOKEN not in str(caught.value)


def test_a_server_error_is_transient_and_a_redirect_is_not_followed() -> None:
    """5xx: retry later. A redirect is refused: urllib would carry the token along."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            if self.path.startswith("/REST/2.0/ticket/1"):
                self.send_response(503)
                self.end_headers()
                self.wfile.write(b"busy")
            else:
                self.send_response(302)
                self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        rt_client = RTClient(url, WRONG_TOKEN, "General", timeout=5)
        with pytest.raises(RTError, match="HTTP 503") as caught:
            rt_client.get(1)
        assert caught.value.transient is True
        with pytest.raises(RTError, match="redirected") as caught:
            rt_client.find_open("fp")
        assert caught.value.transient is False
        assert len(seen) == 2  # the redirect's target was never asked
    finally:
        server.shutdown()
        server.server_close()


def test_fingerprints_differing_in_case_are_different_problems(rt: RTServer) -> None:
    """RT's TicketSQL compares custom field values without regard to case."""
    rt_client = client(rt)
    fp = f"Files|Local|{uuid.uuid4().hex}"
    ticket = rt_client.create("s", "t", fp, "general")
    assert rt_client.find_open(fp.lower()) is None
    other = rt_client.create("s", "t", fp.lower(), "general")
    assert rt_client.find_open(fp) == ticket
    assert rt_client.find_open(fp.lower()) == other


DOCS = Path(__file__).resolve().parents[2] / "docs" / "request-tracker.md"


def admin_script() -> str:
    """The Perl block of docs/request-tracker.md that an RT administrator runs."""
    text = DOCS.read_text()
    start = text.index("```perl\n", text.index("<!-- rt-admin-script")) + len("```perl\n")
    return text[start : text.index("```", start)]


def test_the_documented_admin_script_prepares_a_queue_the_client_works_with(
    rt: RTServer,
) -> None:
    """docs/request-tracker.md's Perl, run verbatim on a new queue for a new user with
    only the rights it grants: the client's whole cycle works with the printed token, and
    the SLA gives a Due date when that user is the requestor. Run twice: it is idempotent."""
    queue = f"Backups-{uuid.uuid4().hex[:8]}"
    user = f"orchestrator-{uuid.uuid4().hex[:8]}"
    body = json.dumps({"Name": queue}).encode()
    request = Request(
        f"{rt.url}/REST/2.0/queue",
        data=body,
        method="POST",
        headers={"Authorization": f"token {rt.token}", "Content-Type": "application/json"},
    )
    with urlopen(request, timeout=10):
        pass
    tokens = []
    for _ in range(2):
        out = subprocess.run(
            ["perl", "-"],
            input=admin_script(),
            env={**rt.env, "RT_QUEUE": queue, "RT_USER": user},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        tokens.append(out.stdout.strip().splitlines()[-1])
    assert tokens[0] != tokens[1]
    rt_client = RTClient(rt.url, tokens[1], queue)
    fp = fingerprint()
    ticket = rt_client.create("backup failed", "text", fp, "important", requestor=user)
    got = rt_client.get(ticket)
    assert got["SLA"] == "important" and got["Due"] is not None
    assert got["CustomFields"]["Fingerprint"] == fp
    assert rt_client.find_open(fp) == ticket
    rt_client.comment(ticket, "again")
    rt_client.resolve(ticket, "fixed")
    assert rt_client.find_open(fp) is None
    assert RTClient(rt.url, tokens[0], queue).get(ticket)["Status"] == "resolved"

    revoke = (
        'use lib "/usr/share/request-tracker5/lib"; use RT; RT::LoadConfig(); RT::Init();'
        f"my $u = RT::User->new(RT->SystemUser); $u->Load('{user}');"
        f"my $q = RT::Queue->new(RT->SystemUser); $q->Load('{queue}');"
        "my ($ok, $m) = $u->PrincipalObj->RevokeRight(Right => 'ModifyCustomField', Object => $q);"
        "die $m unless $ok;"
    )
    # Without the right to set custom fields RT creates the ticket but drops the value.
    out = subprocess.run(
        ["perl", "-"],
        input=revoke,
        env=rt.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    with pytest.raises(RTError, match="without its Fingerprint value") as caught:
        rt_client.create("backup failed", "text", fingerprint(), "important")
    assert caught.value.transient is False
