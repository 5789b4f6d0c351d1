"""Benchmark: the audit log (issue 16 asks: append 10,000 records durably < 3 s;
`audit verify` of 100,000 records < 1.5 s; an inclusion proof < 10 ms on 1,000,000).

Measures, in a temporary folder, with the product's own code and a real key:
- appending N records one command's way (one batch, one fsync) and one fsync each;
- verifying the log (in-process `verify_log`, and the real `orchestrator audit verify`);
- `audit prove` against a log of P records (the proof reads the log: see the report).
Not part of the test suite (timings are noisy):

    .venv/bin/python benchmarks/audit_log.py [--records 10000] [--verify 100000] [--prove 100000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from orchestrator.audit import signing
from orchestrator.audit.trail import AuditTrail, open_trail
from orchestrator.audit.verify import verify_log
from orchestrator.policies.loader import load_config

RECORD = {"what": "run.succeeded", "outcome": "success", "policy": "web-data", "target": "local"}


def _trail(root: Path, every: int) -> AuditTrail:
    config = root / "policies.toml"
    config.write_text(
        f'[orchestrator]\nstate_dir = "var"\n[audit]\ncheckpoint_every = {every}\n'
        'origin = "bench/audit"\n'
    )
    loaded = load_config(config)
    return open_trail(loaded)  # its key sealed in this folder's own secret store


def _fill(trail: AuditTrail, n: int, batch: int = 10_000) -> None:
    done = 0
    while done < n:
        k = min(batch, n - done)
        trail.record(*([RECORD] * k))
        done += k
    trail.checkpoint(remote=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--verify", type=int, default=100_000)
    ap.add_argument("--prove", type=int, default=100_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "a").mkdir()
        trail = _trail(root / "a", args.records + 1)
        start = time.perf_counter()
        trail.record(*([RECORD] * args.records))
        print(
            f"append {args.records} records, one batch, fsynced: "
            f"{time.perf_counter() - start:.3f} s"
        )
        (root / "b").mkdir()
        trail = _trail(root / "b", 1_000_000)
        start = time.perf_counter()
        for _ in range(2000):
            trail.record(RECORD)
        per = (time.perf_counter() - start) / 2000
        print(f"append one record per call (lock, write, fsync): {per * 1000:.2f} ms each")

        (root / "c").mkdir()
        trail = _trail(root / "c", 1_000_000)
        _fill(trail, args.verify)
        key = trail.verifier_key()
        start = time.perf_counter()
        report = verify_log(trail.log.lines, trail.checkpoint_files(), key, signing.verify)
        assert report.ok and report.size == args.verify, report.problems
        print(f"verify {args.verify} records in-process: {time.perf_counter() - start:.3f} s")
        cmd = [sys.executable, "-m", "orchestrator", "--config", str(root / "c" / "policies.toml")]
        start = time.perf_counter()
        subprocess.run([*cmd, "audit", "verify"], check=True, capture_output=True)
        print(f"`orchestrator audit verify` of {args.verify}: {time.perf_counter() - start:.3f} s")
        if args.prove != args.verify:
            (root / "d").mkdir()
            trail = _trail(root / "d", 1_000_000)
            _fill(trail, args.prove)
            cmd[-1] = str(root / "d" / "policies.toml")
        from orchestrator.audit import merkle

        index = trail.log.index
        start = time.perf_counter()
        for i in range(100):
            merkle.inclusion_proof(index.range_root, (i * 7919) % args.prove, args.prove)
            trail.log.record_at((i * 7919) % args.prove)
        per = (time.perf_counter() - start) / 100
        print(f"inclusion proof from the on-disk levels, in-process: {per * 1000:.2f} ms each")
        start = time.perf_counter()
        subprocess.run([*cmd, "audit", "prove", "7"], check=True, capture_output=True)
        print(f"`orchestrator audit prove 7` on {args.prove}: {time.perf_counter() - start:.3f} s")
        start = time.perf_counter()
        subprocess.run([*cmd, "--help"], check=True, capture_output=True)
        print(f"(`orchestrator --help`, the start-up in each: {time.perf_counter() - start:.3f} s)")


if __name__ == "__main__":
    main()
