"""The service report as text and as a JSON payload."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from orchestrator.render import table


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.0f}%"


def hours(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f} h"


def priority_rows(r: Any) -> list[list[object]]:
    """The figures by priority, as both the text and the HTML report show them."""
    return [
        [
            p.priority,
            p.opened,
            hours(p.response_median_h),
            hours(p.response_p90_h),
            pct(p.response_within_target),
            p.resolved,
            pct(p.resolution_rate),
            hours(p.resolution_median_h),
            pct(p.resolution_within_target),
        ]
        for p in r.priorities
    ]


def report_payload(r: Any) -> dict[str, Any]:
    return {
        "start": r.start,
        "end": r.end,
        "tickets": r.tickets,
        "priorities": [asdict(p) for p in r.priorities],
        "satisfaction": r.satisfaction,
        "ratings": r.ratings,
        "handling_median_hours": r.handling_median_h,
        "success": {
            k: {"ok": v.ok, "total": v.total, "rate": v.rate} for k, v in r.success.items()
        },
        "rpo": [asdict(x) for x in r.rpo],
        "breaches": r.breaches,
    }


def report_text(r: Any) -> str:
    lines = [
        f"service report {r.start.isoformat(timespec='minutes')} .. "
        f"{r.end.isoformat(timespec='minutes')}: {r.tickets} tickets",
        "",
        table(
            [
                "priority",
                "opened",
                "response median",
                "p90",
                "in time",
                "resolved",
                "rate",
                "resolution median",
                "in time",
            ],
            priority_rows(r),
        ),
        "",
        f"satisfaction: {r.satisfaction if r.satisfaction is not None else '-'} / 5 "
        f"({r.ratings} ratings); handling time median {hours(r.handling_median_h)}",
        "",
        table(
            ["success", "ok", "of", "rate"],
            [(k, v.ok, v.total, pct(v.rate)) for k, v in r.success.items()],
        ),
    ]
    if r.rpo:
        lines += [
            "",
            table(
                ["policy", "target", "rpo", "compliance"],
                [(x.policy, x.target, f"{x.rpo_hours:g} h", pct(x.compliance)) for x in r.rpo],
            ),
        ]
    lines += ["", f"breaches: {len(r.breaches)}"]
    lines += [
        f"  ticket {b['ticket']} ({b['priority']}, {b['kind']}, {b['policy'] or '-'}): "
        f"response {b['response']}, resolution {b['resolution']}"
        for b in r.breaches
    ]
    return "\n".join(lines)
