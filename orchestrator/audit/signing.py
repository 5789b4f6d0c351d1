"""Ed25519 keys for checkpoints: the one module that imports `cryptography` (lazily).

The private key is made on first use, PKCS#8 PEM, mode 0600 in a 0700 directory, in a
place outside state_dir (see `orchestrator.audit.settings`): a copy of state_dir must
not let anyone sign a rewritten log. Its public half is written beside it as a C2SP
verifier key line (`name+keyid+base64`), the form auditors and other tools take.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import OrchestratorError


class SigningKeyError(OrchestratorError):
    """The signing key cannot be made, read or used."""


@dataclass(frozen=True)
class Signer:
    name: str
    public: bytes  # the 32 raw bytes of the Ed25519 public key
    _private: Any

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)


def public_path(key_file: Path) -> Path:
    return key_file.with_name(key_file.name + ".pub")


def load_or_create(key_file: Path, name: str) -> tuple[Signer, bool]:
    """The signer, making the key pair when there is none yet; True when it was made now."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    created = False
    if not key_file.exists():
        _create(key_file)
        created = True
    mode = key_file.stat().st_mode & 0o777
    if mode & 0o077:
        raise SigningKeyError(
            f"audit signing key {key_file} is readable by others (mode {mode:o}); "
            "run 'chmod 600' on it"
        )
    try:
        private = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        why = getattr(exc, "strerror", None) or "not an Ed25519 PEM private key"
        raise SigningKeyError(f"audit signing key {key_file}: cannot read it: {why}") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise SigningKeyError(f"audit signing key {key_file}: not an Ed25519 key")
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return Signer(name, public, private), created


def _create(key_file: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = key_file.with_name(f".{key_file.name}.{os.getpid()}.tmp")
    try:
        key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        os.link(tmp, key_file)  # appears whole, and only if no other process made one first
    except FileExistsError:
        pass  # another process made it first: use theirs
    except OSError as exc:
        raise SigningKeyError(
            f"cannot create the audit signing key {key_file}: {exc.strerror or exc}"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def verify(public: bytes, message: bytes, signature: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True
