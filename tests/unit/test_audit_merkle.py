"""The RFC 9162 tree: roots against the RFC 6962/9162 reference vectors and a naive MTH
written here from the RFC's definition, and every proof for every (m, n) checked both
ways: the honest proof verifies, and any changed hash, size or index does not."""

from __future__ import annotations

import hashlib

import pytest

from orchestrator.audit import merkle

pytestmark = pytest.mark.unit


def naive_mth(leaves: list[bytes]) -> bytes:
    """MTH straight from RFC 9162 2.1.1, on the leaf data (not hashes)."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + naive_mth(leaves[:k]) + naive_mth(leaves[k:])).digest()


# The reference inputs and roots of the Certificate Transparency test suite (RFC 6962,
# unchanged in RFC 9162): leaf data in hex, and the root of the first n leaves.
VECTOR_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
VECTOR_ROOTS = {
    0: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}


@pytest.mark.parametrize("n", sorted(VECTOR_ROOTS))
def test_roots_match_the_reference_vectors(n: int) -> None:
    leaves = VECTOR_LEAVES[:n]
    hashes = [merkle.leaf_hash(d) for d in leaves]
    assert naive_mth(leaves).hex() == VECTOR_ROOTS[n]
    assert merkle.root_of(hashes).hex() == VECTOR_ROOTS[n]
    assert merkle.subtree_root(hashes, 0, n).hex() == VECTOR_ROOTS[n]


# The reference audit paths of the same suite (leaf index, tree size, path).
VECTOR_PATHS = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
# Reference consistency proofs (old size, new size, proof).
VECTOR_CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]


@pytest.mark.parametrize(("index", "size", "path"), VECTOR_PATHS)
def test_inclusion_proofs_match_the_reference_vectors(index: int, size: int, path: list) -> None:
    hashes = [merkle.leaf_hash(d) for d in VECTOR_LEAVES]
    proof = merkle.inclusion_proof(hashes, index, size)
    assert [p.hex() for p in proof] == path
    root = bytes.fromhex(VECTOR_ROOTS[size])
    assert merkle.verify_inclusion(hashes[index], index, size, proof, root)


@pytest.mark.parametrize(("old", "new", "path"), VECTOR_CONSISTENCY)
def test_consistency_proofs_match_the_reference_vectors(old: int, new: int, path: list) -> None:
    hashes = [merkle.leaf_hash(d) for d in VECTOR_LEAVES]
    proof = merkle.consistency_proof(hashes, old, new)
    assert [p.hex() for p in proof] == path
    old_root, new_root = (bytes.fromhex(VECTOR_ROOTS[s]) for s in (old, new))
    assert merkle.verify_consistency(old, new, old_root, new_root, proof)


MAX = 70  # the issue asks for every tree size below 70
LEAVES = [f"record {i}".encode() for i in range(MAX)]
HASHES = [merkle.leaf_hash(d) for d in LEAVES]
ROOTS = [naive_mth(LEAVES[:n]) for n in range(MAX + 1)]


def _flip(h: bytes) -> bytes:
    return bytes([h[0] ^ 1]) + h[1:]


def test_compact_range_gives_the_naive_root_at_every_size() -> None:
    tree = merkle.CompactRange()
    assert tree.root() == ROOTS[0]
    for n, h in enumerate(HASHES, start=1):
        tree.append(h)
        assert tree.root() == ROOTS[n], n
        again = merkle.CompactRange(tree.size, tree.peaks)  # resumed from saved peaks
        assert again.root() == ROOTS[n]


def test_every_inclusion_proof_below_70_verifies_and_no_forgery_does() -> None:
    checked = 0
    for n in range(1, MAX):
        for m in range(n):
            proof = merkle.inclusion_proof(HASHES, m, n)
            assert merkle.verify_inclusion(HASHES[m], m, n, proof, ROOTS[n]), (m, n)
            # A different leaf, index, size, root or path element fails.
            assert not merkle.verify_inclusion(_flip(HASHES[m]), m, n, proof, ROOTS[n])
            assert not merkle.verify_inclusion(HASHES[m], m, n, proof, ROOTS[n - 1])
            # (a wrong size with the same path shape can pass: the signed checkpoint binds
            # the size to the root, so a proof is checked against the checkpoint's pair)
            assert not merkle.verify_inclusion(HASHES[m], m, n + 1, proof, ROOTS[n + 1])
            if n > 1:
                other = (m + 1) % n
                assert not merkle.verify_inclusion(HASHES[m], other, n, proof, ROOTS[n])
                bad = [*proof]
                bad[len(bad) // 2] = _flip(bad[len(bad) // 2])
                assert not merkle.verify_inclusion(HASHES[m], m, n, bad, ROOTS[n])
                assert not merkle.verify_inclusion(HASHES[m], m, n, proof[:-1], ROOTS[n])
            checked += 1
    assert checked == MAX * (MAX - 1) // 2


def test_every_consistency_proof_below_70_verifies_and_no_forgery_does() -> None:
    for n in range(1, MAX):
        for m in range(1, n + 1):
            proof = merkle.consistency_proof(HASHES, m, n)
            assert merkle.verify_consistency(m, n, ROOTS[m], ROOTS[n], proof), (m, n)
            if m == n:
                continue
            assert not merkle.verify_consistency(m, n, _flip(ROOTS[m]), ROOTS[n], proof)
            assert not merkle.verify_consistency(m, n, ROOTS[m], _flip(ROOTS[n]), proof)
            assert not merkle.verify_consistency(m, n, ROOTS[m], ROOTS[n], proof[:-1])
            bad = [*proof]
            bad[0] = _flip(bad[0])
            assert not merkle.verify_consistency(m, n, ROOTS[m], ROOTS[n], bad)
            # A log rewritten in its first m leaves is not consistent with the old root.
            forged = [*HASHES[:n]]
            forged[m - 1] = _flip(forged[m - 1])
            forged_proof = merkle.consistency_proof(forged, m, n)
            assert not merkle.verify_consistency(
                m, n, ROOTS[m], merkle.root_of(forged), forged_proof
            )


def test_impossible_sizes_are_refused() -> None:
    with pytest.raises(merkle.ProofError):
        merkle.inclusion_proof(HASHES, 5, 5)
    with pytest.raises(merkle.ProofError):
        merkle.consistency_proof(HASHES, 6, 5)
    assert not merkle.verify_inclusion(HASHES[0], 3, 2, [], ROOTS[2])
    assert not merkle.verify_consistency(5, 4, ROOTS[5], ROOTS[4], [])
    assert not merkle.verify_consistency(3, 5, ROOTS[3], ROOTS[5], [])
