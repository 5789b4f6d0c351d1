"""Which channels a ticket change is queued for: filters, and the escalation channels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from orchestrator.events import Event
from orchestrator.notify.outbox import NoticeSink, notice_of
from orchestrator.notify.routing import WebhookChannel
from orchestrator.service import ticket as tk

T = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
TICKET = tk.Ticket(
    id=4, kind="backup-failed", status="new", priority="urgent", classification="urgent",
    requester="system", description="2026-11-02T03:00: it failed", occurred_at=T,
    opened_at=T, respond_by=T + timedelta(hours=2), resolve_by=T + timedelta(hours=24),
    fingerprint="ab12", policy="web", target="nas", assignee="ops",
)  # fmt: skip


class Store:
    """The two catalog calls the sink makes, kept in memory."""

    def __init__(self) -> None:
        self.queued: list[tuple[str, int, str, str]] = []

    def get_ticket(self, ticket_id: int) -> tk.Ticket | None:
        return TICKET if ticket_id == TICKET.id else None

    def enqueue(self, rows: list[tuple[str, int, str, str]], now: datetime) -> None:
        self.queued += rows


def hook(name: str, **filters: tuple[str, ...]) -> WebhookChannel:
    return WebhookChannel(name=name, url="http://127.0.0.1:9/", secret="secret:x", **filters)


def event(kind: str, **details: object) -> Event:
    return Event(kind, T, "warning", "summary", details={"ticket": 4, **details})


def test_filters_and_escalation_channels() -> None:
    store = Store()
    channels = [hook("all"), hook("urgent-only", priorities=("urgent",)),
                hook("general-only", priorities=("general",)), hook("duty")]  # fmt: skip
    sink = NoticeSink(store, channels, escalate=("duty",))  # type: ignore[arg-type]
    sink.publish(event("ticket.opened"))
    assert [r[0] for r in store.queued] == ["all", "urgent-only", "duty"]
    store.queued.clear()
    sink.publish(event("ticket.escalated"))
    assert [(r[0], r[2]) for r in store.queued] == [("duty", "escalated")]
    store.queued.clear()
    sink.publish(event("ticket.refused", action="rate"))  # the audit log's, nobody else's
    sink.publish(event("run.failed"))
    assert store.queued == []


def test_a_person_s_change_is_told_by_its_action() -> None:
    notice = notice_of(event("ticket.changed", action="ack"), TICKET)
    assert notice is not None and notice.event == "acknowledged"
    assert notice.subject == "ticket 4 acknowledged: backup-failed of web@nas"
    assert notice.fields["fingerprint"] == "ab12" and notice.team == "ops"
    assert notice_of(event("ticket.changed", action="nonsense"), TICKET) is None


def test_one_sender_claims_a_notice(tmp_path: Path) -> None:
    """Third break-it: the daemon and `notify send` at once sent every notice twice."""
    from orchestrator.catalog.sqlite import SqliteCatalog
    from orchestrator.notify.outbox import deliver_due

    db = tmp_path / "catalog.sqlite"
    first, second = SqliteCatalog(db), SqliteCatalog(db)
    first.enqueue([("all", 4, "opened", "{}")], T)
    [row] = first.due_notices(T)
    assert first.claim_notice(row.id, T) and not second.claim_notice(row.id, T)
    assert second.due_notices(T + timedelta(minutes=5)) == []  # claimed: not due to others
    later = T + timedelta(minutes=20)  # the claimer died: due again, at least once
    assert [r.id for r in second.due_notices(later)] == [row.id]

    sent: list[str] = []
    first.enqueue(
        [("all", 4, "repeated", notice_of(event("ticket.repeated"), TICKET).to_json())], T
    )  # type: ignore[union-attr]
    for catalog in (first, second):  # the second sender finds nothing left to send
        deliver_due(catalog, [hook("all")], str, T, send=lambda ch, n: sent.append(n.event))
    assert sent == ["repeated"]  # once; the claimed "opened" waits for its claim to age


def test_a_channel_that_fails_waits_for_the_next_pass(tmp_path: Path) -> None:
    """Third break-it: a hanging webhook held a pass for its timeout once per notice."""
    from orchestrator.catalog.sqlite import SqliteCatalog
    from orchestrator.notify.notice import NotifyError
    from orchestrator.notify.outbox import deliver_due

    catalog = SqliteCatalog(tmp_path / "catalog.sqlite")
    notice = notice_of(event("ticket.opened"), TICKET)
    assert notice is not None
    catalog.enqueue([(ch, 4, "opened", notice.to_json()) for ch in ("slow", "slow", "ok")], T)
    tried: list[str] = []

    def send(ch: WebhookChannel, n: object) -> None:
        tried.append(ch.name)
        if ch.name == "slow":
            raise NotifyError("timed out", channel=ch.name, transient=True)

    done = deliver_due(catalog, [hook("slow"), hook("ok")], str, T, send=send)  # type: ignore[arg-type]
    assert tried == ["slow", "ok"] and done.sent == [("ok", 4)]
    assert [r.channel for r in catalog.due_notices(T + timedelta(hours=1))] == ["slow", "slow"]


def test_a_restore_request_is_told_as_one() -> None:
    import dataclasses

    request = dataclasses.replace(TICKET, kind="restore-request", requester="alice")
    asked = notice_of(event("ticket.opened"), request)
    approved = notice_of(event("ticket.changed", action="approve"), request)
    rejected = notice_of(event("ticket.changed", action="reject"), request)
    assert [n.event for n in (asked, approved, rejected) if n] == [
        "request",
        "approved",
        "rejected",
    ]
