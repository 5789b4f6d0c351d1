"""Checkpoints in the C2SP tlog-checkpoint format, signed as C2SP signed notes.

    <origin>\n<tree size>\n<base64 root hash>\n\n— <key name> <base64(key id || sig)>\n

The key id is the first 4 bytes of SHA-256(name || "\\n" || 0x01 || public key) and the
verifier key is written `name+<hex key id>+<base64(0x01 || public key)>`, so any C2SP
verifier (Go's golang.org/x/mod/sumdb/note, for one) reads them. Pure text handling; the
Ed25519 arithmetic is passed in from `signing`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.errors import OrchestratorError

ED25519 = b"\x01"
DASH = "\u2014 "


class CheckpointError(ValueError):
    """A checkpoint or a verifier key is malformed, or its signature does not verify."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


@dataclass(frozen=True)
class VerifierKey:
    name: str
    key_id: bytes
    public: bytes

    def text(self) -> str:
        encoded = base64.b64encode(ED25519 + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"


def key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + public).digest()[:4]


def verifier_key(name: str, public: bytes) -> VerifierKey:
    _check_name(name)
    return VerifierKey(name, key_id(name, public), public)


def _check_name(name: str) -> None:
    if not name or any(c.isspace() for c in name) or "+" in name:
        raise CheckpointError(f"key name '{name}' must be non-empty, without spaces or '+'")


def parse_verifier_key(text: str, where: str = "public key") -> VerifierKey:
    parts = text.strip().split("+", 2)  # the base64 key may itself hold '+'
    if len(parts) != 3:
        raise CheckpointError(f"{where}: not a verifier key 'name+keyid+base64'")
    name, hex_id, encoded = parts
    try:
        raw = base64.b64decode(encoded, validate=True)
        kid = bytes.fromhex(hex_id)
    except (binascii.Error, ValueError):
        raise CheckpointError(f"{where}: key id or key is not hex/base64") from None
    if len(raw) != 33 or raw[:1] != ED25519 or len(kid) != 4:
        raise CheckpointError(f"{where}: not an Ed25519 verifier key")
    if key_id(name, raw[1:]) != kid:
        raise CheckpointError(f"{where}: its key id does not match its name and key")
    return VerifierKey(name, kid, raw[1:])


def sign(cp: Checkpoint, name: str, public: bytes, sign_fn: Callable[[bytes], bytes]) -> str:
    """The signed note text of a checkpoint."""
    _check_name(name)
    body = cp.body()
    sig = sign_fn(body.encode())
    line = base64.b64encode(key_id(name, public) + sig).decode()
    return f"{body}\n{DASH}{name} {line}\n"


def parse(text: str, where: str = "checkpoint") -> tuple[Checkpoint, str, list[tuple[str, bytes]]]:
    """(checkpoint, the signed body, [(key name, key id + signature)]); malformed -> error."""
    body, sep, sigs = text.partition("\n\n")
    if not sep:
        raise CheckpointError(f"{where}: no blank line between the checkpoint and signatures")
    body += "\n"
    lines = body.split("\n")[:-1]
    if len(lines) < 3:
        raise CheckpointError(f"{where}: needs an origin, a size and a root hash line")
    origin, size_text, root_text = lines[:3]
    if not (size_text.isascii() and size_text.isdigit()) or (
        size_text != "0" and size_text.startswith("0")
    ):
        raise CheckpointError(f"{where}: tree size '{size_text}' is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error:
        raise CheckpointError(f"{where}: root hash is not base64") from None
    if len(root) != 32:
        raise CheckpointError(f"{where}: root hash is not 32 bytes")
    signatures = []
    for line in sigs.split("\n"):
        if not line:
            continue
        if not line.startswith(DASH):
            raise CheckpointError(f"{where}: signature line does not start with an em dash")
        name, _, encoded = line[len(DASH) :].rpartition(" ")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise CheckpointError(f"{where}: signature of '{name}' is not base64") from None
        if len(raw) < 5:
            raise CheckpointError(f"{where}: signature of '{name}' is too short")
        signatures.append((name, raw))
    if not signatures:
        raise CheckpointError(f"{where}: has no signature")
    return Checkpoint(origin, int(size_text), root), body, signatures


def verify(
    text: str,
    key: VerifierKey,
    check: Callable[[bytes, bytes, bytes], bool],
    where: str = "checkpoint",
) -> Checkpoint:
    """The checkpoint, if `key` signed it; a clear error naming what is wrong otherwise."""
    cp, body, signatures = parse(text, where)
    ours = [raw for name, raw in signatures if name == key.name and raw[:4] == key.key_id]
    if not ours:
        found = ", ".join(f"{name}+{raw[:4].hex()}" for name, raw in signatures)
        raise CheckpointError(
            f"{where}: not signed by the audit key {key.name}+{key.key_id.hex()} "
            f"(signed by {found}): a checkpoint from elsewhere or a replaced key"
        )
    if not any(check(key.public, body.encode(), raw[4:]) for raw in ours):
        raise CheckpointError(
            f"{where}: its signature does not verify with {key.name}+{key.key_id.hex()}: "
            "the checkpoint was altered after signing"
        )
    return cp


class CheckpointRefused(OrchestratorError):
    """A place already holds a checkpoint this one must not overwrite (audit log: a
    checkpoint kept in a repository is the evidence against a replaced or cut log)."""


Extends = Callable[[int, bytes], bool]  # (size, root): does the log extend that tree?


def refuse_replacing(
    existing: str | None, new: str, where: str, extends: Extends | None = None
) -> None:
    """Raise CheckpointRefused when `existing` (the checkpoint a place holds) is signed by
    another key, covers more or other records than `new`, or covers fewer records that
    the log no longer holds as they were (`extends`: a rewritten log must never replace
    the evidence against it); an unreadable one is not evidence and may be replaced."""
    if existing is None:
        return
    try:
        old, _, old_sigs = parse(existing, where)
    except CheckpointError:
        return
    cp, _, sigs = parse(new, "new checkpoint")
    ours = {(name, raw[:4]) for name, raw in sigs}
    theirs = {(name, raw[:4]) for name, raw in old_sigs}
    if not ours & theirs:
        found = ", ".join(f"{name}+{kid.hex()}" for name, kid in sorted(theirs))
        raise CheckpointRefused(
            f"{where}: holds a checkpoint signed by another key ({found}): not overwritten "
            "(the audit key was replaced, or this repository belongs to another log)"
        )
    if old.size > cp.size:
        raise CheckpointRefused(
            f"{where}: holds a checkpoint of {old.size} records, more than this log's "
            f"{cp.size}: not overwritten (the log was cut or replaced; run "
            "'orchestrator audit verify')"
        )
    if old.size == cp.size and old.root != cp.root:
        raise CheckpointRefused(
            f"{where}: holds a different checkpoint of the same size {cp.size}: not "
            "overwritten (the log was rewritten; run 'orchestrator audit verify')"
        )
    if old.size < cp.size and extends is not None and not extends(old.size, old.root):
        raise CheckpointRefused(
            f"{where}: holds a checkpoint of {old.size} records that this log no longer "
            "starts with: not overwritten (the log was rewritten; run 'orchestrator audit "
            "verify')"
        )
