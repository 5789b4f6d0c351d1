"""`plan` and `snapshots` as text."""

from __future__ import annotations

from typing import Any

from orchestrator.render import table


def render_plan(rows: list[dict[str, Any]]) -> str:
    return (
        table(
            ["due", "policy", "target", "level", "why"],
            [[r["due"], r["policy"], r["target"], r["level"], r["why"]] for r in rows],
        )
        if rows
        else "nothing scheduled in this window"
    )


def render_snapshots(listings: list[Any]) -> str:
    out = []
    for lst in listings:
        out.append(f"target {lst.target}:" + (f" {lst.error}" if lst.error else ""))
        if lst.snapshots:
            out.append(
                table(
                    ["id", "time", "policy", "level", "parent", "paths"],
                    [
                        [
                            s.short_id,
                            s.time,
                            s.tag("policy"),
                            s.tag("level"),
                            s.parent[:8] if s.parent else None,
                            ", ".join(s.paths),
                        ]
                        for s in lst.snapshots
                    ],
                )
            )
        elif not lst.error:
            out.append("  no snapshots")
    return "\n".join(out)
