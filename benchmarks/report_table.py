"""Pure parts of the benchmark command: rows, their merge from the sub-benchmarks' JSON,
the table text, and reading the argv log of the counting restic wrapper.

Nothing here runs a process or reads the clock, so the unit tests can pin the table
down without running a benchmark.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# A wrapper line holds restic's argv, each argument followed by this separator.
ARG_SEPARATOR = "\x1f"

# restic's global options that take a value as the next argument (`--repo URL`); every
# other argument starting with `-` before the command is a flag or `--opt=value`.
_VALUE_OPTIONS = frozenset(
    {
        "-r",
        "--repo",
        "--repository-file",
        "-o",
        "--option",
        "-p",
        "--password-file",
        "--password-command",
        "--key-hint",
        "--cache-dir",
        "--cacert",
        "--tls-client-cert",
        "--limit-upload",
        "--limit-download",
        "--pack-size",
        "--compression",
    }
)


@dataclass(frozen=True)
class Timing:
    """Median and minimum of a list of seconds (the median is the claim, the minimum
    shows the noise floor)."""

    median: float
    min: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Timing:
        if not seconds:
            raise ValueError("no measurement to summarise")
        return cls(statistics.median(seconds), min(seconds))


@dataclass(frozen=True)
class Row:
    """One line of the table. `note` set and `ours` None: the figure was not measured."""

    figure: str
    ours: Timing | None = None
    baseline: str = ""
    base: Timing | None = None
    ratio: float | None = None
    goal: str = ""
    met: bool | None = None
    extra: str = ""  # e.g. peak memory
    note: str = ""
    ours_text: str = ""  # a figure that is not a time (a process count)


def pair_row(
    figure: str, baseline: str, ours: Sequence[float], base: Sequence[float], goal_max: float
) -> Row:
    """A row of ours against a baseline, met when the ratio of medians is at most goal_max."""
    o, b = Timing.of(ours), Timing.of(base)
    ratio = o.median / b.median
    return Row(figure, o, baseline, b, ratio, f"<= {goal_max:.2f}x", ratio <= goal_max)


def not_measured(figure: str, why: str, goal: str = "") -> Row:
    return Row(figure, goal=goal, note=f"not measured: {why}")


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} is {value!r}, not a number")
    return float(value)


def _met(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise ValueError(f"met is {value!r}, not true, false or null")


def row_from_json(item: Mapping[str, Any], label: str = "") -> Row:
    """A row of a sub-benchmark: timed alone (`median_s`, `min_s`, `peak_mib`) or
    against a baseline (`ours_median_s`, ..., `baseline`, `baseline_median_s`, `ratio`).
    A row it cannot read is 'not measured', named by its figure, else by `label`."""
    figure = item.get("figure")
    if not isinstance(figure, str) or not figure:
        why = f"a row without a figure: {json.dumps(item)[:120]}"
        return not_measured(label or "?", f"bad row from the script ({why})")
    goal = str(item.get("goal", ""))
    try:
        if "ours_median_s" in item:
            ours = Timing(
                _number(item.get("ours_median_s"), "ours_median_s"),
                _number(item.get("ours_min_s"), "ours_min_s"),
            )
            base = Timing(
                _number(item.get("baseline_median_s"), "baseline_median_s"),
                _number(item.get("baseline_min_s"), "baseline_min_s"),
            )
            ratio = item.get("ratio")
            ratio = _number(ratio, "ratio") if ratio is not None else ours.median / base.median
            return Row(
                figure,
                ours,
                str(item.get("baseline", "")),
                base,
                ratio,
                goal,
                _met(item.get("met")),
            )
        ours = Timing(
            _number(item.get("median_s"), "median_s"), _number(item.get("min_s"), "min_s")
        )
        peak = item.get("peak_mib")
        extra = f"{_number(peak, 'peak_mib'):.0f} MiB peak" if peak is not None else ""
        return Row(figure, ours, goal=goal, met=_met(item.get("met")), extra=extra)
    except ValueError as exc:
        return not_measured(figure, f"bad row from the script ({exc})", goal)


def _json_items(stdout: str) -> list[Any]:
    """The script's rows: one JSON list, an object with `rows`, or one object a line."""
    text = stdout.strip()
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
        items = []
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    items.append(json.loads(line))
                except ValueError:
                    continue
        return items
    if isinstance(doc, dict):
        doc = doc.get("rows", [doc] if "figure" in doc else [])
    return doc if isinstance(doc, list) else []


