"""RFC 9162 Merkle tree hashes and proofs (section 2.1), pure functions over leaf hashes.

No package fitted: pymerkle's tree is not RFC 9162 by default and stores its own database;
the C2SP tooling is Go. So the few functions the RFC defines are written out here, each
named after its section, and the tests check them against a naive MTH and known values.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A proof is malformed or its sizes are impossible (not merely 'does not match')."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def subtree_root(hashes: Sequence[bytes], lo: int, hi: int) -> bytes:
    """MTH of the leaves [lo, hi) given their leaf hashes (2.1.1)."""
    n = hi - lo
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return hashes[lo]
    k = _split(n)
    return node_hash(subtree_root(hashes, lo, lo + k), subtree_root(hashes, lo + k, hi))


class CompactRange:
    """The roots of the perfect subtrees covering leaves [0, size): appending a leaf and
    reading the root are O(log n), so a whole log is hashed in one pass, with the root
    at every size along the way (the `prev` of each record, every checkpoint)."""

    def __init__(self, size: int = 0, peaks: Iterable[bytes] = ()) -> None:
        self.size = size
        self.peaks = list(peaks)
        if len(self.peaks) != bin(size).count("1"):
            raise ValueError(f"a compact range of size {size} has {bin(size).count('1')} peaks")

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash; equal-sized neighbours merge as in the RFC's left-full tree."""
        self.peaks.append(leaf)
        n = self.size
        while n & 1:
            right = self.peaks.pop()
            left = self.peaks.pop()
            self.peaks.append(node_hash(left, right))
            n >>= 1
        self.size += 1

    def root(self) -> bytes:
        if not self.peaks:
            return EMPTY_ROOT
        root = self.peaks[-1]
        for peak in reversed(self.peaks[:-1]):
            root = node_hash(peak, root)
        return root


def root_of(hashes: Iterable[bytes]) -> bytes:
    tree = CompactRange()
    for h in hashes:
        tree.append(h)
    return tree.root()


RangeRoot = Callable[[int, int], bytes]  # MTH of leaves [lo, hi)


def _ranges(hashes: Sequence[bytes] | RangeRoot) -> RangeRoot:
    if callable(hashes):
        return hashes
    return lambda lo, hi: subtree_root(hashes, lo, hi)


def inclusion_proof(hashes: Sequence[bytes] | RangeRoot, index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]) (2.1.3.1): the audit path of one leaf. `hashes` is the leaf
    hashes, or a function giving the root of a range (an index kept on disk)."""
    if not 0 <= index < size or (not callable(hashes) and size > len(hashes)):
        raise ProofError(f"no leaf {index} in a tree of {size}")
    subtree = _ranges(hashes)
    path: list[bytes] = []
    lo, hi, m = 0, size, index
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            path.append(subtree(lo + k, hi))
            hi = lo + k
        else:
            path.append(subtree(lo, lo + k))
            lo, m = lo + k, m - k
    path.reverse()  # the RFC lists the path from the leaf upwards
    return path


def consistency_proof(hashes: Sequence[bytes] | RangeRoot, old: int, new: int) -> list[bytes]:
    """PROOF(old, D[new]) (2.1.4.1): that the first `old` leaves are a prefix of `new`."""
    if not 0 <= old <= new or (not callable(hashes) and new > len(hashes)):
        raise ProofError(f"no consistency between sizes {old} and {new}")
    subtree = _ranges(hashes)
    if old in (0, new):
        return []
    path: list[bytes] = []
    lo, hi, m, complete = 0, new, old, True
    while True:
        n = hi - lo
        if m == n:
            if not complete:
                path.append(subtree(lo, hi))
            break
        k = _split(n)
        if m <= k:
            path.append(subtree(lo + k, hi))
            hi = lo + k
        else:
            path.append(subtree(lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    path.reverse()
    return path


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """The verifier of 2.1.3.2, step for step."""
    if index >= size or index < 0:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """The verifier of 2.1.4.2, step for step (with the trivial sizes 0 and old == new)."""
    if old < 0 or old > new:
        return False
    if old == new:
        return not proof and old_root == new_root
    if old == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if old & (old - 1) == 0:  # an exact power of two: the old root is a node of the new tree
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0
