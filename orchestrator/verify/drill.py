"""Restore drills: restore a seeded sample of the newest snapshot and prove it is right.

restic's exit code is never trusted alone (with one flipped byte in a pack, restore
has been seen to exit 0 and write an empty file): every restored file's size is
compared with the snapshot's own record (`ls --json`) and its SHA-256 with the live
source file when that is unchanged since the snapshot, else with restic's own reading
of the snapshot. The number of restic processes is constant whatever the sample
(`ls`, `restore`, at most one reference read); files are hashed in a thread pool
(hashlib releases the GIL), live copies while the restore still runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import shutil
import stat
import tarfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from orchestrator.errors import CancelledError, OrchestratorError, ResticError
from orchestrator.restic import commands, features
from orchestrator.restic.commands import LsNode, Snapshot
from orchestrator.restic.runner import Completed, Repository, Runner
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
# A reference read by one `restic dump` of the sample's common folder (a tar stream) is
# chosen while that folder holds at most this many times the bytes needing a reference
# (plus the slack below); beyond, one `restore --verify` of just those files is cheaper.
TAR_OVERREAD = 2
TAR_SLACK_BYTES = 64 << 20


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


def reference_read(needed: Mapping[str, int], sizes: Mapping[str, int]) -> tuple[str, str]:
    """How to read the snapshot's own content of `needed` files in ONE restic process.

    ('file', path): `dump` of the single file; ('tar', folder): `dump` of the files'
    deepest common folder as a tar stream, when that folder holds not much more than the
    files themselves; ('restore', ''): `restore --verify` of just those files elsewhere
    (restic checks every blob it writes), so a small sample of a large snapshot never
    reads the whole snapshot."""
    if len(needed) == 1:
        return "file", next(iter(needed))
    root = os.path.commonpath(list(needed))
    prefix = root.rstrip("/") + "/"
    under = sum(size for path, size in sizes.items() if path.startswith(prefix))
    want = sum(needed.values())
    if under <= TAR_OVERREAD * want + TAR_SLACK_BYTES:
        return "tar", root
    return "restore", ""


# --- the drill ----------------------------------------------------------------------------

_buffers = threading.local()


def sha256_path(path: Path | str) -> tuple[str, int]:
    """SHA-256 and length of a file, with one read buffer per thread reused for every file."""
    buf = getattr(_buffers, "buf", None)
    if buf is None:
        buf = _buffers.buf = bytearray(CHUNK)
    view = memoryview(buf)
    h = hashlib.sha256()
    n = 0
    with open(path, "rb", buffering=0) as fh:
        while got := fh.readinto(buf):
            h.update(view[:got])
            n += got
    return h.hexdigest(), n


def hash_workers() -> int:
    """One hashing thread per core: more only contend for the GIL between chunks."""
    return max(1, min(8, os.cpu_count() or 1))


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


class NoSnapshot(OrchestratorError):
    """No snapshot has the tags the drill was asked to select by."""


@dataclass
class _Plan:
    """What `ls` told and what follows from it: the sample and its live hashes under way."""

    snapshot: Snapshot
    files: dict[str, LsNode]
    sample: list[str]
    live: list[Future[dict[str, str | None]]] = field(default_factory=list)

    def live_hashes(self) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for part in self.live:
            out.update(part.result())
        return out


@dataclass(frozen=True)
class _Restored:
    path: str
    size: int | None  # None: not a regular file after the restore
    digest: str | None


def _live_hash(live: str, node: LsNode) -> str | None:
    """The live file's hash when it looks unchanged since the snapshot (size and mtime)."""
    try:
        st = os.stat(live, follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode) or st.st_size != node.size:
            return None
        if not _mtime_equal(st, node.mtime):
            return None
        return sha256_path(live)[0]
    except OSError:
        return None