def rows_from_script(
    label: str, script: str, returncode: int, stdout: str, stderr: str, goal: str = ""
) -> list[Row]:
    """Rows of one sub-benchmark run; a failed or silent script is one 'not measured' row
    named `label` that says why (its last line on stderr), never a missing line."""
    if returncode != 0:
        last = next((ln.strip() for ln in reversed(stderr.splitlines()) if ln.strip()), "")
        why = f"{script} exited {returncode}" + (f": {last[:200]}" if last else "")
        return [not_measured(label, why, goal)]
    items = [i for i in _json_items(stdout) if isinstance(i, dict)]
    if not items:
        return [not_measured(label, f"{script} printed no JSON rows", goal)]
    return [row_from_json(i, label) for i in items]


def _timing(t: Timing | None) -> str:
    return f"{t.median:.2f} / {t.min:.2f}" if t else ""


def _met_text(row: Row) -> str:
    if row.note:
        return ""
    return {True: "yes", False: "NO", None: "-"}[row.met]


def render_table(rows: Iterable[Row]) -> str:
    """A Markdown table (pastes into the README as it is); times in seconds."""
    header = (
        "figure",
        "ours median / min (s)",
        "baseline",
        "baseline median / min (s)",
        "ratio",
        "goal",
        "met",
    )
    lines = [header]
    for r in rows:
        if r.note:
            lines.append((r.figure, r.note, "", "", "", r.goal, ""))
            continue
        ours = r.ours_text or _timing(r.ours) + (f" ({r.extra})" if r.extra else "")
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else ""
        lines.append((r.figure, ours, r.baseline, _timing(r.base), ratio, r.goal, _met_text(r)))
    return _markdown(lines)


def _markdown(lines: Sequence[Sequence[str]]) -> str:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = []
    for n, line in enumerate(lines):
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |")
        if n == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def restic_command(argv: Sequence[str]) -> str:
    """The restic command of one argv (`backup` of `restic --repo R --no-cache backup X`)."""
    skip = False
    for arg in argv[1:]:
        if skip:
            skip = False
            continue
        if arg in _VALUE_OPTIONS:
            skip = True
            continue
        if not arg.startswith("-"):
            return arg
    return "(none)"


def parse_wrapper_log(text: str) -> list[list[str]]:
    """The argv of each restic process the wrapper logged, in start order."""
    return [line.split(ARG_SEPARATOR)[:-1] for line in text.splitlines() if line]


def commands_of(argvs: Iterable[Sequence[str]]) -> list[str]:
    return [restic_command(a) for a in argvs]


def command_summary(commands: Sequence[str]) -> str:
    """`version, snapshots, backup` or `forget x12` for one operation's processes."""
    counts: dict[str, int] = {}
    for c in commands:
        counts[c] = counts.get(c, 0) + 1
    return ", ".join(f"{c} x{n}" if n > 1 else c for c, n in counts.items())


@dataclass(frozen=True)
class CountRow:
    operation: str
    processes: int
    commands: str
    goal: str
    met: bool | None


def count_row(operation: str, commands: Sequence[str], goal_max: int | None) -> CountRow:
    """Processes of one operation against a fixed goal (None: no goal of its own)."""
    n = len(commands)
    goal = f"{goal_max}" if goal_max is not None else ""
    met = n <= goal_max if goal_max is not None else None
    return CountRow(operation, n, command_summary(commands), goal, met)


def same_at_every_size(
    operation: str, commands_at: Mapping[int, Sequence[str]], unit: str
) -> list[CountRow]:
    """Rows of one operation measured at several sizes (sample files, policies): met when
    every size started the same number of processes, whatever that number is."""
    if len(commands_at) < 2:
        raise ValueError("a count is independent of size only when measured at two sizes")
    same = len({len(c) for c in commands_at.values()}) == 1
    return [
        CountRow(
            f"{operation} ({unit} {n})", len(c), command_summary(c), "same at every size", same
        )
        for n, c in sorted(commands_at.items())
    ]


def independence_row(figure: str, counts: Mapping[int, int], unit: str, today: str) -> Row:
    """The main table's row for a process count that must not grow with N."""
    if len(counts) < 2:
        raise ValueError("a count is independent of N only when measured at two N")
    text = ", ".join(f"{c} at {unit}={n}" for n, c in sorted(counts.items()))
    met = len(set(counts.values())) == 1
    return Row(figure, ours_text=text, goal=f"independent of {unit} (today {today})", met=met)


def render_counts(rows: Iterable[CountRow]) -> str:
    lines = [("operation", "restic processes", "commands", "goal", "met")]
    for r in rows:
        met = {True: "yes", False: "NO", None: "-"}[r.met]
        lines.append((r.operation, str(r.processes), r.commands, r.goal, met))
    return _markdown(lines)
