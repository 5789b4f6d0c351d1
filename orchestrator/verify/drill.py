"""Restore drills: restore a seeded sample of the newest snapshot and prove it is right.

restic's exit code is never trusted alone (with one flipped byte in a pack, restore
has been seen to exit 0 and write an empty file): every restored file's size is
compared with the snapshot's own record (`ls --json`) and its SHA-256 with the live
source file when that is unchanged since the snapshot, else with `restic dump`.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from orchestrator.errors import CancelledError, ResticError
from orchestrator.restic import commands, features
from orchestrator.restic.commands import LsNode, Snapshot
from orchestrator.restic.runner import Repository, Runner
from orchestrator.verify import (
    CONTENT_MISMATCH,
    NOT_RESTORED,
    RESTORE_ERROR,
    RTO_EXCEEDED,
    SIZE_MISMATCH,
    Damage,
    TierResult,
)

CHUNK = 1 << 20


# --- pure rules -------------------------------------------------------------------------


def recently_drilled(previous_samples: Iterable[Sequence[str]], current: set[str]) -> set[str]:
    """Files drilled in the recent past (newest sample first), going back only until the
    union would cover every current file: then a new round of the rotation begins."""
    seen: set[str] = set()
    for sample in previous_samples:
        grown = seen | (set(sample) & current)
        if grown >= current:
            break
        seen = grown
    return seen


def choose_sample(
    sizes: Mapping[str, int],
    seed: int,
    sample_files: int | None = None,
    sample_bytes: int | None = None,
    recent: set[str] | frozenset[str] = frozenset(),
) -> list[str]:
    """The largest file always; then files not drilled recently, then the others, each group
    in an order fixed by `seed`; up to `sample_files` files and `sample_bytes` bytes (the
    largest file counts, even when alone it exceeds the bytes). Neither limit: everything."""
    if not sizes:
        return []
    largest = max(sizes, key=lambda p: (sizes[p], p))
    if sample_files is None and sample_bytes is None:
        return [largest, *sorted(p for p in sizes if p != largest)]
    rng = random.Random(seed)
    rest = sorted(p for p in sizes if p != largest)
    fresh = [p for p in rest if p not in recent]
    stale = [p for p in rest if p in recent]
    rng.shuffle(fresh)
    rng.shuffle(stale)
    chosen, spent = [largest], sizes[largest]
    for path in fresh + stale:
        if sample_files is not None and len(chosen) >= sample_files:
            break
        if sample_bytes is not None and spent + sizes[path] > sample_bytes:
            continue
        chosen.append(path)
        spent += sizes[path]
    return chosen


@dataclass(frozen=True)
class Extrapolation:
    throughput: float  # bytes per second of data restored, start-up cost excluded
    overhead_seconds: float  # restic's start-up (key derivation, index) counted once
    full_seconds: float  # the whole snapshot, extrapolated


def extrapolate(
    restored_bytes: int, restore_seconds: float, startup_seconds: float, total_bytes: int
) -> Extrapolation:
    """Full-restore time = start-up + total bytes / measured throughput.

    The start-up cost is estimated by a restic run that reads no file data (`ls`), but
    never more than half the restore's time is attributed to it: a tiny sample then
    still extrapolates pessimistically rather than optimistically."""
    overhead = max(0.0, min(startup_seconds, restore_seconds / 2))
    data_seconds = max(restore_seconds - overhead, 1e-6)
    throughput = restored_bytes / data_seconds if restored_bytes else 0.0
    if total_bytes == 0:
        return Extrapolation(throughput, overhead, overhead)
    if throughput <= 0:
        return Extrapolation(0.0, overhead, float("inf"))
    return Extrapolation(throughput, overhead, overhead + total_bytes / throughput)


def live_path(snapshot_paths: Sequence[str], node_path: str) -> str | None:
    """Where a snapshot file lives on this machine: restic 0.14 stores an absolute source
    '/srv/data' as '/srv/data/...' or, for a single source, as '/data/...'."""
    for src in snapshot_paths:
        src = src.rstrip("/") or "/"
        if node_path == src or node_path.startswith(src.rstrip("/") + "/"):
            return node_path
        base = "/" + os.path.basename(src)
        if node_path == base or node_path.startswith(base + "/"):
            return os.path.dirname(src) + node_path
    return None


def include_pattern(path: str) -> str:
    """restic's --include takes glob patterns: escape the characters that glob."""
    out = []
    for ch in path:
        if ch in "\\*?[":
            out.append("\\")
        out.append(ch)
    return "".join(out)


