"""The tree levels kept on disk give the same roots and proofs as the leaves in memory,
whatever the batch sizes of the appends, and a lost or stale index never gives a wrong
proof: it is rebuilt from the log, or the proof is built from the log."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from test_audit_tamper import AuditWs

from orchestrator.audit import merkle
from orchestrator.audit.index import TreeIndex

pytestmark = pytest.mark.integration

MAX = 70
LEAVES = [merkle.leaf_hash(f"record {i}".encode()) for i in range(MAX)]


def test_levels_on_disk_give_every_root_and_proof(tmp_path: Path) -> None:
    rng = random.Random(16)
    index = TreeIndex(tmp_path / "index")
    done = 0
    while done < MAX:
        k = min(rng.randint(1, 9), MAX - done)
        index.append(LEAVES[done : done + k], range(done * 10, (done + k) * 10, 10))
        done += k
        assert index.size() == done
        for n in range(1, done + 1):
            assert index.range_root(0, n) == merkle.root_of(LEAVES[:n])
    for n in range(1, MAX):
        for m in range(n):
            assert merkle.inclusion_proof(index.range_root, m, n) == merkle.inclusion_proof(
                LEAVES, m, n
            )
        for m in range(1, n + 1):
            assert merkle.consistency_proof(index.range_root, m, n) == merkle.consistency_proof(
                LEAVES, m, n
            )
    assert [index.start_of(i) for i in (0, 1, 69)] == [0, 10, 690]


def test_a_lost_or_stale_index_still_gives_a_true_proof(tmp_path: Path) -> None:
    ws = AuditWs(tmp_path, every=100)
    ws.write(40)
    ws.orc("audit", "checkpoint")
    good = json.loads(ws.orc("audit", "prove", "17").stdout)
    folder = tmp_path / "var" / "audit" / "index"
    level1 = folder / "level-01"
    data = bytearray(level1.read_bytes())
    data[40] ^= 1  # a stale or damaged cache
    level1.write_bytes(bytes(data))
    assert json.loads(ws.orc("audit", "prove", "17").stdout) == good  # built from the log
    for path in folder.iterdir():
        path.unlink()
    assert json.loads(ws.orc("audit", "prove", "17").stdout) == good
    ws.trail().record({"what": "run.succeeded", "outcome": "success"})  # rebuilds the index
    assert TreeIndex(folder).size() == len(ws.lines())
    assert json.loads(ws.orc("audit", "prove", "17").stdout) == good
