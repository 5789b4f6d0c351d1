"""The sealed store's format (security/sealing.py): a round trip, and every kind of damage
or wrong key refused with a reason and no plaintext, never a partial read."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.errors import SecretError
from orchestrator.security import keys, sealing

pytestmark = pytest.mark.unit

KEY = bytes(range(32))
PLAIN = b'{"secrets": {"repo": "correct horse battery staple"}}'


def _sealed() -> bytes:
    return sealing.seal(PLAIN, KEY)


def _parts(blob: bytes) -> tuple[int, int]:
    """Where the header line starts and where the ciphertext starts."""
    first = blob.index(b"\n") + 1
    return first, blob.index(b"\n", first) + 1


def _flip(blob: bytes, at: int) -> bytes:
    out = bytearray(blob)
    out[at] ^= 0x01
    return bytes(out)


def _reheader(blob: bytes, **changes: object) -> bytes:
    first, body = _parts(blob)
    doc = json.loads(blob[first : body - 1])
    doc.update(changes)
    line = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return blob[:first] + line + b"\n" + blob[body:]


def _other_nonce(blob: bytes) -> bytes:
    first, body = _parts(blob)
    nonce = bytearray(base64.b64decode(json.loads(blob[first : body - 1])["nonce"]))
    nonce[0] ^= 0x80
    return _reheader(blob, nonce=base64.b64encode(bytes(nonce)).decode())


def test_round_trip_and_a_fresh_nonce_each_time() -> None:
    one, two = _sealed(), _sealed()
    assert sealing.unseal(one, KEY) == PLAIN == sealing.unseal(two, KEY)
    assert one != two  # a new nonce per seal
    assert PLAIN not in one and b"correct horse" not in one
    assert one.startswith(b"ORCHESTRATOR-SECRETS/1\n")


def test_passphrase_round_trip_with_a_cheap_scrypt() -> None:
    salt, n, r, p = sealing.passphrase_params(n=16)
    key = sealing.derive("a long passphrase", salt, n, r, p)
    blob = sealing.seal(PLAIN, key, "scrypt", salt, n)
    header = sealing.read_header(blob)[0]
    assert (header.kdf, header.n, header.salt) == ("scrypt", 16, salt)
    again = sealing.derive("a long passphrase", header.salt, header.n, header.r, header.p)
    assert sealing.unseal(blob, again) == PLAIN
    wrong = sealing.derive("another passphrase", header.salt, header.n, header.r, header.p)
    with pytest.raises(sealing.SealError) as caught:
        sealing.unseal(blob, wrong)
    assert caught.value.wrong_key


def test_a_wrong_key_is_told_apart_from_damage() -> None:
    with pytest.raises(sealing.SealError) as caught:
        sealing.unseal(_sealed(), bytes(32))
    assert caught.value.wrong_key and "wrong key" in caught.value.reason


TAMPER: list[tuple[str, Callable[[bytes], bytes], str]] = [
    ("empty file", lambda b: b"", "empty"),
    ("version line byte", lambda b: _flip(b, 3), "no version line"),
    ("version number", lambda b: b.replace(b"/1\n", b"/2\n", 1), "unknown format version '2'"),
    ("header brace", lambda b: _flip(b, _parts(b)[0]), "header is damaged"),
    ("header kdf", lambda b: _reheader(b, kdf="none"), "header is damaged"),
    ("header extra key", lambda b: _reheader(b, extra=1), "authentication failed"),
    ("header key id", lambda b: _reheader(b, key_id="0" * 16), "wrong key"),
    ("nonce byte", _other_nonce, "authentication failed"),
    ("nonce length", lambda b: _reheader(b, nonce="AAAA"), "header is damaged"),
    ("first ciphertext byte", lambda b: _flip(b, _parts(b)[1]), "authentication failed"),
    ("middle ciphertext byte", lambda b: _flip(b, _parts(b)[1] + 20), "authentication failed"),
    ("last tag byte", lambda b: _flip(b, len(b) - 1), "authentication failed"),
    ("first tag byte", lambda b: _flip(b, len(b) - 16), "authentication failed"),
    ("one byte cut", lambda b: b[:-1], "authentication failed"),
    ("cut inside the tag", lambda b: b[: _parts(b)[1] + 10], "cut short"),
    ("cut inside the header", lambda b: b[: _parts(b)[0] + 5], "header is cut short"),
    ("cut after the version", lambda b: b[: _parts(b)[0]], "header is cut short"),
    ("one byte appended", lambda b: b + b"\0", "authentication failed"),
    ("bytes swapped", lambda b: b[:-2] + b[-1:] + b[-2:-1], "authentication failed"),
]


@pytest.mark.parametrize(("what", "tamper", "reason"), TAMPER, ids=[t[0] for t in TAMPER])
def test_every_tamper_is_refused_with_its_reason(
    what: str, tamper: Callable[[bytes], bytes], reason: str
) -> None:
    blob = _sealed()
    damaged = tamper(blob)
    assert damaged != blob, what
    with pytest.raises(sealing.SealError) as caught:
        sealing.unseal(damaged, KEY)
    assert reason in caught.value.reason
    assert "correct horse" not in caught.value.reason


@pytest.mark.parametrize("n", [0, 3, 2**21, True, "16"])
def test_a_header_asking_for_absurd_scrypt_costs_is_damage(n: object) -> None:
    salt = sealing.passphrase_params(n=16)[0]
    blob = sealing.seal(PLAIN, bytes(32), "scrypt", salt, 16)
    assert sealing.read_header(_reheader(blob, n=32))[0].n == 32  # the control
    with pytest.raises(sealing.SealError, match="header is damaged"):
        sealing.read_header(_reheader(blob, n=n))


@pytest.mark.parametrize(
    ("data", "ok"),
    [
        (KEY, True),
        (KEY.hex().encode() + b"\n", True),
        (base64.b64encode(KEY) + b"\n", True),
        (keys.encode_key(KEY), True),
        (b"short", False),
        (b"", False),
        (KEY.hex()[:-2].encode(), False),
        (base64.b64encode(KEY[:31]), False),
    ],
)
def test_key_encodings(data: bytes, ok: bool) -> None:
    assert (keys.parse_key(data) == KEY) is ok


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("/etc/orchestrator/policies.toml", "/etc/orchestrator/keys/secrets.key"),
        ("/srv/a/policies.toml", "/srv/a/keys/secrets.key"),
        ("/srv/b/other-name.toml", "/srv/b/keys/other-name.secrets.key"),  # two in one folder
        ("/srv/b/policies.toml", "/srv/b/keys/secrets.key"),
    ],
)
def test_the_default_key_file_is_beside_the_configuration(config: str, expected: str) -> None:
    """One key per configuration: two configurations never rotate each other's key."""
    assert keys.default_key_file(Path(config)) == Path(expected)