def _restored_hash(scratch: Path, node: LsNode) -> _Restored:
    """Size and hash of one restored file, which is then deleted at once: the scratch copy
    is gone file by file on every hashing thread instead of in one long rmtree after."""
    restored = scratch / node.path.lstrip("/")
    try:
        st = os.lstat(restored)
    except OSError:
        return _Restored(node.path, None, None)
    if not stat.S_ISREG(st.st_mode):
        return _Restored(node.path, None, None)
    if st.st_size != node.size:
        return _Restored(node.path, st.st_size, None)
    try:
        return _Restored(node.path, st.st_size, sha256_path(restored)[0])
    except OSError:
        return _Restored(node.path, None, None)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(restored)


# Files go to the hashing threads in batches: one future per file cost more than the
# hashing itself with 50,000 small files.
BATCH_FILES = 256
BATCH_BYTES = 64 << 20


def batches(paths: Sequence[str], files: Mapping[str, LsNode]) -> list[list[str]]:
    """`paths` cut into runs of at most BATCH_FILES files or about BATCH_BYTES bytes."""
    out: list[list[str]] = []
    current: list[str] = []
    spent = 0
    for path in paths:
        current.append(path)
        spent += files[path].size
        if len(current) >= BATCH_FILES or spent >= BATCH_BYTES:
            out.append(current)
            current, spent = [], 0
    if current:
        out.append(current)
    return out


def _hash_restored(
    pool: ThreadPoolExecutor, root: Path, files: Mapping[str, LsNode], paths: Sequence[str]
) -> list[_Restored]:
    """`_restored_hash` of every path under `root`, in batches on the pool, in order."""
    parts = pool.map(lambda b: [_restored_hash(root, files[p]) for p in b], batches(paths, files))
    return [r for part in parts for r in part]


def _plan(
    runner: Runner,
    repo: Repository,
    snapshot: Snapshot | None,
    tags: Sequence[str],
    pool: ThreadPoolExecutor,
    choose: Callable[[dict[str, int]], list[str]],
) -> tuple[_Plan, float]:
    """`ls` the snapshot (or the newest having `tags`: the same process names it), choose
    the sample, start hashing its unchanged live copies."""
    if snapshot is None:
        snapshot, nodes, ls_run = commands.ls_latest(runner, repo, tags)
        if snapshot is None:
            raise NoSnapshot(f"no snapshot has the tags {', '.join(tags)}")
    else:
        nodes, ls_run = commands.ls(runner, repo, snapshot.id)
    files = {n.path: n for n in nodes if n.type == "file"}
    plan = _Plan(snapshot, files, choose({p: n.size for p, n in files.items()}))
    lives = {p: live for p in plan.sample if (live := live_path(snapshot.paths, p)) is not None}
    for batch in batches(list(lives), files):
        work = [(p, lives[p], files[p]) for p in batch]
        plan.live.append(pool.submit(lambda w: {p: _live_hash(lv, n) for p, lv, n in w}, work))
    return plan, ls_run.seconds


def _restore(
    runner: Runner,
    repo: Repository,
    snapshot: str,
    scratch: Path,
    includes: Sequence[str],
    tags: Sequence[str] = (),
) -> tuple[str | None, str | None]:
    """Restore into scratch: (restic's error text when it failed in a way that is damage,
    the id of the snapshot restic says it restored)."""
    try:
        done = commands.restore(
            runner, repo, snapshot, scratch, includes=includes, tags=tags, verify=False
        )
    except CancelledError:
        raise
    except ResticError as exc:
        if exc.kind not in (features.FATAL, features.PARTIAL, features.REPOSITORY_DAMAGED):
            raise  # could not run (locked, password, network): a failure, not damage
        return exc.message, None
    return None, commands.restored_snapshot(done.stdout)


