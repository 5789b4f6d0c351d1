"""Benchmark: `orchestrator verify --tier media` against `restic check --read-data`.

Builds benchmark data (random and compressible files), backs it up with the
orchestrator into a fresh local repository, then times both verifications on the
same repository side by side, alternating, and prints the ratio. The issue asks
for media >= 3x faster. Not part of the test suite (timings are noisy): run

    .venv/bin/python benchmarks/media_vs_read_data.py [--mib 400] [--rounds 3]
"""

from __future__ import annotations

import argparse
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
    parser.add_argument("--mib", type=int, default=400, help="benchmark data size in MiB")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="orc-bench-"))
    try:
        work.mkdir(parents=True, exist_ok=True)
        data, repo, config = work / "data", work / "repo", work / "policies.toml"
        if not data.exists():
            make_data(data, args.mib)
        config.write_text(
            textwrap.dedent(
                f"""\
                [orchestrator]
                state_dir = "var"
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
        restic_cmd = ["restic", "--repo", str(repo), "--no-cache", "check", "--read-data"]
        timed(media_cmd, env)  # warm the page cache for both alike
        media, restic = [], []
        for _ in range(args.rounds):
            media.append(timed(media_cmd, env))
            restic.append(timed(restic_cmd, restic_env))
        m, r = statistics.median(media), statistics.median(restic)
        mib = repo_bytes / 2**20
        print(f"repository: {mib:.0f} MiB in {repo}  (cpus: {os.cpu_count()})")
        print(f"orchestrator verify --tier media: median {m:.2f}s  ({mib / m:.0f} MiB/s)  {media}")
        print(f"restic check --read-data:         median {r:.2f}s  ({mib / r:.0f} MiB/s)  {restic}")
        print(f"ratio (restic / media): {r / m:.2f}x  (the issue asks >= 3x)")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
