"""The benchmark command of issue 15: every figure of its table, measured side by side.

    .venv/bin/python benchmarks/run.py [--quick] [--rounds 5] [--restic PATH ...] [--only ROWS]

For each restic given (default: `restic` on PATH) it builds the data sets once (kept in
--work), makes fresh repositories from one `restic init` (copies of it, so ours and the
baseline pay the very same key derivation), and runs each pair (an orchestrator command,
the plain restic command doing the same work) interleaved, alternating which goes first,
`--rounds` times after one warm-up. Then it counts the restic processes each operation
starts, with a wrapper restic that logs its argv, and runs the other benchmark scripts
(`--json`) for the calendar, status, drill and media rows. One table per restic: median
and minimum seconds, the ratio of medians, the goal and whether it is met. Ratios are the
claims, never the seconds. See benchmarks/README.md for what each row means.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import datasets  # noqa: E402
import report_table as rt  # noqa: E402

PASSWORD = "benchmark password, long enough 4711"
MIB = 1 << 20
# The other benchmarks (owned beside this one): key for --only, script, what it measures
# (the row's name when the script gives no rows).
SCRIPTS = (
    (
        "drill",
        "drill_vs_restverify.py",
        "drill with every file checked vs restverify run",
        "<= 0.8x",
    ),
    (
        "media",
        "media_vs_read_data.py",
        "verify --tier media vs restic check --read-data",
        ">= 6x faster",
    ),
    (
        "calendar",
        "calendar_scale.py",
        "plan, validate, idle run --due for 10,000 policies",
        "< 1 s",
    ),
    ("status", "status_scale.py", "status, 1,000 policies with a year of runs", "< 0.5 s"),
)
OWN_ROWS = ("incremental", "full", "restore", "forget", "counts")
ALL_ROWS = OWN_ROWS + tuple(entry[0] for entry in SCRIPTS)
# A past Tuesday 01:35 UTC: five minutes after every daemon-pass policy's 01:30 slot.
PASS_NOW = "2026-11-24T01:35:00+00:00"


class BenchError(Exception):
    """A command of the benchmark failed: its row is reported not measured, with this."""


# --- running things ----------------------------------------------------------------


def clean_env() -> dict[str, str]:
    """Our environment without restic's or the orchestrator's settings (they would
    change what is measured), and with Python's bytecode cache on: an installed package
    has its .pyc files, and PYTHONDONTWRITEBYTECODE would time the compiler instead."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RESTIC_", "ORCHESTRATOR_")) and k != "PYTHONDONTWRITEBYTECODE"
    }


