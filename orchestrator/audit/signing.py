"""The checkpoints' Ed25519 key: made once, its private half sealed in the secret store.

The private key lives only inside the sealed store (as the secret `audit-signing-key`),
so a copy of `state_dir` cannot sign a rewritten log, and the same key file,
systemd credential or passphrase that guards the repository passwords guards it. Its
public half is no secret: it is written beside the checkpoints, printed by `audit init`
for the auditor, and is all that `audit verify` and `audit check-proof` need.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from orchestrator.errors import OrchestratorError
from orchestrator.security import crypto
from orchestrator.security.secrets import AUDIT_KEY_NAME

log = logging.getLogger("orchestrator.audit")

SECRET_NAME = AUDIT_KEY_NAME  # reserved by the secret store
_PREFIX = "ed25519:"


class SigningKeyError(OrchestratorError):
    """The signing key cannot be made, read or used."""


class KeyVault(Protocol):
    """The part of the secret store the signing key needs; never audited as a "secret
    use" (the audit trail itself reads it, inside its own append)."""

    def peek(self, name: str) -> str | None: ...

    def setdefault(
        self, name: str, make: Callable[[], str], new_key_file: bool = True
    ) -> tuple[str, bool]: ...


@dataclass(frozen=True)
class Signer:
    name: str
    public: bytes  # the 32 raw bytes of the Ed25519 public key
    _seed: bytes

    def sign(self, message: bytes) -> bytes:
        return crypto.ed25519_sign(self._seed, message)


def encode_seed(seed: bytes) -> str:
    return _PREFIX + base64.b64encode(seed).decode("ascii")


def decode_seed(value: str) -> bytes:
    if value.startswith(_PREFIX):
        try:
            seed = base64.b64decode(value[len(_PREFIX) :], validate=True)
        except (ValueError, binascii.Error):
            seed = b""
        if len(seed) == 32:
            return seed
    raise SigningKeyError(
        f"the secret '{SECRET_NAME}' is not an audit signing key (expected "
        f"'{_PREFIX}' and 32 bytes in base64): it was changed by hand"
    )


def load_or_create(
    vault: KeyVault,
    name: str,
    legacy: Path | None = None,
    expected: bytes | None = None,
    refuse_new: str | None = None,
    new_key_file: bool = True,
) -> tuple[Signer, bool]:
    """The signer, sealing a key when the store has none; True when sealed now.
    Two processes making it at once get one key: the store's lock decides.

    The key sealed is the PEM file `legacy` when it exists (where versions before the
    sealed store kept it, so the log's earlier checkpoints go on verifying), refused if
    it is not the key of the log's public key `expected`; else a new key, unless
    `refuse_new` says why none may be made (the log already has checkpoints: a new key
    would sign a log whose earlier checkpoints it cannot have signed). Without
    `new_key_file` no secret store is created for it (NoStoreYet)."""
    moved: list[Path] = []

    def make() -> str:
        if legacy is not None and legacy.is_file():
            seed = _seed_of_pem(legacy)
            if expected is not None and crypto.ed25519_public(seed) != expected:
                raise SigningKeyError(
                    f"the audit signing key {legacy} of an earlier version is not the key "
                    "of this log's public key (state_dir/audit/audit-key.pub): it is not "
                    "sealed; put the right key there, or remove it"
                )
            moved.append(legacy)
            return encode_seed(seed)
        if refuse_new is not None:
            raise SigningKeyError(refuse_new)
        return encode_seed(crypto.ed25519_new_seed())

    # a log that had a key: no quiet "not yet", but make()'s refusal, saying what is lost
    value, created = vault.setdefault(SECRET_NAME, make, new_key_file or refuse_new is not None)
    seed = decode_seed(value)
    if legacy is not None and not moved and legacy.is_file():
        moved += _sealed_already(legacy, seed)
    for path in moved:
        _remove_plain(path)
    return Signer(name, crypto.ed25519_public(seed), seed), created


def _sealed_already(legacy: Path, seed: bytes) -> list[Path]:
    """An earlier version's key file left beside a store that holds the same key (a
    crash between sealing and removing it): removed now. Another key is left alone."""
    try:
        same = _seed_of_pem(legacy) == seed
    except SigningKeyError as exc:
        log.warning("audit: %s; left alone (the sealed key is used)", exc.message)
        return []
    if not same:
        log.warning(
            "audit: %s is not the sealed signing key; left alone (the sealed key is used)",
            legacy,
        )
    return [legacy] if same else []


def _seed_of_pem(path: Path) -> bytes:
    try:
        return crypto.ed25519_seed_from_pem(path.read_bytes())
    except (OSError, ValueError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        raise SigningKeyError(
            f"the audit signing key {path} of an earlier version cannot be moved into the "
            f"secret store: {why}"
        ) from None


def _remove_plain(path: Path) -> None:
    """Once sealed, the plain private key goes: a copy of it could sign a rewritten log.
    A symbolic link is removed, never the file it points to."""
    from orchestrator.security.files import destroy

    try:
        destroy(path)
    except OSError as exc:
        log.warning("audit: sealed the key of %s but could not remove it: %s", path, exc)
        return
    log.warning("audit: moved the signing key %s into the secret store (file removed)", path)


def verify(public: bytes, message: bytes, signature: bytes) -> bool:
    return crypto.ed25519_verify(public, message, signature)