def run_drill(
    runner: Runner,
    repo: Repository,
    snapshot: Snapshot | None,
    scratch: Path,
    seed: int,
    sample_files: int | None,
    sample_bytes: int | None,
    rto_minutes: int | None,
    previous_samples: Sequence[Sequence[str]] = (),
    after_restore: Callable[[Path], None] | None = None,
    tags: Sequence[str] = (),
) -> TierResult:
    """Restore the sample into `scratch`, compare, measure; `scratch` is removed at the end
    whatever happens. `after_restore` lets a test change a restored file before the
    comparison (the drill must then report it).

    `snapshot` None: the newest snapshot having `tags`, named by restic's own `ls latest`
    (no listing of snapshots first); raises NoSnapshot when there is none. A
    whole-snapshot drill lists and restores at once (two processes in parallel), and
    restores again by id in the rare case that a backup landed between the two; a
    sampled one must list first to know what to restore."""
    result = TierResult(tier="drill")
    started = time.monotonic()
    whole = sample_files is None and sample_bytes is None
    # inside the scratch copy (snapshot paths are absolute: no restored name is this one),
    # so that whatever removes a killed drill's scratch copy removes this too
    reference_dir = scratch / ".drill-reference"

    def choose(sizes: dict[str, int]) -> list[str]:
        recent = recently_drilled(previous_samples, set(sizes))
        return choose_sample(sizes, seed, sample_files, sample_bytes, recent)

    pool = ThreadPoolExecutor(max_workers=hash_workers(), thread_name_prefix="drill-hash")
    lister = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drill-ls")
    try:
        try:
            scratch.mkdir(parents=True, exist_ok=False)
            restore_started = time.monotonic()
            if whole:
                listing = lister.submit(_plan, runner, repo, snapshot, tags, pool, choose)
                which = snapshot.id if snapshot is not None else "latest"
                restore_error, restored_id = _restore(
                    runner, repo, which, scratch, (), () if snapshot else tags
                )
                restore_seconds = time.monotonic() - restore_started
                plan, ls_seconds = listing.result()
                if restored_id and not plan.snapshot.id.startswith(restored_id):
                    shutil.rmtree(scratch)  # a backup landed between ls and restore
                    scratch.mkdir()
                    restore_started = time.monotonic()
                    restore_error, _ = _restore(runner, repo, plan.snapshot.id, scratch, ())
                    restore_seconds = time.monotonic() - restore_started
            else:
                plan, ls_seconds = _plan(runner, repo, snapshot, tags, pool, choose)
                restore_started = time.monotonic()
                includes = [include_pattern(p) for p in plan.sample]
                restore_error, _ = _restore(runner, repo, plan.snapshot.id, scratch, includes)
                restore_seconds = time.monotonic() - restore_started
        except ResticError as exc:
            if exc.kind != features.REPOSITORY_DAMAGED:
                raise  # could not run (locked, password, network): a failure, not damage
            # restic lists the snapshot but cannot read its file list: nothing restores.
            result.damage.append(Damage(RESTORE_ERROR, None, exc.message))
            which = f"snapshot {snapshot.short_id}" if snapshot else "the newest snapshot"
            result.message = (
                f"drill of {which}: its file list cannot be read, the repository is damaged"
            )
            return result  # no details: nothing was sampled, restored or measured
        snapshot = plan.snapshot
        if restore_error is not None:
            result.damage.append(Damage(RESTORE_ERROR, None, restore_error))
        if after_restore is not None:
            after_restore(scratch)
        files, sample = plan.files, plan.sample
        restored = _hash_restored(pool, scratch, files, sample)
        checks, needed = _against_live(plan, restored, result.damage)
        sizes = {p: n.size for p, n in files.items()}
        how = None
        if needed:
            how, where = reference_read({p: sizes[p] for p in needed}, sizes)
            refs = _reference_hashes(
                runner, repo, snapshot, files, needed, (how, where), reference_dir, pool
            )
            checks += _against_reference(files, needed, refs, result.damage)
        ex = _finish(result, snapshot, seed, sizes, sample, checks, restore_seconds, ls_seconds)
        result.details["reference_read"] = how
        _rto(result, rto_minutes, ex)
    finally:
        lister.shutdown(wait=True)
        pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(scratch, ignore_errors=True)
        result.seconds = time.monotonic() - started
    return result


