"""Replay a log against its checkpoints and name the first broken place.

Pure: it takes the stored lines and the checkpoint texts, and the signature check as a
function. Every record is re-parsed (canonical form), its number checked (deletion,
reordering, insertion) and its `prev` compared with the root recomputed from the records
before it (an edit shows at the next record). Signed checkpoints cover the tail: a
checkpoint larger than the log means records were cut off; a root that differs means
what it signed was changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from orchestrator.audit import checkpoint as cpmod
from orchestrator.audit import merkle
from orchestrator.audit.record import RecordError, b64, parse


@dataclass
class Report:
    size: int = 0  # complete records read
    checkpoints: int = 0  # checkpoints whose signature verified
    covered: int = 0  # records covered by the largest verified checkpoint
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_log(
    lines: Iterable[tuple[bytes, bool]],
    checkpoints: Iterable[tuple[str, str]],  # (where, text)
    key: cpmod.VerifierKey,
    check_sig: Callable[[bytes, bytes, bytes], bool],
) -> Report:
    report = Report()
    signed: list[tuple[str, cpmod.Checkpoint]] = []
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
    wanted = {cp.size for _, cp in signed}
    roots: dict[int, bytes] = {}
    tree = merkle.CompactRange()
    record_problem = None
    for index, (line, complete) in enumerate(lines):
        if not complete:
            report.notes.append(
                f"record {index} is incomplete ({len(line)} bytes, no newline): a crash "
                f"mid-append; the log is intact up to record {index - 1}"
            )
            break
        if tree.size in wanted:
            roots[tree.size] = tree.root()
        record_problem = _record_problem(line, index, tree)
        if record_problem:
            break
        tree.append(merkle.leaf_hash(line))
    if tree.size in wanted:
        roots[tree.size] = tree.root()
    report.size = tree.size
    if record_problem:
        report.problems.insert(0, record_problem)
    longest = max(signed, key=lambda item: item[1].size, default=None)
    if record_problem is None and longest and longest[1].size > tree.size:
        where, cp = longest
        report.problems.append(
            f"the log has {tree.size} records but {where} (signed) covers {cp.size}: "
            f"records {tree.size}..{cp.size - 1} were removed (tail truncated)"
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


def _record_problem(line: bytes, index: int, tree: merkle.CompactRange) -> str | None:
    try:
        record = parse(line, index)
    except RecordError as exc:
        return str(exc)
    n = record["n"]
    if not isinstance(n, int) or isinstance(n, bool):
        return f"record {index}: its number is not an integer (edited or forged)"
    if n > index:
        gone = f"record {index} was" if n == index + 1 else f"records {index}..{n - 1} were"
        return f"record {index}: numbered {n}: {gone} deleted, or records were reordered"
    if n < index:
        return (
            f"record {index}: numbered {n}, a number already used: a record was inserted "
            "before it, or records were reordered"
        )
    if record["prev"] != b64(tree.root()):
        if index == 0:
            return "record 0: does not start an empty log (forged or edited)"
        return (
            f"record {index - 1}: changed or inserted: record {index} was written after a "
            f"different record {index - 1}"
        )
    return None
