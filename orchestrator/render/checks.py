"""Verifications, drills and target checks as text."""

from __future__ import annotations

from typing import Any

from orchestrator.render import human_bytes, table


def render_verifications(records: list[Any]) -> str:

    text = table(
        ["tier", "target", "outcome", "files", "bytes", "seconds", "summary"],
        [
            [r.tier, r.target, r.outcome, r.files, human_bytes(r.bytes), r.seconds, r.message]
            for r in records
        ],
    )
    lines = [text]
    for r in records:
        if r.tier == "drill" and r.details:
            d = r.details
            rto = d.get("extrapolated_full_restore_seconds")
            rate = d.get("throughput_bytes_per_second")
            lines.append(
                f"drill {r.policy}@{r.target}: snapshot {str(d.get('snapshot'))[:8]}, "
                f"seed {d.get('seed')}, {d.get('files_checked')} of "
                f"{d.get('files_in_snapshot')} files ({human_bytes(d.get('bytes_checked'))}) "
                f"checked, {len(d.get('mismatches', []))} mismatches, restore "
                f"{d.get('restore_seconds')}s, {human_bytes(int(rate or 0))}/s, "
                f"full restore ~{(rto or 0) / 60:.1f} min"
                + (
                    f" vs RTO {d['rto_minutes']} min ({'met' if d.get('rto_met') else 'MISSED'})"
                    if d.get("rto_minutes")
                    else ""
                )
            )
    return "\n".join(lines)


def render_check(c: Any) -> str:
    def yes(value: bool | None, good: str, bad: str) -> str | None:
        return None if value is None else (good if value else bad)

    facts = [
        yes(c.reachable, "reachable", "NOT reachable"),
        *c.notes,
        yes(
            c.initialised,
            "repository initialised",
            "repository MISSING"
            if c.problem_kind == "repository_missing"
            else "repository not initialised yet",
        ),
        yes(c.password_ok, f"password accepted ({c.snapshots} snapshots)", "WRONG password"),
        yes(c.writable, "writable", "NOT writable"),
        f"restic {c.restic_version}" + ("" if c.restic_compatible else " (too old)"),
        f"free {human_bytes(c.free_bytes)}" if c.free_bytes is not None else "free space unknown",
        f"next backup ~{human_bytes(c.next_backup_bytes)}"
        if c.next_backup_bytes is not None
        else None,
    ]
    line = f"{c.target}  {'ok' if c.ok else 'FAILED'}  {c.where}: " + "; ".join(
        f for f in facts if f
    )
    return line + (f"\n  problem: {c.problem}" if c.problem else "")