def run(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> tuple[float, str]:
    """(wall seconds, stdout) of one command; a failure raises BenchError naming it."""
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        last = next((ln for ln in reversed(proc.stderr.splitlines()) if ln.strip()), "")
        cmd = " ".join(Path(a).name if i == 0 else a for i, a in enumerate(argv[:6]))
        raise BenchError(f"`{cmd} ...` exited {proc.returncode}: {last.strip()[:200]}")
    return seconds, proc.stdout


def orchestrator_argv() -> list[str]:
    """The installed entry point (what a user runs), else `python -m orchestrator`."""
    entry = Path(sys.executable).with_name("orchestrator")
    return [str(entry)] if entry.exists() else [sys.executable, "-m", "orchestrator"]


def restic_version(restic: str) -> str:
    """`0.14.0` from `restic version`; anything else is not a restic to measure."""
    proc = subprocess.run([restic, "version"], capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not proc.stdout.startswith("restic "):
        raise BenchError(f"{restic} is not restic: `{restic} version` printed {proc.stdout[:80]!r}")
    return proc.stdout.split()[1]


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem = next(
            int(ln.split()[1])
            for ln in Path("/proc/meminfo").read_text().splitlines()
            if ln.startswith("MemTotal")
        )
    except (OSError, StopIteration, ValueError):
        mem = 0
    return f"{platform.node()}: {model}, {os.cpu_count()} cores, {mem / 2**20:.1f} GiB RAM"


def tree_size(root: Path) -> tuple[int, int]:
    files = [p for p in root.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


# --- one restic version's set-up -------------------------------------------------


class Setup:
    """Repositories, configuration and commands for one restic binary under `root`."""

    def __init__(self, restic: str, root: Path, data: dict[str, Path]) -> None:
        self.restic, self.root, self.data = restic, root, data
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        self.password_file = root / "password"
        self.password_file.write_text(PASSWORD)
        self.password_file.chmod(0o600)
        self.orc_env = {**clean_env(), "ORCHESTRATOR_SECRET_BENCH": PASSWORD}
        self.restic_env = {**clean_env(), "RESTIC_PASSWORD_FILE": str(self.password_file)}
        self.template = root / "template"
        run([restic, "-r", str(self.template), "init"], self.restic_env)

    def repo(self, name: str) -> Path:
        """A fresh repository: a copy of the one `restic init`, same key and chunker."""
        path = self.root / name
        shutil.copytree(self.template, path)
        return path

    def plain(self, repo: Path, *args: str) -> list[str]:
        # --no-cache as the orchestrator runs restic: both read the same files.
        return [self.restic, "-r", str(repo), "--no-cache", *args]

    def write_config(self, folder: Path, body: str, restic: str | None = None) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "policies.toml"
        head = f"""\
            [orchestrator]
            state_dir = "var"
            timezone = "UTC"
            restic_binary = "{restic or self.restic}"
            """
        config.write_text(textwrap.dedent(head) + textwrap.dedent(body))
        return config

    def orc(self, config: Path, *args: str) -> list[str]:
        return [*orchestrator_argv(), "--config", str(config), "--json", *args]


def policy(name: str, source: Path, target: str, extra: str = "") -> str:
    return f"""
        [policies.{name}]
        importance = "normal"
        sources = ["{source}"]
        targets = ["{target}"]
        daily = {{ at = "01:30", level = "incremental" }}
        {extra}
        """


def target(name: str, repo: Path) -> str:
    return f"""
        [targets.{name}]
        kind = "local"
        path = "{repo}"
        password = "secret:bench"
        """


def backup_level(stdout: str) -> str:
    """The level the orchestrator ran (its --json), to prove a pair compares like with like."""
    runs = json.loads(stdout).get("runs", [])
    if len(runs) != 1 or runs[0].get("outcome") != "success":
        raise BenchError(f"the orchestrator's backup did not succeed: {stdout[:300]}")
    return str(runs[0].get("level"))


# --- the timed pairs ----------------------------------------------------------------

Step = Callable[[], float]


def timed_pairs(s: Setup, only: set[str]) -> dict[str, tuple[Step, Step]]:
    """{row key: (ours, baseline)}: each step does its own untimed preparation and
    clean-up and returns the seconds of the one command timed."""
    pairs: dict[str, tuple[Step, Step]] = {}
    body, plain_repos = "", {}
    wanted = {
        "incremental": ("mixed",),
        "full": ("mixed", "files"),
        "restore": ("mixed",),
    }
    names = sorted({n for key, ns in wanted.items() if key in only for n in ns})
    for name in names:
        ours_repo, plain_repos[name] = s.repo(f"{name}-ours"), s.repo(f"{name}-plain")
        body += target(f"{name}-t", ours_repo) + policy(name, s.data[name], f"{name}-t")
    if not names:
        return pairs
    config = s.write_config(s.root / "own", body)
    for name in names:  # the first backups, untimed: the parents of what follows
        run(s.orc(config, "backup", name, "--level", "full"), s.orc_env)
        run(s.plain(plain_repos[name], "backup", str(s.data[name])), s.restic_env)

    def ours_backup(name: str, level: str) -> Step:
        def step() -> float:
            seconds, out = run(s.orc(config, "backup", name, "--level", level), s.orc_env)
            if backup_level(out) != level:
                raise BenchError(f"asked for {level}, the orchestrator ran {backup_level(out)}")
            return seconds

        return step

    def plain_backup(name: str, *flags: str) -> Step:
        argv = s.plain(plain_repos[name], "backup", *flags, str(s.data[name]))
        return lambda: run(argv, s.restic_env)[0]

    if "incremental" in only:
        pairs["incremental"] = (ours_backup("mixed", "incremental"), plain_backup("mixed"))
    if "full" in only:
        pairs["full-mixed"] = (ours_backup("mixed", "full"), plain_backup("mixed", "--force"))
        pairs["full-files"] = (ours_backup("files", "full"), plain_backup("files", "--force"))
    if "restore" in only:
        expected = tree_size(s.data["mixed"])

        def restored(argv: list[str], env: dict[str, str], dest: Path) -> float:
            seconds = run(argv, env)[0]
            got = tree_size(dest / str(s.data["mixed"]).lstrip("/"))
            shutil.rmtree(dest)
            os.sync()  # the next timed command does not pay for this one's writes
            if got != expected:
                raise BenchError(f"restored {got} (files, bytes), the data has {expected}")
            return seconds

        dest_ours, dest_plain = s.root / "restored-ours", s.root / "restored-plain"
        pairs["restore"] = (
            lambda: restored(
                s.orc(config, "restore", "mixed", "--to", str(dest_ours)), s.orc_env, dest_ours
            ),
            lambda: restored(
                s.plain(
                    plain_repos["mixed"],
                    "restore",
                    "latest",
                    "--verify",
                    "--target",
                    str(dest_plain),
                ),
                s.restic_env,
                dest_plain,
            ),
        )
    return pairs


def measure_pairs(pairs: dict[str, tuple[Step, Step]], rounds: int) -> dict[str, object]:
    """{key: ([ours seconds], [baseline seconds]) or the error that stopped it}.

    One warm-up of each (page cache, untimed), then `rounds` rounds; in each round every
    pair runs once, ours first in even rounds and the baseline first in odd ones."""
    results: dict[str, object] = {key: ([], []) for key in pairs}
    for k in range(-1, rounds):
        for key, (ours, base) in pairs.items():
            got = results[key]
            if isinstance(got, BenchError):
                continue
            try:
                order = [(0, ours), (1, base)] if k % 2 == 0 else [(1, base), (0, ours)]
                for side, step in order:
                    seconds = step()
                    if k >= 0:
                        got[side].append(seconds)  # type: ignore[index]
            except BenchError as exc:
                results[key] = exc
        print(f"  round {k + 1}/{rounds} done" if k >= 0 else "  warm-up done", file=sys.stderr)
    return results


PAIR_ROWS = {
    # key: (figure, baseline, goal as the largest ratio of medians)
    "incremental": (
        "no-change incremental, {mixed}",
        "restic backup (auto parent)",
        1.15,
    ),
    "full-mixed": ("full backup, {mixed}", "restic backup --force", 1.05),
    "full-files": ("full backup, {files}", "restic backup --force", 1.05),
    "restore": ("restore of a whole snapshot, {mixed}", "restic restore --verify", 1.05),
}


def pair_rows(results: Mapping[str, object], labels: dict[str, str]) -> list[rt.Row]:
    rows = []
    for key, got in results.items():
        figure, baseline, goal = PAIR_ROWS[key]
        figure = figure.format(**labels)
        if isinstance(got, BenchError):
            rows.append(rt.not_measured(figure, str(got), f"<= {goal:.2f}x"))
        else:
            ours, base = got  # type: ignore[misc]
            rows.append(rt.pair_row(figure, baseline, ours, base, goal))
    return rows


# --- process counts -------------------------------------------------------------------


class Counter:
    """A wrapper restic that logs each process's argv, then becomes the real restic."""

    def __init__(self, folder: Path, restic: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / "argv.log"
        self.binary = folder / "restic"
        self.binary.write_text(
            "#!/bin/sh\n"
            "# One line per process, each argument ended by \\037; one write, so that\n"
            "# processes started at once do not mix their lines.\n"
            "line=$(printf '%s\\037' \"$@\")\n"
            f"printf 'restic\\037%s\\n' \"$line\" >> '{self.log}'\n"
            f"exec '{restic}' \"$@\"\n"
        )
        self.binary.chmod(0o755)

    def commands(self, argv: list[str], env: dict[str, str]) -> list[str]:
        """The restic commands `argv` started, in order."""
        self.log.write_text("")
        run(argv, {**env, "PATH": f"{self.binary.parent}:{env.get('PATH', '')}"})
        return rt.commands_of(rt.parse_wrapper_log(self.log.read_text()))


def count_processes(s: Setup, samples: tuple[int, int]) -> tuple[list[rt.CountRow], list[str]]:
    """Processes of backup, no-change incremental, restore and drill on a small data set
    (counts do not depend on its size, the drill's sample aside)."""
    counter = Counter(s.root / "counting", s.restic)
    data, repo = s.data["count"], s.repo("counting-repo")

    def config_for(sample: int) -> Path:
        drill = f'drill = {{ every = "weekly", sample_files = {sample} }}'
        body = target("t", repo) + policy("c", data, "t", drill)
        return s.write_config(s.root / "counting", body, restic=str(counter.binary))

    rows: list[rt.CountRow] = []
    problems: list[str] = []
    config = config_for(samples[0])

    def op(label: str, goal: int | None, *args: str) -> list[str] | None:
        try:
            commands = counter.commands(s.orc(config, *args), s.orc_env)
        except BenchError as exc:
            problems.append(f"{label}: {exc}")
            return None
        if goal is not None:
            rows.append(rt.count_row(label, commands, goal))
        return commands

    # the first backup of a policy lists the repository (the catalog knows nothing yet)
    # and asks the binary's version (remembered after); every later one is one process
    op("backup (first of the policy: listing, version)", 3, "backup", "c", "--level", "full")
    op("backup (full)", 1, "backup", "c", "--level", "full")
    op("no-change incremental", 1, "backup", "c", "--level", "incremental")
    dest = s.root / "counting-restored"
    op("restore (whole snapshot)", 1, "restore", "c", "--to", str(dest))
    shutil.rmtree(dest, ignore_errors=True)
    for absent in (False, True):
        drills = {}
        for sample in samples:
            config = config_for(sample)
            hidden = data.with_name(data.name + ".away")
            if absent:
                data.rename(hidden)
            try:
                got = op("drill", None, "drill", "c")
            finally:
                if absent:
                    hidden.rename(data)
            if got is not None:
                drills[sample] = got
        what = "drill, live sources absent" if absent else "drill"
        if len(drills) == len(samples):
            rows += rt.same_at_every_size(what, drills, "sample files")
    return rows, problems


def daemon_forgets(s: Setup, sizes: tuple[int, ...]) -> rt.Row:
    """restic processes of a daemon pass's retention over N policies sharing a target.

    A first pass backs every policy up (and plans retention with one snapshot each); the
    pass measured, a day later, backs each up again (fulls: retention keeps the newest
    full), so `last = 1` removes one snapshot of every policy: its retention listing and
    removal are counted."""
    figure = "daemon pass over N policies sharing one target: retention's restic processes"
    counts = {}
    first = datetime.fromisoformat(PASS_NOW) - timedelta(days=1)
    try:
        for n in sizes:
            folder = s.root / f"daemon-{n}"
            counter = Counter(folder, s.restic)
            body = target("shared", s.repo(f"daemon-{n}-repo")) + "".join(
                policy(f"p{i:05d}", s.data["count"], "shared", "retention = { last = 1 }")
                for i in range(n)
            ).replace('level = "incremental"', 'level = "full"')  # the newest full is kept
            config = s.write_config(folder, body, restic=str(counter.binary))
            counter.commands(s.orc(config, "run", "--due", "--now", first.isoformat()), s.orc_env)
            commands = counter.commands(s.orc(config, "run", "--due", "--now", PASS_NOW), s.orc_env)
            if commands.count("backup") != n or commands.count("forget") != 1:
                raise BenchError(
                    f"the pass over {n} policies ran {commands.count('backup')} backups and "
                    f"{commands.count('forget')} forgets (expected {n} and 1)"
                )
            counts[n] = commands.count("forget") + commands.count("snapshots")
    except BenchError as exc:
        return rt.not_measured(figure, str(exc), "independent of N")
    return rt.independence_row(figure, counts, "N", "one per policy")


# --- the other benchmark scripts ----------------------------------------------------------


def script_rows(
    label: str, goal: str, script: str, restic: str, args: argparse.Namespace, shim: Path
) -> list[rt.Row]:
    """Rows of one of the other benchmarks, run with --json (and --rounds, --quick, --restic
    where its --help offers them); restic on its PATH is the one under test."""
    path = HERE / script
    if not path.exists():
        return [rt.not_measured(label, f"benchmarks/{script} does not exist", goal)]
    env = {
        **clean_env(),
        "PATH": f"{shim}:{os.environ.get('PATH', '')}",
        datasets.DATA_ENV: str(args.work / "data"),
    }
    helped = subprocess.run(
        [sys.executable, str(path), "--help"], env=env, capture_output=True, text=True, check=False
    )
    options = helped.stdout
    if "--json" not in options:
        return [rt.not_measured(label, f"benchmarks/{script} has no --json option yet", goal)]
    argv = [sys.executable, str(path), "--json"]
    if "--rounds" in options:
        argv += ["--rounds", str(args.rounds)]
    if args.quick and "--quick" in options:
        argv.append("--quick")
    if "--restic" in options:
        argv += ["--restic", restic]
    print(f"  {' '.join([script, *argv[3:]])}", file=sys.stderr)
    try:
        proc = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=args.timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return [rt.not_measured(label, f"{script} took longer than {args.timeout:.0f} s", goal)]
    return rt.rows_from_script(label, script, proc.returncode, proc.stdout, proc.stderr, goal)


# --- the whole run ----------------------------------------------------------------------


def one_restic(
    restic: str, version: str, args: argparse.Namespace, data: dict[str, Path], labels: dict
) -> str:
    only = set(args.only)
    print(f"restic {version} ({restic}):", file=sys.stderr)
    s = Setup(restic, args.work / f"restic-{version}", data)
    shim = s.root / "shim"
    shim.mkdir()
    (shim / "restic").symlink_to(Path(restic).resolve())
    rows: list[rt.Row] = []
    count_rows, problems = [], []
    started = datetime.now(UTC)
    load = os.getloadavg()[0]
    try:
        try:
            pairs = timed_pairs(s, only)
            if pairs:
                rows += pair_rows(measure_pairs(pairs, args.rounds), labels)
        except BenchError as exc:
            failed = {
                k: BenchError(f"set-up failed: {exc}") for k in PAIR_ROWS if k.split("-")[0] in only
            }
            rows += pair_rows(failed, labels)
        for key, script, label, goal in SCRIPTS:
            if key in only:
                rows += script_rows(label, goal, script, restic, args, shim)
        if "forget" in only:
            print("  daemon passes", file=sys.stderr)
            rows.append(daemon_forgets(s, args.daemon_policies))
        if "counts" in only:
            print("  process counts", file=sys.stderr)
            count_rows, problems = count_processes(s, args.drill_samples)
    finally:
        if not args.keep:
            shutil.rmtree(s.root, ignore_errors=True)
    head = (
        f"measured on {started:%Y-%m-%d %H:%M} UTC, {machine()}, restic {version} ({restic}); "
        f"{args.rounds} rounds{' (--quick)' if args.quick else ''}, load average "
        f"{load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    )
    out = [head, "", rt.render_table(rows)]
    if count_rows or problems:
        out += ["", "restic processes per operation (wrapper restic on PATH logging argv):", ""]
        out += [rt.render_counts(count_rows)] if count_rows else []
        out += [f"not measured: {p}" for p in problems]
    return "\n".join(out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Issue 15's figures, side by side with plain restic (and restverify).",
        epilog=f"ROWS: {', '.join(ALL_ROWS)} (comma-separated; default all).",
    )
    parser.add_argument(
        "--quick", action="store_true", help="data sets 1/20 of the size, 2 rounds: a smoke run"
    )
    parser.add_argument("--rounds", type=int, help="timed rounds of each pair (default 5)")
    parser.add_argument(
        "--restic",
        action="append",
        metavar="PATH",
        help="restic binary (repeat for one table each; default restic on PATH)",
    )
    parser.add_argument("--only", action="append", metavar="ROWS", help="only these rows")
    parser.add_argument(
        "--work", type=Path, help="where data sets are kept (default ~/.cache/orchestrator-bench)"
    )
    parser.add_argument("--keep", action="store_true", help="keep repositories after the run")
    parser.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        help="seconds each other benchmark script may take (default 3600)",
    )
    args = parser.parse_args(argv)
    only = [r.strip() for item in args.only or [",".join(ALL_ROWS)] for r in item.split(",")]
    unknown = [r for r in only if r not in ALL_ROWS]
    if unknown:
        parser.error(f"--only: unknown row {unknown[0]!r}; rows are {', '.join(ALL_ROWS)}")
    args.only = only
    if args.rounds is None:
        args.rounds = 2 if args.quick else 5
    if args.rounds < 1:
        parser.error(f"--rounds: {args.rounds} is not a positive number of rounds")
    restics = args.restic or [shutil.which("restic") or "restic"]
    for r in restics:
        if not (shutil.which(r) or (Path(r).is_file() and os.access(r, os.X_OK))):
            parser.error(f"--restic: {r} is not an executable file")
    args.restic = [shutil.which(r) or str(Path(r).resolve()) for r in restics]
    args.work = (args.work or Path.home() / ".cache" / "orchestrator-bench").resolve()
    scale = 20 if args.quick else 1
    args.mixed = (2000 // scale, 1024 * MIB // scale)
    args.files = 600 // scale
    args.daemon_policies = (3, 6) if args.quick else (10, 40)
    args.drill_samples = (5, 50)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    versions = [restic_version(r) for r in args.restic]  # not restic: say so before building
    # the bytecode an installed package has, written before anything is timed
    compileall.compile_dir(str(HERE.parent / "orchestrator"), quiet=1)
    data_root = args.work / "data"
    files, total = args.mixed
    print(f"data sets in {data_root} (built once, kept)", file=sys.stderr)
    only, data = set(args.only), {}
    if only & {"incremental", "full", "restore"}:
        data["mixed"] = datasets.mixed(data_root / f"mixed-{files}", files, total)
    if "full" in only:
        data["files"] = datasets.same_size(data_root / f"same-{args.files}", args.files, MIB)
    if only & {"forget", "counts"}:
        data["count"] = datasets.mixed(data_root / "count-200", 200, 20 * MIB)
    labels = {
        "mixed": f"{total / MIB:.0f} MiB in {files:,} files",
        "files": f"{args.files} files of 1 MiB",
    }
    tables = [
        one_restic(r, v, args, data, labels) for r, v in zip(args.restic, versions, strict=True)
    ]
    print("\n\n".join(tables))


if __name__ == "__main__":
    try:
        main()
    except BenchError as exc:
        sys.exit(f"benchmark: {exc}")
    except KeyboardInterrupt:
        sys.exit(130)
