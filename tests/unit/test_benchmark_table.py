"""The benchmark command's table (benchmarks/report_table.py): how rows of the other
benchmark scripts are merged, what a failing script becomes, how the counting wrapper's
log is read. Pure functions only: no benchmark runs in the test suite."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import report_table as rt

pytestmark = pytest.mark.unit

TIMED = {
    "figure": "plan --days 31",
    "median_s": 0.42,
    "min_s": 0.4,
    "peak_mib": 120.4,
    "goal": "< 1 s, < 200 MiB",
    "met": True,
}
PAIRED = {
    "figure": "drill, 1.0 GiB",
    "ours_median_s": 8.0,
    "ours_min_s": 7.5,
    "baseline": "restverify run",
    "baseline_median_s": 10.0,
    "baseline_min_s": 9.0,
    "ratio": 0.8,
    "goal": "<= 0.8x",
    "met": True,
}


def test_pair_row_ratio_of_medians_and_goal() -> None:
    row = rt.pair_row("full", "restic backup --force", [2.0, 1.0, 3.0], [1.0, 2.0, 2.0], 1.05)
    assert row.ours == rt.Timing(2.0, 1.0)
    assert row.base == rt.Timing(2.0, 1.0)
    assert row.ratio == pytest.approx(1.0)
    assert row.met is True and row.goal == "<= 1.05x"
    slow = rt.pair_row("full", "b", [2.2], [2.0], 1.05)
    assert slow.ratio == pytest.approx(1.1) and slow.met is False


def test_timing_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no measurement"):
        rt.Timing.of([])


@pytest.mark.parametrize(
    "stdout",
    [
        json.dumps([TIMED, PAIRED]),  # one list
        json.dumps({"rows": [TIMED, PAIRED]}),  # an object holding the rows
        "building 10,000 policies\n" + json.dumps(TIMED) + "\n" + json.dumps(PAIRED) + "\n",
    ],
    ids=["list", "object", "json-lines"],
)
def test_rows_of_both_shapes_are_merged(stdout: str) -> None:
    timed, paired = rt.rows_from_script("calendar", "calendar_scale.py", 0, stdout, "")
    assert timed.figure == "plan --days 31"
    assert timed.ours == rt.Timing(0.42, 0.4) and timed.base is None and timed.ratio is None
    assert timed.extra == "120 MiB peak" and timed.met is True
    assert paired.ours == rt.Timing(8.0, 7.5) and paired.base == rt.Timing(10.0, 9.0)
    assert paired.baseline == "restverify run" and paired.ratio == 0.8 and paired.met is True


def test_a_row_without_ratio_gets_the_ratio_of_medians() -> None:
    item = {k: v for k, v in PAIRED.items() if k != "ratio"}
    (row,) = rt.rows_from_script("drill", "d.py", 0, json.dumps([item]), "")
    assert row.ratio == pytest.approx(0.8)


def test_a_failing_script_is_one_row_saying_why() -> None:
    (row,) = rt.rows_from_script(
        "status at scale",
        "status_scale.py",
        1,
        "",
        "building...\nTraceback\nKeyError: 'x'\n\n",
        "< 0.5 s",
    )
    assert row.figure == "status at scale"
    assert row.note == "not measured: status_scale.py exited 1: KeyError: 'x'"
    assert row.ours is None and row.met is None and row.goal == "< 0.5 s"


def test_a_silent_script_is_not_measured() -> None:
    (row,) = rt.rows_from_script("media", "media.py", 0, "ratio 6.1x\n", "")
    assert row.note == "not measured: media.py printed no JSON rows"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"median_s": "fast"}, "median_s is 'fast', not a number"),
        ({"min_s": None}, "min_s is None, not a number"),
        ({"met": "yes"}, "met is 'yes', not true, false or null"),
        ({"peak_mib": True}, "peak_mib is True, not a number"),
    ],
)
def test_a_bad_row_is_not_measured_and_names_the_field(change: dict, why: str) -> None:
    (row,) = rt.rows_from_script("c", "c.py", 0, json.dumps([{**TIMED, **change}]), "")
    assert row.figure == "plan --days 31"
    assert row.note == f"not measured: bad row from the script ({why})"


def test_a_row_without_figure_is_named_by_the_script_output() -> None:
    (row,) = rt.rows_from_script("c", "c.py", 0, json.dumps([{"median_s": 1}]), "")
    assert row.figure == "c"
    assert row.note == (
        'not measured: bad row from the script (a row without a figure: {"median_s": 1})'
    )


def test_table_has_every_row_with_its_columns() -> None:
    rows = [
        rt.pair_row("no-change incremental", "restic backup", [1.2, 1.0], [1.0, 0.9], 1.15),
        rt.row_from_json(TIMED),
        rt.not_measured("drill vs restverify", "drill_vs_restverify.py exited 2", "<= 0.8x"),
        rt.independence_row("forget processes", {10: 1, 40: 1}, "N", "one per policy"),
    ]
    lines = rt.render_table(rows).splitlines()
    assert len(lines) == 2 + len(rows)
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    assert cells[0] == [
        "figure",
        "ours median / min (s)",
        "baseline",
        "baseline median / min (s)",
        "ratio",
        "goal",
        "met",
    ]
    assert cells[2] == [
        "no-change incremental",
        "1.10 / 1.00",
        "restic backup",
        "0.95 / 0.90",
        "1.16x",
        "<= 1.15x",
        "NO",
    ]
    assert cells[3] == [
        "plan --days 31",
        "0.42 / 0.40 (120 MiB peak)",
        "",
        "",
        "",
        "< 1 s, < 200 MiB",
        "yes",
    ]
    assert cells[4] == [
        "drill vs restverify",
        "not measured: drill_vs_restverify.py exited 2",
        "",
        "",
        "",
        "<= 0.8x",
        "",
    ]
    assert cells[5] == [
        "forget processes",
        "1 at N=10, 1 at N=40",
        "",
        "",
        "",
        "independent of N (today one per policy)",
        "yes",
    ]
    assert len({len(line) for line in lines}) == 1  # columns aligned


def test_independence_needs_two_sizes_and_equal_counts() -> None:
    assert rt.independence_row("f", {3: 3, 6: 6}, "N", "x").met is False
    with pytest.raises(ValueError, match="two N"):
        rt.independence_row("f", {3: 1}, "N", "x")


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["restic", "--repo", "/r", "--no-cache", "backup", "--json", "/data"], "backup"),
        (["restic", "-r", "/r", "-o", "sftp.command=ssh x", "snapshots"], "snapshots"),
        (["restic", "--repo=/r", "--json", "forget", "--dry-run"], "forget"),
        (["restic", "version"], "version"),
        (["restic", "--no-cache"], "(none)"),
    ],
)
def test_restic_command_skips_global_options_and_their_values(argv: list, command: str) -> None:
    assert rt.restic_command(argv) == command


def test_wrapper_log_and_summary() -> None:
    sep = rt.ARG_SEPARATOR
    log = (
        f"restic{sep}version{sep}\n"
        f"restic{sep}--repo{sep}/a b{sep}snapshots{sep}\n"
        f"restic{sep}--repo{sep}/a b{sep}dump{sep}latest{sep}/x{sep}\n"
        f"restic{sep}--repo{sep}/a b{sep}dump{sep}latest{sep}/y{sep}\n"
    )
    argvs = rt.parse_wrapper_log(log)
    assert argvs[1] == ["restic", "--repo", "/a b", "snapshots"]
    commands = rt.commands_of(argvs)
    assert commands == ["version", "snapshots", "dump", "dump"]
    row = rt.count_row("drill", commands, 1)
    assert (row.processes, row.commands, row.met) == (4, "version, snapshots, dump x2", False)


def test_same_at_every_size() -> None:
    rows = rt.same_at_every_size("drill", {50: ["ls", "restore"], 5: ["ls", "restore"]}, "sample")
    assert [(r.operation, r.met) for r in rows] == [
        ("drill (sample 5)", True),
        ("drill (sample 50)", True),
    ]
    grown = rt.same_at_every_size("drill", {5: ["dump"] * 5, 50: ["dump"] * 50}, "sample")
    assert {r.met for r in grown} == {False}
    text = rt.render_counts(grown)
    assert "| drill (sample 50) | 50" in text and "dump x50" in text


@pytest.mark.parametrize(
    ("files", "total"), [(2000, 1 << 30), (100, (1 << 30) // 20), (200, 20 << 20)]
)
def test_mixed_sizes_are_exact_and_spread(files: int, total: int) -> None:
    import datasets

    sizes = datasets.mixed_sizes(files, total)
    assert len(sizes) == files and sum(sizes) == total and min(sizes) >= 1
    assert max(sizes) > 10 * sorted(sizes)[files // 2]  # spread, not uniform
    assert sizes == datasets.mixed_sizes(files, total)  # the same seed, the same data set