def _against_live(
    plan: _Plan, restored: list[_Restored], damage: list[Damage]
) -> tuple[list[FileCheck], dict[str, str]]:
    """Checks settled by the restore itself or by an equal live copy; and the restored
    hashes of the files that still need restic's own reading of the snapshot."""
    checks: list[FileCheck] = []
    needed: dict[str, str] = {}
    live = plan.live_hashes()
    for r in restored:
        node = plan.files[r.path]
        if r.size is None:
            damage.append(Damage(NOT_RESTORED, r.path, "not present after the restore"))
            checks.append(FileCheck(r.path, node.size, "none", False))
        elif r.digest is None:
            damage.append(
                Damage(
                    SIZE_MISMATCH,
                    r.path,
                    "restored size differs from the snapshot's record",
                    expected=str(node.size),
                    actual=str(r.size),
                )
            )
            checks.append(FileCheck(r.path, node.size, "none", False))
        elif live.get(r.path) == r.digest:
            checks.append(FileCheck(r.path, node.size, "live", True))
        else:
            # No live copy, or it changed, or it differs though it looks unchanged:
            # restic's own reading of the snapshot decides which is right.
            needed[r.path] = r.digest
    return checks, needed


def _against_reference(
    files: Mapping[str, LsNode],
    needed: Mapping[str, str],
    refs: Mapping[str, tuple[str | None, str]],
    damage: list[Damage],
) -> list[FileCheck]:
    checks = []
    for path, actual in needed.items():
        expected, error = refs.get(path, (None, "restic did not deliver this file"))
        ok = expected == actual
        if expected is None:
            damage.append(Damage(RESTORE_ERROR, path, f"restic could not read it back: {error}"))
        elif not ok:
            damage.append(
                Damage(
                    CONTENT_MISMATCH,
                    path,
                    "restored content differs from the snapshot's as restic reads it back",
                    expected=expected,
                    actual=actual,
                )
            )
        checks.append(FileCheck(path, files[path].size, "dump", ok))
    return checks


def _reference_hashes(
    runner: Runner,
    repo: Repository,
    snapshot: Snapshot,
    files: Mapping[str, LsNode],
    needed: Mapping[str, str],
    way: tuple[str, str],
    reference_dir: Path,
    pool: ThreadPoolExecutor,
) -> dict[str, tuple[str | None, str]]:
    """path -> (SHA-256 as restic reads it from the snapshot, or None; error text), read
    by one restic process whatever the number of files (`way` from `reference_read`)."""
    how, where = way
    if how == "file":
        h = hashlib.sha256()
        done = commands.dump(runner, repo, snapshot.id, where, h.update)
        if not done.ok:
            return {where: (None, _dump_error(repo, where, done))}
        return {where: (h.hexdigest(), "")}
    if how == "tar":
        hashes, done = _tar_hashes(runner, repo, snapshot, where, set(needed))
        error = "" if done.ok else _dump_error(repo, where, done)
        return {p: (hashes.get(p), error or "not in restic's dump") for p in needed}
    reference_dir.mkdir(parents=True, exist_ok=False)
    try:
        commands.restore(
            runner,
            repo,
            snapshot.id,
            reference_dir,
            includes=[include_pattern(p) for p in needed],
            verify=True,
        )
    except CancelledError:
        raise
    except ResticError as exc:
        if exc.kind not in (features.FATAL, features.PARTIAL, features.REPOSITORY_DAMAGED):
            raise
        return {p: (None, exc.message) for p in needed}
    refs = _hash_restored(pool, reference_dir, files, list(needed))
    return {r.path: (r.digest, "not restored by restore --verify") for r in refs}


