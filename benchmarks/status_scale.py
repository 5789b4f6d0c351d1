"""Benchmark: `status` over 1,000 policies with a year of runs (365,000 in the catalog).

Writes a policies.toml of N policies (default 1,000; daily incremental, weekly full, an
RPO, a tenth with verify and drill entries) and builds its catalog directly: the
orchestrator's own migrations (SqliteCatalog), then a year of daily runs per policy
(every seventh a full, one in fifty failed, the oldest month forgotten), a slot per run,
and weekly checks and drills for the policies that configure them, inserted with
executemany in one transaction (seconds, where real backups would take days). Then times

- `status --now T` (issue 15 asks < 0.5 s),
- `status --json --now T`,

median and minimum of `--rounds` runs, wall and CPU seconds and peak memory, each in a
child process measured alone. `--against DIR` also runs another checkout's code
(PYTHONPATH=DIR, e.g. /work/main) interleaved, on a copy of the catalog (an older
checkout must not meet a schema it does not know). `--json` prints the rows as a JSON
list of {"figure", "median_s", "min_s", "peak_mib", "goal", "met"} for benchmarks/run.py.
Not part of the test suite (timings are noisy): run

    .venv/bin/python benchmarks/status_scale.py [--policies 1000] [--days 365] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calendar_scale import ORC, Run, row, summary, timed

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
GOAL_S = 0.5


def policies_toml(count: int, work: Path) -> str:
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
        lines += [
            f"[policies.p{i:05d}]",
            'importance = "normal"',
            f'sources = ["{work / "data"}"]',
            'targets = ["local"]',
            "rpo_hours = 26",
            f'daily = {{ at = "{i % 6:02d}:{(i * 7) % 60:02d}", level = "incremental" }}',
            f'weekly = {{ on = "sun", at = "{i % 6:02d}:{(i * 7) % 60:02d}", level = "full" }}',
        ]
        if i % 10 == 0:
            lines += ['verify = { every = "weekly" }', 'drill = { every = "monthly" }']
        lines.append("")
    return "\n".join(lines)


MIGRATE = (
    "import sys; from pathlib import Path; from orchestrator.catalog.sqlite import "
    "SqliteCatalog; SqliteCatalog(Path(sys.argv[1])).close()"
)


def build_catalog(config: Path, count: int, days: int, env: dict[str, str]) -> int:
    """A year of runs, slots and checks, written straight into the catalog's tables (after
    the migrations of the code measured made them, run in a child with its `env`).
    Returns the number of runs."""
    path = config.parent / "var" / "catalog.sqlite"
    subprocess.run(
        [sys.executable, "-c", MIGRATE, str(path)], env=env, cwd=config.parent, check=True
    )
    runs, slots, checks, seen = [], [], [], []
    start = NOW - timedelta(days=days)
    for i in range(count):
        policy = f"p{i:05d}"
        seen.append((policy, start.isoformat()))
        for d in range(days):
            began = start + timedelta(days=d, hours=i % 6, minutes=(i * 7) % 60)
            full = d % 7 == 0
            failed = d % 50 == 49
            run_id = uuid.UUID(int=i * 100_000 + d).hex
            runs.append(
                (
                    run_id,
                    "backup",
                    policy,
                    "local",
                    began.isoformat(),
                    "bench",
                    1,
                    "full" if full else "incremental",
                    "full" if full else "incremental",
                    f"{policy}@{began:%Y-%m-%dT%H:%M}",
                    "failed" if failed else "success",
                    (began + timedelta(minutes=3)).isoformat(),
                    None if failed else run_id[:8],
                    (start + timedelta(days=30)).isoformat() if d < 30 else None,
                )
            )
            slots.append(
                (
                    f"{policy}@{began:%Y-%m-%dT%H:%M}",
                    "backup",
                    policy,
                    began.isoformat(),
                    began.isoformat(),
                    "full" if full else "incremental",
                    "done",
                    "failed" if failed else "success",
                    began.isoformat(),
                )
            )
            if i % 10 == 0 and d % 7 == 3:
                for tier in ("check", "drill"):
                    checks.append(
                        (
                            uuid.uuid4().hex,
                            tier,
                            policy if tier == "drill" else None,
                            "local",
                            began.isoformat(),
                            (began + timedelta(minutes=1)).isoformat(),
                            "ok",
                        )
                    )
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO runs (id, kind, policy, target, started_at, host, pid, asked_level, "
        "level, slot_key, outcome, finished_at, snapshot_id, gone_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        runs,
    )
    db.executemany(
        "INSERT INTO slots (key, kind, policy, due, due_utc, level, state, outcome, "
        "recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        slots,
    )
    db.executemany(
        "INSERT INTO verifications (id, tier, policy, target, started_at, finished_at, "
        "outcome) VALUES (?, ?, ?, ?, ?, ?, ?)",
        checks,
    )
    db.executemany("INSERT INTO policies_seen (policy, first_seen) VALUES (?, ?)", seen)
    db.execute("COMMIT")
    db.execute("ANALYZE")
    db.close()
    return len(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=int, default=1_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--against", type=Path, help="another checkout to time interleaved")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="orc-status-"))
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "ORCH"))}
        env["ORCHESTRATOR_SECRET_BENCH"] = "benchmark password 1234"
        codes: dict[str, tuple[dict[str, str], Path]] = {}
        for code in ("before", "after") if args.against else ("this",):
            folder = work / code
            (folder / "var").mkdir(parents=True, exist_ok=True)
            (folder / "data").mkdir(exist_ok=True)
            config = folder / "policies.toml"
            config.write_text(policies_toml(args.policies, folder))
            code_env = dict(env)
            if code == "before":
                code_env["PYTHONPATH"] = str(args.against.resolve())
            if not (folder / "var" / "catalog.sqlite").exists():
                made = build_catalog(config, args.policies, args.days, code_env)
                if not args.json:
                    print(f"{code}: catalog of {made} runs built", file=sys.stderr)
            codes[code] = (code_env, config)
        at = NOW.isoformat()
        commands = {
            "status": lambda c: [*ORC, "--config", str(c), "status", "--now", at],
            "status --json": lambda c: [*ORC, "--config", str(c), "--json", "status", "--now", at],
        }
        for code_env, config in codes.values():  # a first run migrates and warms the cache
            timed(commands["status"](config), code_env, config.parent)
        runs: dict[tuple[str, str], list[Run]] = {}
        for _ in range(args.rounds):
            for name, argv in commands.items():
                for code, (code_env, config) in codes.items():  # interleaved
                    runs.setdefault((name, code), []).append(
                        timed(argv(config), code_env, config.parent)
                    )
        label = f"{args.policies} policies, {args.days} days of runs"
        rows = []
        for name in commands:
            for code in codes:
                figure = f"{name}, {label}" + (f" ({code})" if args.against else "")
                rows.append(row(figure, runs[name, code], f"< {GOAL_S:g} s", GOAL_S))
        if args.json:
            print(json.dumps(rows, indent=2))
            return
        print(
            f"{label}, {args.rounds} rounds, cpus: {os.cpu_count()}, "
            f"load average now: {os.getloadavg()[0]:.1f}"
        )
        for name in commands:
            for code in codes:
                print(f"{name:<16} {code:<7} {summary(runs[name, code])}")
            if args.against:
                before = statistics.median(r.wall for r in runs[name, "before"])
                after = statistics.median(r.wall for r in runs[name, "after"])
                print(f"{name:<16} ratio   before/after: wall {before / after:.1f}x")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
