"""Replay a log against its checkpoints and name the first broken place.

Pure: it takes the stored lines and the checkpoint texts, and the signature check as a
function. Every record is re-parsed (canonical form) and its number checked (deletion,
reordering, insertion). Signed checkpoints cover what they signed: a checkpoint larger
than the log means records were cut off; a root that differs means what it signed was
changed. Each record's `prev` (the root before it) names an edit at its record: it is
checked for every record after the newest checkpoint that matches, and for the whole
log when any checkpoint does not match or none exists (a root per record costs about
log2(n) hashes, the bulk of a replay).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from orchestrator.audit import checkpoint as cpmod
from orchestrator.audit import merkle
from orchestrator.audit.record import RecordError, b64, parse


@dataclass
class Report:
    size: int = 0  # complete, well-formed records read
    checkpoints: int = 0  # checkpoints whose signature verified
    covered: int = 0  # records covered by the largest matching checkpoint
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_log(
    read_lines: Callable[[], Iterable[tuple[bytes, bool]]],
    checkpoints: Iterable[tuple[str, str]],  # (where, text)
    key: cpmod.VerifierKey,
    check_sig: Callable[[bytes, bytes, bytes], bool],
    committed: tuple[int, int] | None = None,  # (records, bytes) log.state says were written
) -> Report:
    """`read_lines` is called once or twice: first only the leaf hashes are computed; the
    records a matching signed checkpoint covers are certified by its signature (their
    bytes are what was signed), so only the rest are parsed and chain-checked, unless a
    checkpoint does not match, when every record is, to name the first broken one."""
    report = Report()
    signed = _signed(checkpoints, key, check_sig, report)
    wanted = {cp.size for _, cp in signed}

    leaves: list[bytes] = []
    trees: dict[int, merkle.CompactRange] = {}
    tree = merkle.CompactRange()
    length = 0
    for index, (line, complete) in enumerate(read_lines()):
        if not complete:
            report.notes.append(
                f"record {index} is incomplete ({len(line)} bytes, no newline): a crash "
                f"mid-append; the log is intact up to record {index - 1}"
            )
            break
        if index in wanted:
            trees[index] = merkle.CompactRange(tree.size, tree.peaks)
        leaf = merkle.leaf_hash(line)
        leaves.append(leaf)
        tree.append(leaf)
        length += len(line) + 1
    if tree.size in wanted:
        trees[tree.size] = tree
    roots = {size: t.root() for size, t in trees.items()}
    matching = [cp.size for _, cp in signed if roots.get(cp.size) == cp.root]
    mismatch = any(cp.size in roots and roots[cp.size] != cp.root for _, cp in signed)
    start = 0 if mismatch or not matching else max(matching)

    first = _first_problem(read_lines, leaves, start, trees.get(start))
    if first:
        report.problems.append(first[1])
        report.size = first[0]
    else:
        report.size = len(leaves)

    longest = max(signed, key=lambda item: item[1].size, default=None)
    if longest and longest[1].size > len(leaves):
        where, cp = longest
        report.problems.append(
            f"the log has {len(leaves)} records but {where} (signed) covers {cp.size}: "
            f"records {len(leaves)}..{cp.size - 1} were removed (tail truncated)"
        )
    if committed and (len(leaves) < committed[0] or length < committed[1]):
        size, want = committed
        gone = f"record {len(leaves)} onward" if len(leaves) < size else "part of the last record"
        report.problems.append(
            f"the log has {len(leaves)} complete records ({length} bytes) but its state file "
            f"says {size} ({want} bytes) were committed: {gone} removed or cut"
        )
    for where, cp in sorted(signed, key=lambda item: item[1].size):
        if cp.size in roots and roots[cp.size] != cp.root:
            report.problems.append(
                f"record {cp.size - 1}: does not match the signed {where} (size {cp.size}): "
                "changed after the checkpoint was signed, or the log before it was rewritten"
            )
        elif cp.size in roots:
            report.covered = max(report.covered, cp.size)
    return report


def _first_problem(
    read_lines: Callable[[], Iterable[tuple[bytes, bool]]],
    leaves: list[bytes],
    start: int,
    known: merkle.CompactRange | None,
) -> tuple[int, str] | None:
    """The first broken record at or after `start`: its form, its number, or (named at
    the record before) a `prev` that is not the root of the records before it."""
    tree = merkle.CompactRange(known.size, known.peaks) if known else merkle.CompactRange()
    for index, (line, _) in enumerate(read_lines()):
        if index < start:
            continue
        if index >= len(leaves):
            break
        problem, prev = _record_problem(line, index)
        if problem:
            return index, problem
        if prev != b64(tree.root()):
            if index == 0:
                return 0, "record 0: does not start an empty log (forged or edited)"
            return index - 1, (
                f"record {index - 1}: changed or inserted: record {index} was written after "
                f"a different record {index - 1}"
            )
        tree.append(leaves[index])
    return None


def _signed(
    checkpoints: Iterable[tuple[str, str]],
    key: cpmod.VerifierKey,
    check_sig: Callable[[bytes, bytes, bytes], bool],
    report: Report,
) -> list[tuple[str, cpmod.Checkpoint]]:
    """The checkpoints whose signature verifies; the others are problems."""
    signed = []
    for where, text in checkpoints:
        try:
            cp = cpmod.verify(text, key, check_sig, where)
        except cpmod.CheckpointError as exc:
            report.problems.append(str(exc))
            continue
        if cp.origin != key.name:
            report.problems.append(
                f"{where}: origin '{cp.origin}' is not this log's origin '{key.name}'"
            )
            continue
        signed.append((where, cp))
    report.checkpoints = len(signed)
    return signed


def _record_problem(line: bytes, index: int) -> tuple[str | None, str]:
    try:
        record = parse(line, index)
    except RecordError as exc:
        return str(exc), ""
    n = record["n"]
    if not isinstance(n, int) or isinstance(n, bool):
        return f"record {index}: its number is not an integer (edited or forged)", ""
    if n > index:
        gone = f"record {index} was" if n == index + 1 else f"records {index}..{n - 1} were"
        return f"record {index}: numbered {n}: {gone} deleted, or records were reordered", ""
    if n < index:
        return (
            f"record {index}: numbered {n}, a number already used: a record was inserted "
            "before it, or records were reordered"
        ), ""
    return None, str(record["prev"])
