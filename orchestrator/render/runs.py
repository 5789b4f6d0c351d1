"""Backup runs and daemon passes as text."""

from __future__ import annotations

from typing import Any

from orchestrator.render import human_bytes, table


def render_runs(runs: list[Any]) -> str:

    rows = [
        [
            r.policy,
            r.target,
            r.outcome,
            r.level or r.asked_level,
            r.snapshot_id[:8] if r.snapshot_id else None,
            r.files_total,
            human_bytes(r.bytes_added),
        ]
        for r in runs
    ]
    text = table(["policy", "target", "outcome", "level", "snapshot", "files", "added"], rows)
    notes = [f"{r.policy}@{r.target}: {r.level_reason}" for r in runs if r.level_reason]
    return "\n".join([text, *notes])


def render_pass(report: Any) -> str:
    lines = []
    if report.runs:
        lines.append(render_runs(report.runs))
    for rec in report.recorded:
        if rec.state != "started":
            lines.append(f"slot {rec.key} {rec.state}: {rec.note}")
    for rec in report.interrupted:
        lines.append(f"slot {rec.key} interrupted: {rec.note}")
    lines += [r.summary for r in report.retention]
    lines += [f"prune {t}: {e or 'done'}" for t, e in report.prunes]
    lines += [
        f"{c.tier} of {c.policy} on {c.target}: {c.outcome}: {c.message}" for c in report.checks
    ]
    lines += [
        f"RPO breached: {b.policy}@{b.target} newest good backup {b.age_hours:.1f}h old "
        f"(rpo {b.rpo_hours:g}h)"
        for b in report.breaches
    ]
    return "\n".join(lines) or f"nothing due at {report.now.isoformat(timespec='minutes')}"


def render_forget(results: list[Any]) -> str:
    return (
        table(
            ["policy", "target", "keep", "remove", "result"],
            [
                [
                    r.policy,
                    r.target,
                    len(r.keep),
                    len(r.remove),
                    r.error
                    or r.refused
                    or ("removed" if r.removed else "dry run" if r.remove else "nothing to remove"),
                ]
                for r in results
            ],
        )
        + "".join(
            f"\n{r.policy}@{r.target}: kept {i[:8]}: {why}"
            for r in results
            for i, why in r.reasons.items()
        )
        if results
        else "no policy has retention rules"
    )
