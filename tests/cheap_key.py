"""Re-seal a test repository's key with cheap scrypt parameters.

Every restic process that opens a repository first derives the key from the password
with the scrypt parameters `restic init` calibrated (about 0.6 s here, more on 0.18 and
under load): thousands of restic processes make that most of the suite's time. restic's
own tests lower the parameters the same way (`TestUseLowSecurityKDFParameters`); restic
still reads the repository exactly as it reads any other, because the master key, the
config and the format are unchanged: only the key file's wrapping is cheaper.

Format (restic's design document, "Keys, Encryption and MAC"): the key file is JSON with
`kdf`, `N`, `r`, `p`, `salt` and `data`; scrypt(password, salt) gives 64 bytes: the
AES-256 key, then the Poly1305-AES MAC key as k (16) || r (16); `data` is IV (16) ||
AES-256-CTR ciphertext || Poly1305-AES tag of the ciphertext with nonce IV. Key files are
named by the SHA-256 of their content, so the re-sealed file gets a new name.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.poly1305 import Poly1305

CHEAP = {"N": 1024, "r": 8, "p": 1}


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> tuple[bytes, bytes, bytes]:
    raw = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=64, maxmem=1 << 30)
    return raw[:32], raw[32:48], raw[48:64]  # AES key, MAC k, MAC r


def _tag(ciphertext: bytes, nonce: bytes, mac_k: bytes, mac_r: bytes) -> bytes:
    aes = Cipher(algorithms.AES(mac_k), modes.ECB()).encryptor()
    s = aes.update(nonce) + aes.finalize()
    return Poly1305.generate_tag(mac_r + s, ciphertext)


def _ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    ctr = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return ctr.update(data) + ctr.finalize()


def cheapen_keys(repo: Path, password: str) -> None:
    """Re-seal every key file of the local repository `repo` with `CHEAP` parameters."""
    for path in sorted((repo / "keys").iterdir()):
        key = json.loads(path.read_text())
        enc, mac_k, mac_r = _derive(
            password, base64.b64decode(key["salt"]), key["N"], key["r"], key["p"]
        )
        sealed = base64.b64decode(key["data"])
        iv, body, tag = sealed[:16], sealed[16:-16], sealed[-16:]
        if not hmac.compare_digest(_tag(body, iv, mac_k, mac_r), tag):
            raise ValueError(f"{path}: the password does not open this key")
        master = _ctr(enc, iv, body)
        salt = os.urandom(64)
        enc, mac_k, mac_r = _derive(password, salt, CHEAP["N"], CHEAP["r"], CHEAP["p"])
        iv = os.urandom(16)
        body = _ctr(enc, iv, master)
        key.update(CHEAP)
        key["salt"] = base64.b64encode(salt).decode()
        key["data"] = base64.b64encode(iv + body + _tag(body, iv, mac_k, mac_r)).decode()
        content = json.dumps(key).encode()
        new = path.with_name(hashlib.sha256(content).hexdigest())
        new.write_bytes(content)
        new.chmod(path.stat().st_mode & 0o777)
        path.unlink()
