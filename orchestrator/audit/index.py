"""The tree's levels and the records' offsets on disk, so a proof on a log of millions of
records reads a few hundred hashes instead of the whole file.

`level-00` holds the leaf hashes (32 bytes each), `level-NN` the roots of the aligned
perfect subtrees of 2^NN leaves, and `offsets` the byte where each record starts (8 bytes,
big-endian). Every left part of the RFC's split is such a subtree: the root of any range
is O(log n) reads. The index is a cache of the log: updated under the log's lock after
each append, rebuilt from the log when its size disagrees, never trusted by `verify`
(and a proof built from it is checked against the signed checkpoint before it is shown).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from orchestrator.audit import merkle

HASH = 32
OFFSET = 8


class TreeIndex:
    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def _level(self, level: int) -> Path:
        return self.dir / f"level-{level:02d}"

    @property
    def _offsets(self) -> Path:
        return self.dir / "offsets"

    def size(self) -> int:
        try:
            leaves = self._level(0).stat().st_size // HASH
            offsets = self._offsets.stat().st_size // OFFSET
        except FileNotFoundError:
            return 0
        return min(leaves, offsets)

    def _read(self, level: int, index: int) -> bytes:
        fd = os.open(self._level(level), os.O_RDONLY)
        try:
            data = os.pread(fd, HASH, index * HASH)
        finally:
            os.close(fd)
        if len(data) != HASH:
            raise IndexError(f"level {level} has no node {index}")
        return data

    def append(self, leaves: Iterable[bytes], starts: Iterable[int]) -> None:
        """Add leaves (and where their records start); complete subtrees climb a level."""
        items = list(leaves)
        first = self.size()
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._offsets.open("ab") as fh:
            fh.write(b"".join(s.to_bytes(OFFSET, "big") for s in starts))
        level = 0
        while items:
            parents = []
            previous = self._read(level, first - 1) if first % 2 else None
            for i, h in enumerate(items, start=first):
                if i % 2 and previous is not None:
                    parents.append(merkle.node_hash(previous, h))
                previous = h
            with self._level(level).open("ab") as fh:
                fh.write(b"".join(items))
            items, first, level = parents, first // 2, level + 1

    def reset(self) -> None:
        if self.dir.is_dir():
            for path in self.dir.iterdir():
                path.unlink()

    def range_root(self, lo: int, hi: int) -> bytes:
        """MTH of leaves [lo, hi) from the stored levels."""
        n = hi - lo
        if n == 0:
            return merkle.EMPTY_ROOT
        if n & (n - 1) == 0 and lo % n == 0:
            return self._read(n.bit_length() - 1, lo // n)
        k = 1 << ((n - 1).bit_length() - 1)
        return merkle.node_hash(self.range_root(lo, lo + k), self.range_root(lo + k, hi))

    def start_of(self, index: int) -> int:
        fd = os.open(self._offsets, os.O_RDONLY)
        try:
            data = os.pread(fd, OFFSET, index * OFFSET)
        finally:
            os.close(fd)
        if len(data) != OFFSET:
            raise IndexError(f"no offset of record {index}")
        return int.from_bytes(data, "big")
