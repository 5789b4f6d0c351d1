"""`plan` and `snapshots` as text."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from orchestrator.render import _cell, dump_json, table


def render_plan(runs: Sequence[Any]) -> str:
    """The plan's table (due, policy, target, level, why) as `table` would draw it, built
    in one pass for a plan of hundreds of thousands of runs: each due time and each
    reason is formatted once, not once per run."""
    if not runs:
        return "nothing scheduled in this window"
    dues: dict[tuple[datetime, int], str] = {}
    whys: dict[tuple[str, str], str] = {}
    cells = []
    for p in runs:
        due = p.slot.due
        due_text = dues.get((due, due.fold))
        if due_text is None:
            due_text = dues[due, due.fold] = _cell(due)
        why_key = (p.slot.reason, p.decision.reason)
        why = whys.get(why_key)
        if why is None:
            why = whys[why_key] = f"{p.slot.reason}; {p.decision.reason}"
        cells.append((due_text, p.slot.policy, p.target, p.decision.level, why))
    heads = ("DUE", "POLICY", "TARGET", "LEVEL", "WHY")
    w0, w1, w2, w3 = (max(len(heads[i]), max(len(row[i]) for row in cells)) for i in range(4))
    lines = [
        (f"{a:<{w0}}  {b:<{w1}}  {c:<{w2}}  {d:<{w3}}  {e}").rstrip() for a, b, c, d, e in cells
    ]
    lines.insert(0, f"{heads[0]:<{w0}}  {heads[1]:<{w1}}  {heads[2]:<{w2}}  {heads[3]:<{w3}}  WHY")
    return "\n".join(lines)


def plan_json(begin: datetime, days: int, runs: Sequence[Any]) -> str:
    """`plan --json`: the document `dump_json` would give (schema, command, from, days,
    runs), with one run a line, each encoded by json's C encoder (indent=2 uses the
    pure-Python one: seconds for a month of 10,000 policies)."""
    import json

    head = dump_json("plan", {"from": begin, "days": days, "runs": []})
    assert head.endswith('"runs": []\n}')
    dues: dict[tuple[datetime, int], str] = {}
    rows = []
    for p in runs:
        slot, decision = p.slot, p.decision
        due = dues.get((slot.due, slot.due.fold))
        if due is None:
            due = dues[slot.due, slot.due.fold] = slot.due.isoformat()
        rows.append(
            {
                "due": due,
                "policy": slot.policy,
                "target": p.target,
                "level": decision.level,
                "scheduled_level": slot.level,
                "schedules": list(slot.schedules),
                "slot": slot.key,
                "why": f"{slot.reason}; {decision.reason}",
            }
        )
    if not rows:
        return head
    # A quote inside a string is escaped, so `}, {"due"` only ever joins two runs.
    body = json.dumps(rows)[1:-1].replace('}, {"due"', '},\n    {"due"')
    return head[: -len("[]\n}")] + "[\n    " + body + "\n  ]\n}"


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
