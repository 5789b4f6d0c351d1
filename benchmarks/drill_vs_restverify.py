"""Benchmark: `orchestrator drill` (every file checked) against `restverify run`.

restverify (PyPI, 0.3.1) restores the newest snapshot into a temporary folder, walks
it and the source, and hashes a sample of at most ~200 files on both sides. The drill
restores the same snapshot and hashes every file against its live copy. Issue 15
asks the drill to take at most 0.8x restverify's time on the same repository.

Data sets (built once, kept under the work folder; `--scale` shrinks both):
- mixed: 1 GiB in 2,000 files of very different sizes, two thirds random, one third
  unique log lines;
- small: 50,000 files of 100 B - 8 KiB.
Each is backed up once by the orchestrator into a fresh repository of the restic under
test; then the drill and restverify run on that repository and that snapshot, one
warm-up each (untimed), then `--rounds` rounds in alternating order. Prints medians,
minima and ratios (ours / restverify); `--json` prints the rows as a JSON list for
benchmarks/run.py. restverify is installed into its own venv under the work folder
when missing. Not part of the test suite (timings are noisy): run

    .venv/bin/python benchmarks/drill_vs_restverify.py [--scale 0.1] [--rounds 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

PASSWORD = "benchmark password for drills 2468"
RESTVERIFY = "restverify==0.3.1"
GOAL = 0.8
MIB = 1 << 20
ORC = [sys.executable, "-m", "orchestrator"]
LINE = b"2026-11-24T01:30:00Z INFO backup run finished for policy files on target local %08d\n"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- data sets ----------------------------------------------------------------------------


def _complete(root: Path, stamp: str) -> bool:
    marker = root / ".complete"
    return marker.exists() and marker.read_text() == stamp


def _fresh(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)


def mixed(root: Path, files: int, total: int) -> Path:
    """`files` files summing to `total` bytes, sizes spread Pareto-like over 40 folders."""
    stamp = f"mixed {files} {total} v1"
    if _complete(root, stamp):
        return root
    say(f"building {root} ({files} files, {total / MIB:.0f} MiB)")
    _fresh(root)
    rng = random.Random(15)
    weights = [rng.paretovariate(1.2) for _ in range(files)]
    scale = total / sum(weights)
    for i, w in enumerate(weights):
        size = max(1, int(w * scale))
        folder = root / f"d{i % 40:02}"
        folder.mkdir(exist_ok=True)
        if i % 3 == 2:  # compressible, yet unique
            n = size // len(LINE % 0) + 1
            data = b"".join(LINE % (i * 100_000 + k) for k in range(n))[:size]
        else:
            data = rng.randbytes(size)
        (folder / f"f{i:05}.bin").write_bytes(data)
    (root / ".complete").write_text(stamp)
    return root


def small(root: Path, files: int) -> Path:
    """`files` files of 100 B - 8 KiB in folders of 1,000."""
    stamp = f"small {files} v1"
    if _complete(root, stamp):
        return root
    say(f"building {root} ({files} small files)")
    _fresh(root)
    rng = random.Random(16)
    for i in range(files):
        folder = root / f"d{i // 1000:03}"
        folder.mkdir(exist_ok=True)
        (folder / f"s{i:06}.txt").write_bytes(rng.randbytes(rng.randint(50, 4096)).hex().encode())
    (root / ".complete").write_text(stamp)
    return root


# --- tools --------------------------------------------------------------------------------


def restverify_bin(work: Path) -> Path:
    """restverify in its own venv (never in the project's): installed when missing."""
    venv = work / "restverify-venv"
    binary = venv / "bin" / "restverify"
    if not binary.exists():
        say(f"installing {RESTVERIFY} into {venv}")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", RESTVERIFY],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return binary


def restic_version(restic: str) -> str:
    out = subprocess.run([restic, "version"], capture_output=True, text=True, check=True).stdout
    return out.split()[1]


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    started = time.monotonic()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return seconds, proc.stdout


# --- one pair -----------------------------------------------------------------------------


def prepare(name: str, data: Path, work: Path, restic: str, env: dict[str, str]) -> dict:
    """A fresh repository holding one orchestrator backup of `data`, and the commands."""
    root = work / f"run-{name}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    shim = root / "shim"  # restverify finds restic on PATH: the one under test
    shim.mkdir()
    (shim / "restic").symlink_to(Path(restic).resolve())
    config = root / "policies.toml"
    config.write_text(
        textwrap.dedent(
            f"""\
            [orchestrator]
            state_dir = "var"
            restic_binary = "{Path(restic).resolve()}"
            [targets.local]
            kind = "local"
            path = "{root / "repo"}"
            password = "secret:drillbench"
            [policies.{name}]
            importance = "normal"
            sources = ["{data}"]
            targets = ["local"]
            daily = {{ at = "01:30", level = "full" }}
            drill = {{}}
            """
        )
    )
    orc = [*ORC, "--config", str(config)]
    timed([*orc, "backup", name], env, root)
    snaps = subprocess.run(
        [restic, "-r", str(root / "repo"), "--no-cache", "snapshots", "--json"],
        env={**env, "RESTIC_PASSWORD": PASSWORD},
        capture_output=True,
        text=True,
        check=True,
    )
    [snap] = json.loads(snaps.stdout)
    rv_env = {**env, "RESTIC_PASSWORD": PASSWORD, "PATH": f"{shim}:{env['PATH']}"}
    rv_env["HOME"] = str(root / "home")  # restverify's history and config stay here
    return {
        "root": root,
        "drill": ([*orc, "--json", "drill", name], env),
        "restverify": (
            [
                str(restverify_bin(work)),
                "run",
                "-r",
                str(root / "repo"),
                "-s",
                str(data),
                "--snapshot",
                snap["short_id"] if "short_id" in snap else snap["id"][:8],
                "--config",
                str(root / "restverify.toml"),
            ],
            rv_env,
        ),
    }


def drill_checked_everything(stdout: str) -> None:
    """A drill that skipped files would be cheating: every file must have been checked."""
    [rec] = json.loads(stdout)["drills"]
    d = rec["details"]
    if rec["outcome"] != "ok" or d["files_checked"] != d["files_in_snapshot"]:
        sys.exit(f"the drill did not check every file: {rec['outcome']}, {d}")


def run_pair(pair: dict, rounds: int) -> dict[str, list[float]]:
    names = [n for n in ("drill", "restverify", "before") if n in pair]
    times: dict[str, list[float]] = {n: [] for n in names}
    for which in names:  # warm-up: page cache alike for all
        _, out = timed(*pair[which], pair["root"])
        if which != "restverify":
            drill_checked_everything(out)
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for which in order:
            seconds, out = timed(*pair[which], pair["root"])
            if which != "restverify":
                drill_checked_everything(out)
            times[which].append(seconds)
            say(f"  round {r + 1} {which}: {seconds:.2f}s")
    return times


def row(figure: str, times: dict[str, list[float]]) -> dict:
    ours, base = times["drill"], times["restverify"]
    ratio = statistics.median(ours) / statistics.median(base)
    return {
        "figure": figure,
        "ours_median_s": round(statistics.median(ours), 3),
        "ours_min_s": round(min(ours), 3),
        "baseline": "restverify run",
        "baseline_median_s": round(statistics.median(base), 3),
        "baseline_min_s": round(min(base), 3),
        "ratio": round(ratio, 3),
        "goal": f"<= {GOAL}x",
        "met": ratio <= GOAL,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="shrink the data sets")
    parser.add_argument("--quick", action="store_true", help="--scale 0.05 --rounds 3")
    parser.add_argument("--restic", default=shutil.which("restic") or "restic")
    parser.add_argument("--only", default="mixed,small", help="mixed, small or both")
    parser.add_argument(
        "--work",
        type=Path,
        default=Path.home() / ".cache" / "orchestrator-bench" / "drill",
        help="data sets, restverify's venv and the repositories (data sets are kept)",
    )
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument(
        "--against", type=Path, help="also time the drill of another checkout (before/after)"
    )
    args = parser.parse_args()
    if args.quick:
        args.scale, args.rounds = min(args.scale, 0.05), min(args.rounds, 3)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    version = restic_version(args.restic)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "ORCH"))}
    env["ORCHESTRATOR_SECRET_DRILLBENCH"] = PASSWORD
    mixed_files = max(20, round(2000 * args.scale))
    mixed_bytes = max(MIB, round(1024 * MIB * args.scale))
    small_files = max(100, round(50_000 * args.scale))
    # benchmarks/run.py names a data folder shared by its scripts; else our own
    shared = os.environ.get("ORCHESTRATOR_BENCH_DATA")
    data = Path(shared) / "drill" if shared else work / "data"
    sets = {
        "mixed": (
            f"drill, {mixed_bytes / MIB:.0f} MiB in {mixed_files} files (restic {version})",
            lambda: mixed(data / f"mixed-{mixed_files}-{mixed_bytes}", mixed_files, mixed_bytes),
        ),
        "small": (
            f"drill, {small_files} small files (restic {version})",
            lambda: small(data / f"small-{small_files}", small_files),
        ),
    }
    rows = []
    for name in args.only.split(","):
        figure, build = sets[name.strip()]
        say(f"{figure}:")
        pair = prepare(name.strip(), build(), work, args.restic, env)
        if args.against:
            argv, drill_env = pair["drill"]
            pair["before"] = (argv, {**drill_env, "PYTHONPATH": str(args.against.resolve())})
        try:
            times = run_pair(pair, args.rounds)
            rows.append(row(figure, times))
            if "before" in times:
                before = statistics.median(times["before"]) / statistics.median(times["restverify"])
                say(f"  before ({args.against}): {before:.2f}x restverify")
                rows[-1]["before_ratio"] = round(before, 3)
        finally:
            shutil.rmtree(pair["root"], ignore_errors=True)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"cpus: {os.cpu_count()}, restic {version}, {args.rounds} rounds")
    for r in rows:
        print(
            f"{r['figure']}: drill median {r['ours_median_s']:.2f}s (min {r['ours_min_s']:.2f}), "
            f"restverify median {r['baseline_median_s']:.2f}s (min {r['baseline_min_s']:.2f}), "
            f"ratio {r['ratio']:.2f}x (goal {r['goal']}: {'met' if r['met'] else 'NOT met'})"
        )


if __name__ == "__main__":
    main()
