"""Tier `media`: every content-addressed file's SHA-256 equals its name; none vanished.

Needs no repository password, only the storage (Target.list_files/open_file), so it
can run where the key is not kept, on local, SFTP and S3 alike. Bytes are streamed
in chunks (bounded memory) and files are hashed in parallel; a byte budget per run
bounds the cost, taking the files hashed longest ago (or never) first.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from orchestrator.targets import CONTENT_ADDRESSED, Target
from orchestrator.verify import HASH_MISMATCH, MISSING, UNREADABLE, Damage, TierResult

CHUNK = 1 << 20  # per read; memory stays at workers x CHUNK whatever the file sizes
_buffers = threading.local()  # one read buffer per hashing thread, reused for every file
_CONTENT_NAME = re.compile(r"[0-9a-f]{64}")


def is_content_name(path: str) -> bool:
    """restic names content by SHA-256; its temporary files (e.g. '<id>-tmp-123') differ."""
    return bool(_CONTENT_NAME.fullmatch(path.rsplit("/", 1)[-1]))


def vanished(previous: Mapping[str, int], current: Mapping[str, int]) -> list[str]:
    """Files of the last listing that are gone now."""
    return sorted(set(previous) - set(current))


# What restic's prune deletes: packs and indexes (snapshots go by forget, keys never).
PRUNED_FOLDERS = ("data/", "index/")


def snapshot_files(ids: Iterable[str]) -> list[str]:
    """The repository files restic's forget deletes for these full snapshot ids."""
    return [f"snapshots/{i}" for i in ids]


def pruned_files(before: Mapping[str, int], after: Mapping[str, int]) -> list[str]:
    """Packs and indexes listed right before our prune and gone right after it: ours.

    A file already gone before the prune began is not in `before`, so a deletion by
    anyone else before our prune stays damage; only a deletion during the prune itself
    cannot be told apart by listings."""
    return sorted(p for p in set(before) - set(after) if p.startswith(PRUNED_FOLDERS))


def plan_budget(
    sizes: Mapping[str, int], verified: Mapping[str, datetime | None], budget: int | None
) -> list[str]:
    """The files to hash this run: never-hashed first, then hashed longest ago, until the
    budget is spent. Stops at the first file that does not fit (so a big file is never
    starved by small ones), but always takes at least one file so every run progresses."""
    order = sorted(sizes, key=lambda p: (verified.get(p) is not None, verified.get(p) or 0, p))
    if budget is None:
        return order
    chosen: list[str] = []
    spent = 0
    for path in order:
        if chosen and spent + sizes[path] > budget:
            break
        chosen.append(path)
        spent += sizes[path]
    return chosen


@dataclass(frozen=True)
class MediaCoverage:
    files: int
    files_verified: int
    bytes_total: int
    bytes_verified: int
    oldest_verified: datetime | None

    @property
    def percent(self) -> float:
        return 100.0 * self.bytes_verified / self.bytes_total if self.bytes_total else 100.0


def media_coverage(
    sizes: Mapping[str, int], verified: Mapping[str, datetime | None]
) -> MediaCoverage:
    done = [p for p in sizes if verified.get(p) is not None]
    times = [verified[p] for p in done]
    return MediaCoverage(
        files=len(sizes),
        files_verified=len(done),
        bytes_total=sum(sizes.values()),
        bytes_verified=sum(sizes[p] for p in done),
        oldest_verified=min(times) if times else None,  # type: ignore[type-var]
    )


@dataclass(frozen=True)
class Hashed:
    path: str
    digest: str | None  # None when unreadable
    bytes: int
    error: str | None = None
    missing: bool = False


def hash_file(target: Target, path: str, chunk: int = CHUNK) -> Hashed:
    """SHA-256 of one repository file's streamed bytes."""
    h = hashlib.sha256()
    n = 0
    try:
        with target.open_file(path) as fh:
            readinto = getattr(fh, "readinto", None)
            if readinto is not None:
                buf = getattr(_buffers, "buf", None)
                if buf is None or len(buf) != chunk:
                    buf = _buffers.buf = bytearray(chunk)
                view = memoryview(buf)
                while got := readinto(buf):
                    h.update(view[:got])
                    n += got
            else:
                while data := fh.read(chunk):
                    h.update(data)
                    n += len(data)
    except FileNotFoundError:
        return Hashed(path, None, n, "no longer exists", missing=True)
    except OSError as exc:
        return Hashed(path, None, n, f"cannot be read: {exc}")
    return Hashed(path, h.hexdigest(), n)


def hash_files(target: Target, paths: list[str], workers: int) -> Iterator[Hashed]:
    """Hash in parallel (hashlib and reads release the GIL), results in the order given
    (give the largest files first, so that one big pack hashed last does not leave the
    other cores idle); at most `workers` files are open and `workers` buffers exist."""
    if workers <= 1 or len(paths) <= 1:
        yield from (hash_file(target, p) for p in paths)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="media") as pool:
        yield from pool.map(lambda p: hash_file(target, p), paths)


def default_workers(target: Target) -> int:
    """Targets may say how many concurrent reads they serve well (`read_parallelism`);
    a local disk gets one thread per core: a third thread on two cores was measured
    slower than two (it holds the GIL while the OS has it waiting for a core)."""
    wanted = getattr(target, "read_parallelism", None)
    if isinstance(wanted, int) and wanted > 0:
        return wanted
    return max(1, min(8, os.cpu_count() or 1))


def list_content(target: Target) -> dict[str, int]:
    """The content-addressed files of the repository with their sizes (temp files skipped)."""
    return {f.path: f.size for f in target.list_files(CONTENT_ADDRESSED) if is_content_name(f.path)}


def run_media(
    target: Target,
    previous: Mapping[str, int],
    verified: Mapping[str, datetime | None],
    budget: int | None,
    workers: int | None = None,
) -> tuple[TierResult, dict[str, int], list[str]]:
    """Hash the budget's share of the repository and compare it with the last listing.

    Returns the result, the current listing and the paths found good (to record)."""
    started = time.monotonic()
    current = list_content(target)
    result = TierResult(tier="media")
    for path in vanished(previous, current):
        result.damage.append(
            Damage(MISSING, path, f"listed before ({previous[path]} bytes), gone now")
        )
    chosen = plan_budget(current, verified, budget)
    good: list[str] = []
    biggest_first = sorted(chosen, key=lambda p: (-current[p], p))
    for h in hash_files(target, biggest_first, workers or default_workers(target)):
        result.files += 1
        result.bytes += h.bytes
        expected = h.path.rsplit("/", 1)[-1]
        if h.missing:
            result.damage.append(Damage(MISSING, h.path, "listed now but vanished while hashing"))
        elif h.digest is None:
            result.damage.append(Damage(UNREADABLE, h.path, h.error or "cannot be read"))
        elif h.digest != expected:
            result.damage.append(
                Damage(
                    HASH_MISMATCH,
                    h.path,
                    f"content does not match its name ({h.bytes} bytes read, "
                    f"{current[h.path]} listed)",
                    expected=expected,
                    actual=h.digest,
                )
            )
        else:
            good.append(h.path)
    result.seconds = time.monotonic() - started
    result.message = f"hashed {result.files} of {len(current)} files ({result.bytes} bytes)" + (
        f" within a budget of {budget} bytes" if budget is not None else ""
    )
    return result, current, good
