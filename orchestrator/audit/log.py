"""The append-only log file: canonical JSON lines, appended under a lock, fsynced.

Two processes (the daemon and an operator's `restore`) append safely: each append holds
an exclusive `flock` on `log.lock`, reads where the tree stands, writes its lines in one
`write`, fsyncs, then updates the small `log.state` cache (size, byte length and the
compact range of the tree). The cache is only a shortcut: when its byte length does not
match the file, the file is re-read. `verify` never trusts it.

A crash mid-append leaves a last line without its newline; the next append cuts it off
and records that it did (`audit.torn_tail`), so the log verifies up to the last complete
record and says so. Only bytes beyond what `log.state` says was committed are cut: a
log shorter than that, or whose committed records changed, is refused (never repaired).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.audit import merkle
from orchestrator.audit.index import TreeIndex
from orchestrator.audit.record import b64, canonical
from orchestrator.errors import OrchestratorError

LOG_NAME = "log.jsonl"
log = logging.getLogger("orchestrator.audit")


class AuditLogError(OrchestratorError):
    """The audit log cannot be read or written (disk, permissions)."""


@dataclass
class TreeState:
    size: int
    length: int  # bytes of complete records
    tree: merkle.CompactRange
    extra: dict[str, Any]  # what the checkpoint publisher keeps (last checkpoint)


class AuditLog:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.path = directory / LOG_NAME
        self.lock_path = directory / "log.lock"
        self.state_path = directory / "log.state"
        self.index = TreeIndex(directory / "index")

    # ------------------------------------------------------------------ reading

    def lines(self) -> Iterator[tuple[bytes, bool]]:
        """Each stored line without its newline, and whether it was complete (had one)."""
        try:
            fh = self.path.open("rb")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise AuditLogError(f"cannot read the audit log {self.path}: {exc.strerror}") from None
        with fh:
            for raw in fh:
                if raw.endswith(b"\n"):
                    yield raw[:-1], True
                else:
                    yield raw, False

    def leaf_hashes(self) -> list[bytes]:
        return [merkle.leaf_hash(line) for line, complete in self.lines() if complete]

    # ------------------------------------------------------------------ appending

    @contextlib.contextmanager
    def locked(self) -> Iterator[TreeState]:
        """Hold the append lock; yields where the tree stands (torn tail already cut)."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            lock = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise AuditLogError(
                f"cannot open the audit log in {self.dir}: {exc.strerror or exc}"
            ) from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield self._state()
        finally:
            os.close(lock)  # releases the flock

    def append(self, state: TreeState, entries: Sequence[Mapping[str, Any]]) -> list[int]:
        """Number, chain and write the entries durably; returns their record numbers.
        Call inside `locked()`."""
        out = bytearray()
        numbers = []
        first, leaves, starts = state.size, [], []
        for entry in entries:
            record = dict(entry)
            record["n"] = state.tree.size
            record["prev"] = b64(state.tree.root())
            line = canonical(record)
            if b"\n" in line:  # json.dumps escapes newlines; this guards the invariant
                raise AuditLogError("an audit record would span lines")
            starts.append(state.length + len(out))
            out += line + b"\n"
            numbers.append(state.tree.size)
            leaves.append(merkle.leaf_hash(line))
            state.tree.append(leaves[-1])
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, bytes(out))
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise AuditLogError(
                f"cannot append to the audit log {self.path}: {exc.strerror or exc}"
            ) from None
        state.size = state.tree.size
        state.length += len(out)
        self.save_state(state)
        try:
            if self.index.size() == first:
                self.index.append(leaves, starts)
            else:
                self._rebuild_index()
        except OSError:  # only a cache: rebuilt at the next append, or proofs read the log
            log.warning("audit: the tree index in %s could not be updated", self.index.dir)
        return numbers

    def _rebuild_index(self) -> None:
        self.index.reset()
        leaves: list[bytes] = []
        starts: list[int] = []
        offset = 0
        for line, complete in self.lines():
            if not complete:
                break
            leaves.append(merkle.leaf_hash(line))
            starts.append(offset)
            offset += len(line) + 1
            if len(leaves) == 65536:
                self.index.append(leaves, starts)
                leaves, starts = [], []
        self.index.append(leaves, starts)

    def record_at(self, index: int) -> bytes:
        """Record `index` (complete, without newline) through the offsets index."""
        start = self.index.start_of(index)
        with self.path.open("rb") as fh:
            fh.seek(start)
            line = fh.readline()
        if not line.endswith(b"\n"):
            raise AuditLogError(f"record {index} is incomplete in {self.path}")
        return line[:-1]

    def save_state(self, state: TreeState) -> None:
        data = {
            "size": state.size,
            "length": state.length,
            "peaks": [base64.b64encode(p).decode() for p in state.tree.peaks],
            **state.extra,
        }
        tmp = self.state_path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(data, sort_keys=True))
            os.replace(tmp, self.state_path)
        except OSError:
            pass  # only a cache: the next append re-reads the log

    def _state(self) -> TreeState:
        state = self._read_state()
        try:
            if self.index.size() != state.size:
                self._rebuild_index()
        except OSError:
            log.warning("audit: the tree index in %s could not be rebuilt", self.index.dir)
        return state

    def committed(self) -> tuple[int, int, list[bytes]] | None:
        """(records, bytes, peaks) the last append wrote durably, from `log.state`; None
        when there is no readable state. The log may be longer (a crash between the
        write and the state update), never shorter."""
        try:
            data = json.loads(self.state_path.read_text())
            size, length = data["size"], data["length"]
            peaks = [base64.b64decode(p) for p in data["peaks"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not (isinstance(size, int) and isinstance(length, int)) or min(size, length) < 0:
            return None
        if len(peaks) != bin(size).count("1"):
            return None
        return size, length, peaks

    def _read_state(self) -> TreeState:
        length = self.path.stat().st_size if self.path.exists() else 0
        extra: dict[str, Any] = {}
        try:
            data = json.loads(self.state_path.read_text())
            extra = {k: v for k, v in data.items() if k not in ("size", "length", "peaks")}
        except (OSError, ValueError, TypeError):
            pass
        committed = self.committed()
        if committed is not None and committed[1] == length:
            size, _, peaks = committed
            return TreeState(size, length, merkle.CompactRange(size, peaks), extra)
        return self._rescan(extra, committed)  # refuses a log shorter than committed

    def _refuse(self, why: str) -> None:
        """Committed records are gone or changed: appending (or cutting a 'torn tail')
        would bury the evidence, so nothing is written until someone looks."""
        raise AuditLogError(
            f"the audit log {self.path} is damaged ({why}): nothing appended; run "
            "'orchestrator audit verify', then move state_dir/audit aside to start a new log"
        )

    def _rescan(
        self, extra: dict[str, Any], committed: tuple[int, int, list[bytes]] | None = None
    ) -> TreeState:
        tree = merkle.CompactRange()
        length = 0
        torn = b""
        for line, complete in self.lines():
            if complete:
                tree.append(merkle.leaf_hash(line))
                length += len(line) + 1
                if committed and tree.size == committed[0] and tree.peaks != committed[2]:
                    self._refuse(f"records before {committed[0]} differ from those committed")
            else:
                torn = line
        if committed and (tree.size < committed[0] or length < committed[1]):
            self._refuse(
                f"{tree.size} complete records ({length} bytes) but {committed[0]} "
                f"({committed[1]} bytes) were committed: record {tree.size} is cut"
            )
        state = TreeState(tree.size, length, tree, extra)
        if torn:
            self._cut_torn_tail(state, len(torn))
        return state

    def _cut_torn_tail(self, state: TreeState, torn: int) -> None:
        """A crash mid-append: cut the partial line, then record that it was cut."""
        try:
            os.truncate(self.path, state.length)
        except OSError as exc:
            raise AuditLogError(
                f"the audit log {self.path} ends in a partial record and cannot be repaired: "
                f"{exc.strerror}"
            ) from None
        from datetime import UTC, datetime

        self.append(
            state,
            [
                {
                    "time": datetime.now(UTC).isoformat(timespec="seconds"),
                    "who": "orchestrator",
                    "what": "audit.torn_tail",
                    "outcome": "repaired",
                    "summary": f"removed a partial record of {torn} bytes left by a crash",
                }
            ],
        )
