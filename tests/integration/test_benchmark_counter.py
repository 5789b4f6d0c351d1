"""The benchmark's counting restic (benchmarks/run.py, Counter): a wrapper on PATH that logs
each process's argv and then is the real restic. Its counts are the process-count rows of
the benchmark table, so they must be exact: every process logged once, arguments with
spaces intact, processes started at once each on a line of their own."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _bench_run():
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("bench_run", BENCHMARKS / "run.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_counter_logs_every_restic_process_and_runs_the_real_one(
    tmp_path: Path, restic_bin: str
) -> None:
    bench = _bench_run()
    counter = bench.Counter(tmp_path / "wrap", restic_bin)
    out = tmp_path / "out"
    script = (
        # eight at once (each must land on its own line), then one with a spaced argument
        "for i in 1 2 3 4 5 6 7 8; do restic version >/dev/null & done; wait; "
        f"restic --repo '{tmp_path}/no such repo' --no-cache snapshots 2>/dev/null; "
        f"restic version > '{out}'"
    )
    commands = counter.commands(["sh", "-c", script], bench.clean_env())
    assert commands == ["version"] * 8 + ["snapshots", "version"]
    argvs = bench.rt.parse_wrapper_log(counter.log.read_text())
    assert argvs[8] == ["restic", "--repo", f"{tmp_path}/no such repo", "--no-cache", "snapshots"]
    assert out.read_text().startswith("restic 0.")  # the real restic answered
