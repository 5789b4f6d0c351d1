"""Proof documents an auditor can check with only the public key: a JSON object holding
the record (or the two checkpoints), the RFC 9162 path as base64 hashes, and the signed
checkpoint(s). `check` needs no log and no host; any RFC 9162 verifier can redo it from
the same fields."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Any

from orchestrator.audit import checkpoint as cpmod
from orchestrator.audit import merkle
from orchestrator.audit.record import b64

INCLUSION = "rfc9162-inclusion"
CONSISTENCY = "rfc9162-consistency"


class ProofCheckError(ValueError):
    """The proof does not hold (exit 4), or the document is malformed."""


def inclusion(
    hashes: Sequence[bytes] | merkle.RangeRoot, record: bytes, index: int, cp_text: str, size: int
) -> dict:
    path = merkle.inclusion_proof(hashes, index, size)
    return {
        "kind": INCLUSION,
        "index": index,
        "tree_size": size,
        "record": record.decode("utf-8"),
        "leaf_hash": b64(merkle.leaf_hash(record)),
        "path": [b64(h) for h in path],
        "checkpoint": cp_text,
    }


def consistency(
    hashes: Sequence[bytes] | merkle.RangeRoot, old: tuple[str, int], new: tuple[str, int]
) -> dict:
    path = merkle.consistency_proof(hashes, old[1], new[1])
    return {
        "kind": CONSISTENCY,
        "old_size": old[1],
        "new_size": new[1],
        "path": [b64(h) for h in path],
        "old_checkpoint": old[0],
        "new_checkpoint": new[0],
    }


def holds(doc: dict[str, Any]) -> bool:
    """Whether a proof just built agrees with its own checkpoint's root (no signature
    check: that is the auditor's part); a stale index or a changed log fails here."""
    try:
        if doc["kind"] == INCLUSION:
            cp = cpmod.parse(doc["checkpoint"])[0]
            leaf = merkle.leaf_hash(doc["record"].encode())
            return merkle.verify_inclusion(leaf, doc["index"], cp.size, _hashes(doc), cp.root)
        old = cpmod.parse(doc["old_checkpoint"])[0]
        new = cpmod.parse(doc["new_checkpoint"])[0]
        return merkle.verify_consistency(old.size, new.size, old.root, new.root, _hashes(doc))
    except (cpmod.CheckpointError, ProofCheckError, KeyError):
        return False


def _hashes(doc: dict[str, Any]) -> list[bytes]:
    try:
        path = [base64.b64decode(h, validate=True) for h in doc["path"]]
    except (KeyError, TypeError, binascii.Error):
        raise ProofCheckError("the proof's 'path' is not a list of base64 hashes") from None
    if any(len(h) != 32 for h in path):
        raise ProofCheckError("the proof's 'path' holds a hash that is not 32 bytes")
    return path


def _stated(doc: dict[str, Any], name: str, signed: int) -> None:
    """A size the document states must be the signed one: a proof saying one thing and
    proving another is malformed, not 'holds'."""
    if name not in doc:
        return
    value = doc[name]
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProofCheckError(f"the proof's '{name}' {value!r} is not a tree size")
    if value != signed:
        raise ProofCheckError(
            f"the proof's '{name}' {value} is not the signed checkpoint's size {signed}"
        )


def check(
    doc: dict[str, Any],
    key: cpmod.VerifierKey,
    check_sig: Callable[[bytes, bytes, bytes], bool],
    record: bytes | None = None,
    checkpoint: str | None = None,
) -> str:
    """One sentence saying what holds; ProofCheckError (or CheckpointError) if not.
    `record` and `checkpoint`, when given, replace the copies inside the document."""
    kind = doc.get("kind")
    if kind == INCLUSION:
        cp = cpmod.verify(checkpoint or doc.get("checkpoint", ""), key, check_sig)
        data = record if record is not None else str(doc.get("record", "")).encode()
        data = data.rstrip(b"\n")
        index = doc.get("index")
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise ProofCheckError(f"the proof's 'index' {index!r} is not a record number")
        _stated(doc, "tree_size", cp.size)
        if record is None and doc.get("leaf_hash", b64(merkle.leaf_hash(data))) != b64(
            merkle.leaf_hash(data)
        ):
            raise ProofCheckError("the proof's 'leaf_hash' is not the hash of its record")
        if not merkle.verify_inclusion(
            merkle.leaf_hash(data), index, cp.size, _hashes(doc), cp.root
        ):
            raise ProofCheckError(
                f"record {index} is NOT proven in the log of size {cp.size} signed by "
                f"{key.name}: the record, the proof or the checkpoint differs"
            )
        return f"record {index} is in the log '{cp.origin}' of {cp.size} records (signed)"
    if kind == CONSISTENCY:
        old = cpmod.verify(doc.get("old_checkpoint", ""), key, check_sig, "old checkpoint")
        new = cpmod.verify(
            checkpoint or doc.get("new_checkpoint", ""), key, check_sig, "new checkpoint"
        )
        _stated(doc, "old_size", old.size)
        _stated(doc, "new_size", new.size)
        if not merkle.verify_consistency(old.size, new.size, old.root, new.root, _hashes(doc)):
            raise ProofCheckError(
                f"the log of size {new.size} does NOT extend the log of size {old.size}: "
                "records before it were changed, or the proof is wrong"
            )
        return f"the log of {new.size} records extends the log of {old.size} records (signed)"
    raise ProofCheckError(f"not a proof document (kind '{kind}')")
