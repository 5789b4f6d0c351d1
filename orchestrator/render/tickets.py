"""`tickets list` and `tickets show` as text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.render import _cell, table


def ticket_table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "no tickets"
    return table(
        ["ID", "PRIORITY", "STATUS", "POLICY", "TARGET", "KIND", "SEEN", "RESPOND BY", "CLOCK"],
        [
            (
                r["id"],
                r["priority"],
                r["status"],
                r["policy"] or "-",
                r["target"] or "-",
                r["kind"],
                f"{r['count']}x",
                r["respond_by"],
                r["response"],
            )
            for r in rows
        ],
    )


_SHOWN = (
    "kind", "status", "priority", "classification", "requester", "assignee", "host",
    "policy", "target", "repository", "snapshot", "occurred_at", "opened_at", "respond_by",
    "response", "resolve_by", "resolution", "count", "last_seen", "acknowledged_at",
    "acknowledged_by", "escalated_at", "resolved_at", "resolved_by", "solution", "closed_at",
    "closed_by", "rating", "feedback", "fingerprint",
)  # fmt: skip


def ticket_text(data: Mapping[str, Any], history: Sequence[Mapping[str, Any]]) -> str:
    lines = [f"ticket {data['id']}: {data['description']}"]
    lines += [f"  {k:<16} {_cell(data[k])}" for k in _SHOWN if data.get(k) not in (None, "")]
    lines.append("history:")
    lines += [
        f"  {_cell(c['at'])}  {c['who']:<10} {c['action']:<10} {c['status']:<12} {c['text']}"
        for c in history
    ]
    return "\n".join(lines)
