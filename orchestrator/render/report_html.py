"""The service report as one self-contained HTML file for a manager: tables and three
charts (matplotlib, drawn to PNG and embedded, so the file needs no network and no
script). The one module that imports matplotlib, lazily."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from orchestrator.render.report import hours, pct, priority_rows
from orchestrator.security.files import write_private

_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 60em }
table { border-collapse: collapse; margin: 1em 0 }
th, td { border: 1px solid #bbb; padding: .3em .7em; text-align: right }
th:first-child, td:first-child { text-align: left }
h1 { font-size: 1.5em } h2 { font-size: 1.2em; margin-top: 2em }
.note { color: #555 }
"""


def _png(figure: Any) -> str:
    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _charts(r: Any) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")  # no screen: draw to memory
    import matplotlib.pyplot as plt

    charts = []
    prios = [p.priority for p in r.priorities]
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(prios, [(p.response_within_target or 0) * 100 for p in r.priorities], color="#4a7")
    ax.set_ylim(0, 100)
    ax.set_ylabel("% answered in time")
    ax.set_title("First response within the deadline, by priority")
    charts.append(("Response in time", _png(fig)))
    plt.close(fig)

    names = list(r.success)
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(names, [(r.success[n].rate or 0) * 100 for n in names], color="#47a")
    ax.set_ylim(0, 100)
    ax.set_ylabel("% successful")
    ax.set_title("Success rate")
    charts.append(("Success rate", _png(fig)))
    plt.close(fig)

    if r.rpo:
        labels = [f"{x.policy}@{x.target}" for x in r.rpo]
        fig, ax = plt.subplots(figsize=(6, max(2, 0.4 * len(labels) + 1)))
        ax.barh(labels, [x.compliance * 100 for x in r.rpo], color="#a74")
        ax.set_xlim(0, 100)
        ax.set_xlabel("% of the period within the RPO")
        ax.set_title("Recovery point objective met")
        charts.append(("RPO compliance", _png(fig)))
        plt.close(fig)
    return charts


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(r: Any, tz: str) -> str:
    period = f"{r.start:%Y-%m-%d %H:%M} to {r.end:%Y-%m-%d %H:%M} ({html.escape(tz)})"
    parts = [
        f"<h1>Backup service report</h1><p>{period}: {r.tickets} tickets.</p>",
        "<h2>Response and resolution by priority</h2>",
        _table(
            [
                "Priority",
                "Opened",
                "Response (median)",
                "Response (90%)",
                "Answered in time",
                "Resolved",
                "Resolution rate",
                "Resolution (median)",
                "Resolved in time",
            ],
            priority_rows(r),
        ),
        "<h2>Satisfaction and handling</h2>",
        f"<p>Satisfaction: <b>{r.satisfaction if r.satisfaction is not None else '-'}</b> of 5 "
        f"({r.ratings} ratings). Handling time (acknowledged to resolved), median: "
        f"{hours(r.handling_median_h)}.</p>",
        "<h2>Success rates</h2>",
        _table(
            ["What", "Successful", "Of", "Rate"],
            [[k, v.ok, v.total, pct(v.rate)] for k, v in r.success.items()],
        ),
    ]
    if r.rpo:
        parts += [
            "<h2>Recovery point objective</h2>",
            _table(
                ["Policy", "Target", "RPO", "Share of the period within it"],
                [[x.policy, x.target, f"{x.rpo_hours:g} h", pct(x.compliance)] for x in r.rpo],
            ),
        ]
    parts.append(f"<h2>Breaches ({len(r.breaches)})</h2>")
    parts.append(
        _table(
            ["Ticket", "Priority", "Problem", "Policy", "Response", "Resolution"],
            [
                [
                    b["ticket"],
                    b["priority"],
                    b["kind"],
                    b["policy"] or "-",
                    b["response"],
                    b["resolution"],
                ]
                for b in r.breaches
            ],
        )
        if r.breaches
        else "<p class=note>None.</p>"
    )
    parts.append("<h2>Charts</h2>")
    parts += [
        f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{png}">'
        f"<figcaption>{html.escape(title)}</figcaption></figure>"
        for title, png in _charts(r)
    ]
    body = "\n".join(parts)
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>Backup service report</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>\n"
    )


def write_html(r: Any, path: Path, tz: str) -> None:
    """Written whole or not at all (a temporary file renamed into place)."""
    write_private(path, render_html(r, tz).encode("utf-8"))
