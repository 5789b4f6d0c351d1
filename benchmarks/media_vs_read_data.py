"""Benchmark: `orchestrator verify --tier media` against `restic check --read-data`.

Builds benchmark data (random and compressible files), backs it up with the
orchestrator into a fresh local repository, then times both verifications on the
same repository side by side, alternating, and prints the ratio. Issue 15 asks
for media >= 6x faster, using every core. `--json` prints the row as a JSON list for
benchmarks/run.py; `--restic` names the restic under test (both the orchestrator's
and the baseline's); `--against DIR` also times another checkout's code (before/after).
Not part of the test suite (timings are noisy): run

    .venv/bin/python benchmarks/media_vs_read_data.py [--mib 1024] [--rounds 5] [--json]
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
import textwrap
import time
from pathlib import Path

PASSWORD = "benchmark password 1234"
GOAL = 6.0  # times faster than restic check --read-data
ORC = [sys.executable, "-m", "orchestrator"]


def make_data(root: Path, mib: int) -> None:
    """Two thirds random (incompressible) in files of 1-32 MiB, one third compressible text."""
    root.mkdir(parents=True)
    random_bytes = mib * 2 // 3 << 20
    i = 0
    while random_bytes > 0:
        size = min(random_bytes, (1 + (i * 7) % 32) << 20)
        (root / f"random-{i:03}.bin").write_bytes(os.urandom(size))
        random_bytes -= size
        i += 1
    line = b"2026-11-24T01:30:00Z INFO backup run finished for policy files on target local\n"
    text_bytes = mib // 3 << 20
    for j in range(max(1, text_bytes >> 22)):
        with (root / f"log-{j:03}.txt").open("wb") as fh:
            for k in range(4 << 20 >> 7):
                fh.write(line[:-1] + b" %08d\n" % (j * 100_000 + k))


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="benchmark data size in MiB")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="--mib 200 --rounds 3")
    parser.add_argument("--restic", default=shutil.which("restic") or "restic")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    parser.add_argument("--json", action="store_true", help="print the row as JSON")
    parser.add_argument("--against", type=Path, help="also time another checkout's code")
    args = parser.parse_args()
    if args.quick:
        args.mib, args.rounds = min(args.mib, 200), min(args.rounds, 3)
    restic_bin = str(Path(args.restic).resolve()) if os.sep in args.restic else args.restic
    version = subprocess.run(
        [restic_bin, "version"], capture_output=True, text=True, check=True
    ).stdout.split()[1]

    work = args.keep or Path(tempfile.mkdtemp(prefix="orc-bench-"))
    try:
        work.mkdir(parents=True, exist_ok=True)
        os.chdir(work)  # `python -m` puts the cwd first on sys.path: not a checkout
        data, repo, config = work / "data", work / "repo", work / "policies.toml"
        if not data.exists():
            make_data(data, args.mib)
        config.write_text(
            textwrap.dedent(
                f"""\
                [orchestrator]
                state_dir = "var"
                restic_binary = "{restic_bin}"
                [targets.local]
                kind = "local"
                path = "{repo}"
                password = "secret:bench"
                [policies.bench]
                importance = "normal"
                sources = ["{data}"]
                targets = ["local"]
                daily = {{ at = "01:30", level = "incremental" }}
                verify = {{ media = true }}
                """
            )
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "ORCH"))}
        env["ORCHESTRATOR_SECRET_BENCH"] = PASSWORD
        orc = [*ORC, "--config", str(config)]
        if not repo.exists():
            timed([*orc, "backup", "bench"], env)
        repo_bytes = sum(p.stat().st_size for p in repo.rglob("*") if p.is_file())
        restic_env = {**env, "RESTIC_PASSWORD": PASSWORD}
        media_cmd = [*orc, "verify", "--tier", "media"]
        restic_cmd = [restic_bin, "--repo", str(repo), "--no-cache", "check", "--read-data"]
        before_env = {**env, "PYTHONPATH": str(args.against.resolve())} if args.against else None
        timed(media_cmd, env)  # warm the page cache for both alike
        media, restic, before = [], [], []
        for i in range(args.rounds):
            if i % 2:  # alternate the order: neither always runs on a just-warmed cache
                restic.append(timed(restic_cmd, restic_env))
            media.append(timed(media_cmd, env))
            if i % 2 == 0:
                restic.append(timed(restic_cmd, restic_env))
            if before_env is not None:
                before.append(timed(media_cmd, before_env))
        m, r = statistics.median(media), statistics.median(restic)
        mib = repo_bytes / 2**20
        row = {
            "figure": f"verify --tier media, {mib:.0f} MiB repository (restic {version})",
            "ours_median_s": round(m, 3),
            "ours_min_s": round(min(media), 3),
            "baseline": "restic check --read-data",
            "baseline_median_s": round(r, 3),
            "baseline_min_s": round(min(restic), 3),
            "ratio": round(m / r, 3),
            "goal": f">= {GOAL:.0f}x faster (ratio <= {1 / GOAL:.2f})",
            "met": r / m >= GOAL,
        }
        if before:
            row["before_ratio"] = round(statistics.median(before) / r, 3)
        if args.json:
            print(json.dumps([row], indent=2))
            return
        print(f"repository: {mib:.0f} MiB in {repo}  (cpus: {os.cpu_count()}, restic {version})")
        print(f"orchestrator verify --tier media: median {m:.2f}s  ({mib / m:.0f} MiB/s)  {media}")
        print(f"restic check --read-data:         median {r:.2f}s  ({mib / r:.0f} MiB/s)  {restic}")
        if before:
            b = statistics.median(before)
            print(f"before ({args.against}):  median {b:.2f}s: {r / b:.2f}x faster than restic")
        print(f"restic / media: {r / m:.2f}x faster  (issue 15 asks >= {GOAL:.0f}x)")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
