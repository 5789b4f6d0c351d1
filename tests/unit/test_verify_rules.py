"""The pure rules of verification: rotation, budgets, samples, RTO extrapolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.restic.commands import parse_check_problems
from orchestrator.verify import parse_size
from orchestrator.verify.drill import (
    choose_sample,
    extrapolate,
    include_pattern,
    live_path,
    recently_drilled,
)
from orchestrator.verify.media import (
    is_content_name,
    media_coverage,
    plan_budget,
    pruned_files,
    snapshot_files,
    vanished,
)
from orchestrator.verify.subset import next_part, subset_coverage, subset_total

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, tzinfo=UTC)
HEX = "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20GiB", 20 * 2**30),
        ("500MB", 500 * 10**6),
        ("20G", 20 * 2**30),
        ("1.5KiB", 1536),
        ("100", 100),
        ("100B", 100),
        ("2 TiB", 2 * 2**40),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("fraction", "total"),
    [(None, 8), ("1/8", 8), ("3/5", 5), ("10%", 10), ("30%", 4), ("100%", 1), ("1/1", 1)],
)
def test_subset_total(fraction: str | None, total: int) -> None:
    assert subset_total(fraction) == total


@pytest.mark.parametrize(
    ("total", "read", "expected"),
    [
        (4, {}, 1),
        (4, {1: T0}, 2),
        (4, {1: T0, 3: T0}, 2),
        (3, {1: T0 + timedelta(days=2), 2: T0, 3: T0 + timedelta(days=1)}, 2),
        (3, {1: T0, 2: T0, 3: T0}, 1),  # tie: lowest part
    ],
)
def test_next_part(total: int, read: dict, expected: int) -> None:
    assert next_part(total, read) == expected


@pytest.mark.parametrize("total", [1, 2, 5, 8])
def test_n_rotated_runs_read_every_part_then_start_over(total: int) -> None:
    read: dict[int, datetime] = {}
    order = []
    for run in range(2 * total):
        part = next_part(total, read)
        order.append(part)
        read[part] = T0 + timedelta(days=run)
        if run == total - 1:
            cov = subset_coverage(total, read, T0 + timedelta(days=run))
            assert cov.complete and cov.percent == 100
    assert order == list(range(1, total + 1)) * 2


def test_subset_coverage_describes_runs_and_days() -> None:
    read = {1: T0, 2: T0 + timedelta(days=10), 3: T0 + timedelta(days=23)}
    cov = subset_coverage(3, read, T0 + timedelta(days=23))
    assert cov.describe(3) == "100% of data read within the last 3 runs / 23 days (3 of 3 parts)"
    assert subset_coverage(8, {}, T0).describe() == "0% of data read (0 of 8 parts)"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (f"data/ab/{HEX}", True),
        (f"index/{HEX}", True),
        (f"data/ab/{HEX}-tmp-123456", False),
        (f"data/ab/{HEX[:-1]}", False),
        (f"keys/{HEX.upper()}", False),
        ("snapshots/.nfs0001", False),
    ],
)
def test_is_content_name(path: str, expected: bool) -> None:
    assert is_content_name(path) is expected


def test_vanished() -> None:
    assert vanished({"a": 1, "b": 2, "c": 3}, {"b": 2, "d": 4}) == ["a", "c"]


@pytest.mark.parametrize(
    ("before", "after", "ours"),
    [
        pytest.param(["data/aa/1", "index/2"], [], ["data/aa/1", "index/2"], id="all ours"),
        pytest.param(["data/aa/1", "data/bb/3"], ["data/bb/3"], ["data/aa/1"], id="some"),
        pytest.param(["index/2"], ["index/2", "index/4"], [], id="new index written: none"),
        pytest.param(["snapshots/5", "keys/6"], [], [], id="prune never removes these"),
        pytest.param([], [], [], id="gone before the prune began: not ours"),
    ],
)
def test_item4_pruned_files_are_the_packs_and_indexes_that_went_during_it(
    before: list[str], after: list[str], ours: list[str]
) -> None:
    """Item 4: a file already gone when our prune began is never in `before`, so a
    deletion by someone else before it stays damage."""
    assert pruned_files(dict.fromkeys(before, 1), dict.fromkeys(after, 1)) == ours


def test_item4_snapshot_files_of_forgotten_ids() -> None:
    assert snapshot_files([HEX]) == [f"snapshots/{HEX}"]


@pytest.mark.parametrize(
    ("sizes", "verified", "budget", "expected"),
    [
        ({"a": 5, "b": 5, "c": 5}, {}, None, ["a", "b", "c"]),
        ({"a": 5, "b": 5, "c": 5}, {}, 10, ["a", "b"]),
        ({"a": 50, "b": 5}, {}, 10, ["a"]),  # at least one file, even over budget
        ({"a": 5, "b": 50, "c": 1}, {}, 10, ["a"]),  # stops: b is never starved by c
        ({"a": 5, "b": 5, "c": 5}, {"a": T0, "b": None, "c": None}, 10, ["b", "c"]),
        ({"a": 5, "b": 5}, {"a": T0 + timedelta(1), "b": T0}, 5, ["b"]),
    ],
)
def test_plan_budget(sizes: dict, verified: dict, budget: int | None, expected: list) -> None:
    assert plan_budget(sizes, verified, budget) == expected


def test_budget_rotation_covers_the_repository() -> None:
    sizes = {f"f{i}": 3 + i for i in range(10)}
    verified: dict[str, datetime | None] = {}
    runs = 0
    while media_coverage(sizes, verified).percent < 100:
        for path in plan_budget(sizes, verified, 12):
            verified[path] = T0 + timedelta(hours=runs)
        runs += 1
        assert runs <= len(sizes)
    assert media_coverage(sizes, verified).files_verified == 10


SIZES = {"/d/big": 1000, "/d/a": 10, "/d/b": 20, "/d/c": 30, "/d/e": 40}


@pytest.mark.parametrize(
    ("files", "nbytes", "count", "must"),
    [
        (None, None, 5, ["/d/big"]),  # everything
        (1, None, 1, ["/d/big"]),
        (3, None, 3, ["/d/big"]),
        (None, 1, 1, ["/d/big"]),  # the largest even when alone it exceeds the bytes
        (None, 1000 + 10, 2, ["/d/big", "/d/a"]),
        (2, 10_000, 2, ["/d/big"]),
    ],
)
def test_choose_sample(files: int | None, nbytes: int | None, count: int, must: list) -> None:
    sample = choose_sample(SIZES, seed=7, sample_files=files, sample_bytes=nbytes)
    assert len(sample) == count
    assert sample[0] == "/d/big"
    assert set(must) <= set(sample)
    assert len(set(sample)) == len(sample)


def test_choose_sample_is_reproducible_and_seed_dependent() -> None:
    sizes = {f"/f{i}": i + 1 for i in range(50)}
    a = choose_sample(sizes, 1, sample_files=5)
    assert a == choose_sample(sizes, 1, sample_files=5)
    assert any(choose_sample(sizes, s, sample_files=5) != a for s in range(2, 6))


def test_successive_drills_rotate_through_all_files() -> None:
    sizes = {f"/f{i}": 1 for i in range(12)} | {"/big": 100}
    history: list[list[str]] = []
    covered: set[str] = set()
    for seed in range(4):  # 12 small files, 3 new ones per drill (+ the largest)
        recent = recently_drilled(history, set(sizes))
        sample = choose_sample(sizes, seed, sample_files=4, recent=recent)
        assert not (set(sample) - {"/big"}) & covered
        covered |= set(sample)
        history.insert(0, sample)
    assert covered == set(sizes)
    # the round is complete: the next drill starts a new one
    assert recently_drilled(history, set(sizes)) != set(sizes)


@pytest.mark.parametrize(
    ("restored", "seconds", "startup", "total", "throughput", "full"),
    [
        (100, 2.0, 1.0, 1000, 100.0, 11.0),
        (100, 2.0, 5.0, 1000, 100.0, 11.0),  # start-up capped at half the restore time
        (100, 2.0, 0.0, 1000, 50.0, 20.0),
        (0, 1.0, 0.5, 0, 0.0, 0.5),
    ],
)
def test_extrapolate(
    restored: int, seconds: float, startup: float, total: int, throughput: float, full: float
) -> None:
    ex = extrapolate(restored, seconds, startup, total)
    assert ex.throughput == pytest.approx(throughput)
    assert ex.full_seconds == pytest.approx(full)


@pytest.mark.parametrize(
    ("paths", "node", "expected"),
    [
        (["/srv/data"], "/srv/data/a/b.txt", "/srv/data/a/b.txt"),
        (["/srv/data"], "/data/a/b.txt", "/srv/data/a/b.txt"),
        (["/srv/data", "/etc"], "/etc/hosts", "/etc/hosts"),
        (["/srv/data"], "/other/x", None),
    ],
)
def test_live_path(paths: list[str], node: str, expected: str | None) -> None:
    assert live_path(paths, node) == expected


def test_include_pattern_escapes_globs() -> None:
    assert include_pattern("/d/a[1]*?.txt") == "/d/a\\[1]\\*\\?.txt"


def test_check_output_keeps_only_findings() -> None:
    text = (
        "using temporary cache in /tmp/x\ncreate exclusive lock for repository\nload indexes\n"
        "check all packs\n[0:00] 100.00%  1 / 1 snapshots\n"
        f"pack {HEX}: does not exist\nFatal: repository contains errors\n"
    )
    assert parse_check_problems(text) == (f"pack {HEX}: does not exist",)