@pytest.mark.parametrize(
    ("euid", "home", "xdg", "expected"),
    [
        (0, "/root", None, "/etc/orchestrator/secrets.key"),
        (0, "/root", "/root/.cfg", "/etc/orchestrator/secrets.key"),
        (1000, "/home/ann", None, "/home/ann/.config/orchestrator/secrets.key"),
        (1000, "/home/ann", "/home/ann/cfg", "/home/ann/cfg/orchestrator/secrets.key"),
        (1000, "/home/ann", "relative", "/home/ann/.config/orchestrator/secrets.key"),
    ],
)
def test_the_default_of_earlier_versions(
    euid: int, home: str, xdg: str | None, expected: str
) -> None:
    assert keys.earlier_default(euid, home, xdg) == Path(expected)


@pytest.mark.parametrize(
    ("present", "expected"),
    [
        ((), "new"),  # a first install: the key beside the configuration
        (("earlier",), "new"),  # no store yet: the earlier key is not this store's
        (("store",), "new"),  # a store without any key: the error names the new place
        (("store", "earlier"), "earlier"),  # an upgrade keeps the key its store was sealed with
        (("store", "earlier", "new"), "new"),  # once the new one exists, it wins
        (("earlier", "new"), "new"),
        (("store", "earlier", "rotating"), "new"),  # a rotation onto it was interrupted
    ],
)
def test_an_upgraded_store_keeps_the_key_it_was_sealed_with(
    tmp_path: Path, present: tuple[str, ...], expected: str
) -> None:
    paths = {
        "new": tmp_path / "etc" / "keys" / "secrets.key",
        "store": tmp_path / "var" / "secrets.sealed",
        "earlier": tmp_path / "old" / "secrets.key",
        "rotating": tmp_path / "etc" / "keys" / "secrets.key.new",
    }
    for name in present:
        paths[name].parent.mkdir(parents=True, exist_ok=True)
        paths[name].write_bytes(b"x")
    found = keys.key_file_for(tmp_path / "etc" / "policies.toml", paths["store"], paths["earlier"])
    assert found == paths[expected]


def test_one_module_imports_cryptography() -> None:
    """AES-GCM, scrypt and Ed25519 all come from security/crypto.py (issue 16)."""
    root = Path(__file__).resolve().parents[2] / "orchestrator"
    users = sorted(
        str(p.relative_to(root)) for p in root.rglob("*.py") if "cryptography" in _code(p)
    )
    assert users == ["security/crypto.py"]


def _code(path: Path) -> str:
    """The source without comments and docstrings: only imports and calls count."""
    import ast

    tree = ast.parse(path.read_text())
    imports = (n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom))
    return " ".join(ast.unparse(node) for node in imports)


def test_rotating_off_a_shared_earlier_key_leaves_it_to_the_other_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Upgraded stores all sealed under the earlier default key: rotating one moves it
    to its own key file and leaves the shared one (overwriting it lost the others)."""
    from orchestrator.security.secrets import SecretStore

    shared = tmp_path / "etc" / "secrets.key"
    monkeypatch.setattr(keys, "earlier_default", lambda *a: shared)
    config = tmp_path / "conf" / "policies.toml"
    own = keys.shared_earlier_default(shared, config)
    assert own == tmp_path / "conf" / "keys" / "secrets.key"
    assert keys.shared_earlier_default(own, config) is None  # its own file: rotate in place

    first, second = (SecretStore(tmp_path / n, shared) for n in ("var1", "var2"))
    first.set("a", "one")
    second.set("b", "two")
    kept = shared.read_bytes()
    assert "left for the other stores" in first.rotate(False, own)
    assert shared.read_bytes() == kept and own.is_file()
    assert SecretStore(tmp_path / "var2", shared).resolve("secret:b") == "two"
    assert SecretStore(tmp_path / "var1", own).resolve("secret:a") == "one"
    with pytest.raises(SecretError, match="wrong key"):
        SecretStore(tmp_path / "var1", shared).resolve("secret:a")