# --- the drill ----------------------------------------------------------------------------


def sha256_path(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with path.open("rb") as fh:
        while got := fh.readinto(buf):
            h.update(view[:got])
            n += got
    return h.hexdigest(), n


def _mtime_equal(st: os.stat_result, recorded: datetime | None) -> bool:
    if recorded is None:
        return False
    return (
        st.st_mtime_ns // 1000 == int(recorded.timestamp() * 1_000_000 + 0.5)
        or abs(st.st_mtime_ns / 1e9 - recorded.timestamp()) < 1e-6
    )


@dataclass
class FileCheck:
    path: str
    size: int
    reference: str  # live | dump | none
    ok: bool


def run_drill(
    runner: Runner,
    repo: Repository,
    snapshot: Snapshot,
    scratch: Path,
    seed: int,
    sample_files: int | None,
    sample_bytes: int | None,
    rto_minutes: int | None,
    previous_samples: Sequence[Sequence[str]] = (),
    after_restore: Callable[[Path], None] | None = None,
) -> TierResult:
    """Restore the sample into `scratch`, compare, measure; `scratch` is removed at the end
    whatever happens. `after_restore` lets a test change a restored file before the
    comparison (the drill must then report it)."""
    result = TierResult(tier="drill")
    started = time.monotonic()
    try:
        try:
            nodes, ls_run = commands.ls(runner, repo, snapshot.id)
        except ResticError as exc:
            if exc.kind != features.REPOSITORY_DAMAGED:
                raise  # could not run (locked, password, network): a failure, not damage
            # restic lists the snapshot but cannot read its file list: nothing restores.
            result.damage.append(Damage(RESTORE_ERROR, None, exc.message))
            result.message = (
                f"drill of snapshot {snapshot.short_id}: its file list cannot be read, "
                "the repository is damaged"
            )
            return result  # no details: nothing was sampled, restored or measured
        files = {n.path: n for n in nodes if n.type == "file"}
        sizes = {p: n.size for p, n in files.items()}
        recent = recently_drilled(previous_samples, set(sizes))
        sample = choose_sample(sizes, seed, sample_files, sample_bytes, recent)
        total_bytes = sum(sizes.values())
        sample_total = sum(sizes[p] for p in sample)
        scratch.mkdir(parents=True, exist_ok=False)
        restore_started = time.monotonic()
        whole = sample_files is None and sample_bytes is None
        try:
            commands.restore(
                runner,
                repo,
                snapshot.id,
                scratch,
                includes=() if whole else [include_pattern(p) for p in sample],
                verify=False,
            )
        except CancelledError:
            raise
        except ResticError as exc:
            if exc.kind not in (features.FATAL, features.PARTIAL, features.REPOSITORY_DAMAGED):
                raise  # could not run (locked, password, network): a failure, not damage
            result.damage.append(Damage(RESTORE_ERROR, None, exc.message))
        restore_seconds = time.monotonic() - restore_started
        if after_restore is not None:
            after_restore(scratch)
        checks = [
            _compare(runner, repo, snapshot, files[p], scratch, result.damage) for p in sample
        ]
        ex = extrapolate(sample_total, restore_seconds, ls_run.seconds, total_bytes)
        rto_ok = None
        if rto_minutes is not None:
            rto_ok = ex.full_seconds <= rto_minutes * 60
            if not rto_ok:
                result.damage.append(
                    Damage(
                        RTO_EXCEEDED,
                        None,
                        f"a full restore would take about {ex.full_seconds / 60:.1f} minutes "
                        f"at the measured {ex.throughput / 1e6:.1f} MB/s; the target is "
                        f"{rto_minutes} minutes",
                        expected=f"{rto_minutes} min",
                        actual=f"{ex.full_seconds / 60:.1f} min",
                    )
                )
        mismatches = [c.path for c in checks if not c.ok]
        result.files = len(checks)
        result.bytes = sample_total
        result.details = {
            "snapshot": snapshot.id,
            "seed": seed,
            "sample": sample,
            "files_in_snapshot": len(files),
            "bytes_in_snapshot": total_bytes,
            "files_checked": len(checks),
            "bytes_checked": sample_total,
            "checked_against_live": sum(1 for c in checks if c.reference == "live"),
            "checked_against_dump": sum(1 for c in checks if c.reference == "dump"),
            "mismatches": mismatches,
            "restore_seconds": round(restore_seconds, 3),
            "startup_seconds": round(ex.overhead_seconds, 3),
            "throughput_bytes_per_second": round(ex.throughput, 1),
            "extrapolated_full_restore_seconds": round(ex.full_seconds, 1)
            if ex.full_seconds != float("inf")
            else None,
            "rto_minutes": rto_minutes,
            "rto_met": rto_ok,
        }
        result.message = (
            f"drill of snapshot {snapshot.short_id}: {len(checks)} files "
            f"({sample_total} bytes) checked, {len(mismatches)} mismatches, "
            f"restore {restore_seconds:.1f}s at {ex.throughput / 1e6:.1f} MB/s; "
            f"full restore ~{ex.full_seconds / 60:.1f} min"
            + (f" (RTO {rto_minutes} min)" if rto_minutes is not None else "")
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        result.seconds = time.monotonic() - started
    return result


def _compare(
    runner: Runner,
    repo: Repository,
    snapshot: Snapshot,
    node: LsNode,
    scratch: Path,
    damage: list[Damage],
) -> FileCheck:
    restored = scratch / node.path.lstrip("/")
    if not restored.is_file() or restored.is_symlink():
        damage.append(Damage(NOT_RESTORED, node.path, "not present after the restore"))
        return FileCheck(node.path, node.size, "none", False)
    size = restored.stat().st_size
    if size != node.size:
        damage.append(
            Damage(
                SIZE_MISMATCH,
                node.path,
                "restored size differs from the snapshot's record",
                expected=str(node.size),
                actual=str(size),
            )
        )
        return FileCheck(node.path, node.size, "none", False)
    actual, _ = sha256_path(restored)
    live = live_path(snapshot.paths, node.path)
    if live is not None:
        try:
            st = os.stat(live, follow_symlinks=False)
            unchanged = st.st_size == node.size and _mtime_equal(st, node.mtime)
        except OSError:
            unchanged = False
        if unchanged:
            live_hash, _ = sha256_path(Path(live))
            if live_hash == actual:
                return FileCheck(node.path, node.size, "live", True)
            # The live file differs though it looks unchanged: restic decides which is right.
    expected, error = _dump_hash(runner, repo, snapshot, node.path)
    if expected is None:
        damage.append(Damage(RESTORE_ERROR, node.path, f"restic dump failed: {error}"))
        return FileCheck(node.path, node.size, "dump", False)
    if expected != actual:
        damage.append(
            Damage(
                CONTENT_MISMATCH,
                node.path,
                "restored content differs from the snapshot's (restic dump)",
                expected=expected,
                actual=actual,
            )
        )
        return FileCheck(node.path, node.size, "dump", False)
    return FileCheck(node.path, node.size, "dump", True)


def _dump_hash(
    runner: Runner, repo: Repository, snapshot: Snapshot, path: str
) -> tuple[str | None, str]:
    h = hashlib.sha256()
    done = commands.dump(runner, repo, snapshot.id, path, h.update)
    if not done.ok:
        if done.kind not in (features.FATAL, features.PARTIAL):
            raise commands.fail(repo, f"dumping {path}", done)
        return None, commands.last_error_line(done.stderr)
    return h.hexdigest(), ""