def _dump_error(repo: Repository, path: str, done: Completed) -> str:
    if done.kind not in (features.FATAL, features.PARTIAL):
        raise commands.fail(repo, f"dumping {path}", done)
    return commands.last_error_line(done.stderr)


def _tar_hashes(
    runner: Runner, repo: Repository, snapshot: Snapshot, folder: str, wanted: set[str]
) -> tuple[dict[str, str], Completed]:
    """Hash the `wanted` files of one `restic dump SNAP FOLDER` tar stream on the fly.

    restic writes into a pipe that a reader thread parses with tarfile in stream mode
    (memory stays at a few chunks); the reader drains the pipe whatever happens, so
    restic never blocks on a full pipe."""
    hashes: dict[str, str] = {}
    read_fd, write_fd = os.pipe()

    def consume() -> None:
        with open(read_fd, "rb", buffering=CHUNK) as fh:
            try:
                with tarfile.open(fileobj=fh, mode="r|", bufsize=CHUNK) as tar:
                    for member in tar:
                        name = "/" + member.name.lstrip("/")
                        if not member.isreg() or name not in wanted:
                            continue
                        data = tar.extractfile(member)
                        if data is None:
                            continue
                        h = hashlib.sha256()
                        while chunk := data.read(CHUNK):
                            h.update(chunk)
                        hashes[name] = h.hexdigest()
            except (tarfile.TarError, OSError, EOFError):
                pass  # a truncated stream: the files not hashed are reported by the caller
            finally:
                while fh.read(CHUNK):
                    pass

    reader = threading.Thread(target=consume, name="drill-tar", daemon=True)
    reader.start()
    try:
        with open(write_fd, "wb") as sink:
            done = commands.dump(runner, repo, snapshot.id, folder, sink.write)
    finally:
        reader.join()
    return hashes, done


def _finish(
    result: TierResult,
    snapshot: Snapshot,
    seed: int,
    sizes: Mapping[str, int],
    sample: list[str],
    checks: list[FileCheck],
    restore_seconds: float,
    ls_seconds: float,
) -> Extrapolation:
    total_bytes = sum(sizes.values())
    sample_total = sum(sizes[p] for p in sample)
    ex = extrapolate(sample_total, restore_seconds, ls_seconds, total_bytes)
    order = {p: i for i, p in enumerate(sample)}
    mismatches = sorted((c.path for c in checks if not c.ok), key=order.__getitem__)
    result.files = len(checks)
    result.bytes = sample_total
    result.details = {
        "snapshot": snapshot.id,
        "seed": seed,
        "sample": sample,
        "files_in_snapshot": len(sizes),
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
        "rto_minutes": None,
        "rto_met": None,
    }
    result.message = (
        f"drill of snapshot {snapshot.short_id}: {len(checks)} files "
        f"({sample_total} bytes) checked, {len(mismatches)} mismatches, "
        f"restore {restore_seconds:.1f}s at {ex.throughput / 1e6:.1f} MB/s; "
        f"full restore ~{ex.full_seconds / 60:.1f} min"
    )
    return ex


def _rto(result: TierResult, rto_minutes: int | None, ex: Extrapolation) -> None:
    """Judge the extrapolated full restore against the policy's RTO."""
    if rto_minutes is None:
        return
    full_seconds, throughput = ex.full_seconds, ex.throughput
    rto_ok = full_seconds <= rto_minutes * 60
    result.details["rto_minutes"] = rto_minutes
    result.details["rto_met"] = rto_ok
    result.message += f" (RTO {rto_minutes} min)"
    if not rto_ok:
        result.damage.append(
            Damage(
                RTO_EXCEEDED,
                None,
                f"a full restore would take about {full_seconds / 60:.1f} minutes "
                f"at the measured {throughput / 1e6:.1f} MB/s; the target is "
                f"{rto_minutes} minutes",
                expected=f"{rto_minutes} min",
                actual=f"{full_seconds / 60:.1f} min",
            )
        )
