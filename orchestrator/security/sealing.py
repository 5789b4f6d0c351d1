"""The sealed secret store's file format: AES-256-GCM under a key or a scrypt passphrase.

Pure: bytes in, bytes out; the cipher and the key derivation are `crypto.py`'s.

Layout of a sealed file:
    ORCHESTRATOR-SECRETS/1\\n           the version line
    {"kdf":...,"key_id":...,...}\\n     the header: canonical JSON, all in ASCII
    ciphertext || 16-byte GCM tag
The version line and header are GCM's associated data, so a changed byte anywhere fails
the tag check and nothing is ever returned from a damaged file. `key_id` (8 bytes of a
hash of the key) tells a wrong key or passphrase apart from a damaged file; it reveals
nothing a 256-bit key would not already resist.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass, field

from orchestrator.security import crypto

VERSION = 1
MAGIC = b"ORCHESTRATOR-SECRETS/"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
SALT_BYTES = 16

# scrypt for passphrases: about 0.9 s and 128 MiB here. Tests lower `n` (see keys.py).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1
_SCRYPT_MAX_N, _SCRYPT_MAX_R, _SCRYPT_MAX_P = 2**20, 32, 16


class SealError(Exception):
    """The file cannot be opened; `wrong_key` says the key (not the file) is to blame."""

    def __init__(self, reason: str, wrong_key: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.wrong_key = wrong_key


@dataclass(frozen=True)
class Header:
    """How the file was sealed: with a raw key (`kdf="key"`) or a passphrase (`"scrypt"`)."""

    kdf: str
    key_id: str
    nonce: bytes = field(repr=False)
    salt: bytes = b""
    n: int = 0
    r: int = 0
    p: int = 0

    def encode(self) -> bytes:
        doc: dict[str, object] = {"kdf": self.kdf, "key_id": self.key_id, "nonce": _b64(self.nonce)}
        if self.kdf == "scrypt":
            doc.update(salt=_b64(self.salt), n=self.n, r=self.r, p=self.p)
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("ascii")


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"orchestrator secret store key id\x00" + key).hexdigest()[:16]


def derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    """The 256-bit key of a passphrase (scrypt, RFC 7914)."""
    return crypto.scrypt(passphrase, salt, KEY_BYTES, n, r, p)


def passphrase_params(n: int = SCRYPT_N) -> tuple[bytes, int, int, int]:
    """A fresh salt and the scrypt cost for a new passphrase seal."""
    return os.urandom(SALT_BYTES), n, SCRYPT_R, SCRYPT_P


def seal(plaintext: bytes, key: bytes, kdf: str = "key", salt: bytes = b"", n: int = 0) -> bytes:
    """The sealed file's bytes; `salt`/`n` are recorded when `key` came from a passphrase."""
    if len(key) != KEY_BYTES:
        raise ValueError("an AES-256 key has 32 bytes")
    header = Header(
        kdf=kdf,
        key_id=key_id(key),
        nonce=os.urandom(NONCE_BYTES),
        salt=salt,
        n=n,
        r=SCRYPT_R if kdf == "scrypt" else 0,
        p=SCRYPT_P if kdf == "scrypt" else 0,
    )
    aad = MAGIC + str(VERSION).encode() + b"\n" + header.encode() + b"\n"
    return aad + crypto.aes_gcm_encrypt(key, header.nonce, plaintext, aad)


def read_header(blob: bytes) -> tuple[Header, bytes, bytes]:
    """The header, the associated data and the ciphertext; SealError when malformed."""
    if not blob:
        raise SealError("the file is empty")
    first, sep, rest = blob.partition(b"\n")
    if not sep or not first.startswith(MAGIC):
        raise SealError("not a sealed secret store (no version line)")
    version = first[len(MAGIC) :]
    if version != str(VERSION).encode():
        shown = version[:12].decode("ascii", "replace")
        raise SealError(f"unknown format version '{shown}' (this program reads {VERSION})")
    line, sep, ciphertext = rest.partition(b"\n")
    if not sep:
        raise SealError("the header is cut short")
    header = _parse_header(line)
    if len(ciphertext) < TAG_BYTES:
        raise SealError("the file is cut short (no authentication tag)")
    return header, blob[: len(first) + len(line) + 2], ciphertext


def unseal(blob: bytes, key: bytes) -> bytes:
    """The plaintext, or SealError: never a part of it."""
    header, aad, ciphertext = read_header(blob)
    if key_id(key) != header.key_id:
        raise SealError("the key does not open it (wrong key or passphrase)", wrong_key=True)
    try:
        return crypto.aes_gcm_decrypt(key, header.nonce, ciphertext, aad)
    except crypto.AuthenticationFailed:
        raise SealError("it was altered or damaged (authentication failed)") from None


def _parse_header(line: bytes) -> Header:
    try:
        doc = json.loads(line.decode("ascii"))
        if not isinstance(doc, dict):
            raise ValueError
        kdf = doc["kdf"]
        header = Header(kdf=kdf, key_id=str(doc["key_id"]), nonce=_unb64(doc["nonce"]))
        if kdf == "scrypt":
            header = Header(
                kdf=kdf,
                key_id=header.key_id,
                nonce=header.nonce,
                salt=_unb64(doc["salt"]),
                n=_bounded(doc["n"], _SCRYPT_MAX_N),
                r=_bounded(doc["r"], _SCRYPT_MAX_R),
                p=_bounded(doc["p"], _SCRYPT_MAX_P),
            )
            if header.n < 2 or header.n & (header.n - 1) or len(header.salt) < 8:
                raise ValueError
        elif kdf != "key":
            raise ValueError
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, binascii.Error):
        raise SealError("the header is damaged") from None
    if len(header.nonce) != NONCE_BYTES:
        raise SealError("the header is damaged")
    return header


def _bounded(value: object, top: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= top:
        raise ValueError
    return value


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise ValueError
    return base64.b64decode(text, validate=True)
