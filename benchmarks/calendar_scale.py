"""Benchmark: the calendar at scale (`plan`, `validate`, idle `run --due`).

Writes a policies.toml of N policies (default 10,000) into a temporary folder,
with a mix of daily, weekly, monthly (days 1-31) and free cron schedules in
Europe/Berlin, and times

- `plan --days 31` (issue 15 asks < 1 s and < 200 MiB for 10,000 policies),
- `validate` (< 1 s),
- `run --due --now T` at a T when nothing is due (< 1 s): a first pass at T sees
  every policy for the first time and records it; the timed passes follow at T +
  k minutes. The local target's repository does not exist; nothing due means
  restic is never started.

Prints median and minimum of `--rounds` runs, wall and CPU (user + system)
seconds, and the peak memory (max RSS) of each command; then the calendar
alone (slots_between for every policy over both windows, in one process, CPU
seconds). `--against DIR` also runs another checkout's code (PYTHONPATH=DIR,
e.g. /work/main), interleaved, and prints the before/after ratios. Not part of
the test suite (timings are noisy): run

    .venv/bin/python benchmarks/calendar_scale.py [--policies 10000] [--rounds 5] [--against DIR]

`--json` prints instead a JSON list of rows {"figure", "median_s", "min_s", "peak_mib",
"goal", "met"} (wall seconds; "cpu_median_s" too), for benchmarks/run.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

ORC = [sys.executable, "-m", "orchestrator"]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LEVELS = ("full", "differential", "incremental")
# A Tuesday noon in Berlin (10:00 UTC): every calendar entry below is at 00:00-05:59
# local and every cron runs at 03:xx or 22:xx, so nothing is ever due at T + minutes.
IDLE_NOW = "2026-11-24T10:00:00+00:00"
# Issue 15's goals: (seconds, MiB or None) per command.
GOALS: dict[str, tuple[float, int | None]] = {
    "plan --days 31": (1.0, 200),
    "validate": (1.0, None),
    "run --due (nothing due)": (1.0, None),
}


def policies_toml(count: int, work: Path) -> str:
    """N policies: every one daily; half also weekly; a third monthly; a tenth a cron."""
    lines = [
        "[orchestrator]",
        'state_dir = "var"',
        'timezone = "Europe/Berlin"',
        "[targets.local]",
        'kind = "local"',
        f'path = "{work / "repo"}"',
        'password = "secret:bench"',
    ]
    for i in range(count):
        at = f"{i % 6:02d}:{(i * 7) % 60:02d}"
        lines += [
            f"[policies.p{i:05d}]",
            'importance = "normal"',
            f'sources = ["{work / "data"}"]',
            'targets = ["local"]',
            f'daily = {{ at = "{at}", level = "incremental" }}',
        ]
        if i % 2 == 0:
            lines.append(
                f'weekly = {{ on = "{WEEKDAYS[i % 7]}", at = "{at}", level = "differential" }}'
            )
        if i % 3 == 0:
            lines.append(f'monthly = {{ day = {1 + i % 31}, at = "{at}", level = "full" }}')
        if i % 10 == 0:
            cron = ("15 3 * * 1-5", "0 22 * * *", "30 3 1,15 * *")[i % 3]
            lines.append(f'schedules = [{{ cron = "{cron}", level = "{LEVELS[i % 3]}" }}]')
        lines.append("")
    return "\n".join(lines)


class Run(NamedTuple):
    wall: float  # seconds
    cpu: float  # user + system seconds: the fairer figure on a loaded machine
    rss: int  # peak resident memory, KiB


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> Run:
    """One command, run in a child that is measured alone.

    `cwd` is the work folder: `python -m` puts the current folder first on the path,
    so running from a checkout would import that checkout's code whatever PYTHONPATH says."""
    probe = (
        "import resource, subprocess, sys, time\n"
        "t = time.monotonic()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "s = time.monotonic() - t\n"
        "r = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(p.returncode, s, r.ru_utime + r.ru_stime, r.ru_maxrss)\n"
        "sys.stderr.write(p.stderr[-2000:])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, *argv],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    code, wall, cpu, rss = proc.stdout.split()
    if int(code) != 0:
        sys.exit(f"{' '.join(argv)} failed ({code}):\n{proc.stderr}")
    return Run(float(wall), float(cpu), int(rss))


# The calendar alone, in one process: slots_between for every policy over the plan's
# 31 days and over the idle pass's window (CPU seconds), without loading or rendering.
CALENDAR_ONLY = """
import sys, time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from orchestrator.policies.loader import load_config
from orchestrator.policies.schedule import slots_between
cfg = load_config(Path(sys.argv[1]))
tz, policies = cfg.settings.timezone, list(cfg.policies.values())
now = datetime.fromisoformat(sys.argv[2])
for name, start, end in (
    ("plan", now, now + timedelta(days=31)),
    ("idle", now - timedelta(hours=1), now + timedelta(minutes=30)),
):
    t = time.process_time()
    n = sum(len(slots_between(p, tz, start, end)) for p in policies)
    print(name, n, time.process_time() - t)
"""


def calendar_only(config: Path, env: dict[str, str], cwd: Path) -> dict[str, tuple[int, float]]:
    """{window: (slots, CPU seconds)} of slots_between alone."""
    proc = subprocess.run(
        [sys.executable, "-c", CALENDAR_ONLY, str(config), IDLE_NOW],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    found = {}
    for line in proc.stdout.splitlines():
        name, slots, cpu = line.split()
        found[name] = (int(slots), float(cpu))
    return found


def row(figure: str, runs: list[Run], goal: str, goal_s: float) -> dict[str, object]:
    """One row of `--json` (benchmarks/run.py reads these): wall seconds, peak memory;
    `met` when the median wall time is under the goal."""
    wall = [r.wall for r in runs]
    return {
        "figure": figure,
        "median_s": round(statistics.median(wall), 3),
        "min_s": round(min(wall), 3),
        "peak_mib": round(max(r.rss for r in runs) / 1024, 1),
        "goal": goal,
        "met": statistics.median(wall) < goal_s,
        "cpu_median_s": round(statistics.median(r.cpu for r in runs), 3),
    }


def summary(runs: list[Run]) -> str:
    wall, cpu = [r.wall for r in runs], [r.cpu for r in runs]
    return (
        f"wall median {statistics.median(wall):6.2f}s min {min(wall):6.2f}s  "
        f"cpu median {statistics.median(cpu):6.2f}s min {min(cpu):6.2f}s  "
        f"max RSS {max(r.rss for r in runs) / 1024:4.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--against", type=Path, help="another checkout (e.g. main) to time interleaved, as before"
    )
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    parser.add_argument(
        "--json", action="store_true", help="print the rows as JSON (for benchmarks/run.py)"
    )
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="orc-calendar-"))
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "ORCH"))}
        env["ORCHESTRATOR_SECRET_BENCH"] = "benchmark password 1234"
        envs = {"this": env}
        if args.against:
            envs = {"before": {**env, "PYTHONPATH": str(args.against.resolve())}, "after": env}
        # Each code in its own folder (config, state, catalog): an older checkout must not
        # meet a catalog schema or cache that a newer one wrote.
        codes: dict[str, tuple[dict[str, str], Path]] = {}
        for code, code_env in envs.items():
            folder = work / code
            (folder / "data").mkdir(parents=True, exist_ok=True)
            (folder / "var").mkdir(exist_ok=True)
            config = folder / "policies.toml"
            config.write_text(policies_toml(args.policies, folder))
            codes[code] = (code_env, config)

        def orc(config: Path) -> list[str]:
            return [*ORC, "--config", str(config)]

        commands = {
            "plan --days 31": lambda c, k: [*orc(c), "plan", "--days", "31", "--from", IDLE_NOW],
            "validate": lambda c, k: [*orc(c), "validate"],
            # Each pass at a later minute, so none is a repeat of the one before.
            "run --due (nothing due)": lambda c, k: [
                *orc(c),
                "run",
                "--due",
                "--now",
                f"2026-11-24T10:{k:02d}:00+00:00",
            ],
        }
        # The first pass records every policy as first seen (writes); later passes are idle.
        for code_env, config in codes.values():
            timed([*orc(config), "run", "--due", "--now", IDLE_NOW], code_env, config.parent)
        runs: dict[tuple[str, str], list[Run]] = {}
        for k in range(1, args.rounds + 1):
            for name, argv in commands.items():
                for code, (code_env, config) in codes.items():  # interleaved
                    runs.setdefault((name, code), []).append(
                        timed(argv(config, k + 1), code_env, config.parent)
                    )
        calendar: dict[str, list[dict[str, tuple[int, float]]]] = {}
        for _ in range(args.rounds):
            for code, (code_env, config) in codes.items():
                calendar.setdefault(code, []).append(calendar_only(config, code_env, work))
        if any((config.parent / "repo").exists() for _, config in codes.values()):
            sys.exit("run --due touched the repository: something was due")
        if args.json:
            rows = []
            for name in commands:
                goal_s, goal_mib = GOALS[name]
                for code in codes:
                    figure = f"{name}, {args.policies} policies" + (
                        f" ({code})" if args.against else ""
                    )
                    goal = f"< {goal_s:g} s" + (f", < {goal_mib} MiB" if goal_mib else "")
                    found = row(figure, runs[name, code], goal, goal_s)
                    if goal_mib and found["peak_mib"] >= goal_mib:  # type: ignore[operator]
                        found["met"] = False
                    rows.append(found)
            print(json.dumps(rows, indent=2))
            return
        print(
            f"{args.policies} policies, {args.rounds} rounds, cpus: {os.cpu_count()}, "
            f"load average now: {os.getloadavg()[0]:.1f}"
        )
        for name in commands:
            for code in codes:
                print(f"{name:<28} {code:<7} {summary(runs[name, code])}")
            if args.against:
                before, after = runs[name, "before"], runs[name, "after"]
                wall = statistics.median(r.wall for r in before) / statistics.median(
                    r.wall for r in after
                )
                cpu = statistics.median(r.cpu for r in before) / statistics.median(
                    r.cpu for r in after
                )
                print(f"{name:<28} ratio   before/after: wall {wall:.1f}x, cpu {cpu:.1f}x")
        for window in ("plan", "idle"):
            label = f"slots_between, {window} window"
            medians = {}
            for code in codes:
                cpus = [found[window][1] for found in calendar[code]]
                medians[code] = statistics.median(cpus)
                slots = calendar[code][0][window][0]
                print(
                    f"{label:<28} {code:<7} cpu median {medians[code]:6.2f}s "
                    f"min {min(cpus):6.2f}s  ({slots} slots)"
                )
            if args.against:
                ratio = medians["before"] / max(medians["after"], 1e-9)
                print(f"{label:<28} ratio   before/after: cpu {ratio:.1f}x")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
