"""The benchmark's data sets, built once and kept: the same seed gives the same bytes.

A data set is a folder beside a `NAME.complete` stamp naming how it was made (outside
the folder, so that it is not backed up with the data); a folder without the right stamp
(an interrupted build, other parameters) is built again.
Two thirds of the mixed set is random (incompressible), one third unique log lines
(compressible; restic 0.18 compresses, 0.14 does not), so neither restic version is
flattered by the data.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path

MIB = 1 << 20
# Where benchmarks/run.py keeps the data sets; it sets this for the scripts it runs, so
# that they can share a set (`small_files(data_root() / "small-50000")`) instead of
# building their own.
DATA_ENV = "ORCHESTRATOR_BENCH_DATA"


def data_root() -> Path:
    return Path(os.environ.get(DATA_ENV) or Path.home() / ".cache/orchestrator-bench/data")


def mixed_sizes(files: int, total: int, seed: int = 15) -> list[int]:
    """File sizes spread over three orders of magnitude (log-normal), summing to `total`."""
    rng = random.Random(seed)
    raw = [rng.lognormvariate(0.0, 1.5) for _ in range(files)]
    scale = total / sum(raw)
    sizes = [max(1, int(r * scale)) for r in raw]
    sizes[-1] += total - sum(sizes)  # exact total; the last file absorbs the rounding
    if sizes[-1] < 1:
        raise ValueError(f"cannot spread {total} bytes over {files} files")
    return sizes


def _text(rng: random.Random, size: int, serial: int) -> bytes:
    """Unique log lines (no two chunks alike), cut to `size` bytes."""
    lines, length, n = [], 0, 0
    while length < size:
        line = b"2026-11-24T01:%02d:%02d INFO request %09d from 10.0.%d.%d took %d ms\n" % (
            n // 60 % 60,
            n % 60,
            serial * 1_000_000 + n,
            rng.randrange(256),
            n % 256,
            n % 997,
        )
        lines.append(line)
        length += len(line)
        n += 1
    return b"".join(lines)[:size]


def _build(root: Path, stamp: str, fill: Callable[[Path], None]) -> Path:
    marker = root.with_name(root.name + ".complete")
    if marker.exists() and marker.read_text() == stamp:
        return root
    marker.unlink(missing_ok=True)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    fill(root)
    marker.write_text(stamp)
    return root


def mixed(root: Path, files: int = 2000, total: int = 1024 * MIB) -> Path:
    """`files` files of log-normal sizes totalling `total` bytes, 100 to a folder."""

    def fill(root: Path) -> None:
        rng = random.Random(2000)
        for i, size in enumerate(mixed_sizes(files, total)):
            folder = root / f"d{i // 100:03d}"
            folder.mkdir(exist_ok=True)
            if i % 3 == 2:
                (folder / f"log-{i:05d}.txt").write_bytes(_text(rng, size, i))
            else:
                (folder / f"blob-{i:05d}.bin").write_bytes(rng.randbytes(size))

    return _build(root, f"mixed {files} {total} v1", fill)


def same_size(root: Path, files: int = 600, size: int = MIB) -> Path:
    """`files` random files of exactly `size` bytes each (restic 0.18's slow case)."""

    def fill(root: Path) -> None:
        rng = random.Random(600)
        for i in range(files):
            (root / f"f{i:05d}.bin").write_bytes(rng.randbytes(size))

    return _build(root, f"same-size {files} {size} v1", fill)


def small_files(root: Path, files: int = 50_000, size: int = 2048) -> Path:
    """`files` small files of up to `size` bytes, 1,000 to a folder (per-file costs dominate)."""

    def fill(root: Path) -> None:
        rng = random.Random(50_000)
        for i in range(files):
            folder = root / f"d{i // 1000:03d}"
            if i % 1000 == 0:
                folder.mkdir()
            (folder / f"s{i:06d}").write_bytes(rng.randbytes(rng.randrange(1, size + 1)))

    return _build(root, f"small {files} {size} v1", fill)
