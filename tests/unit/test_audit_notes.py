"""Checkpoints as C2SP signed notes, canonical records and event records: tables.

The signed-note format is checked against the example of Go's golang.org/x/mod/sumdb/note
(the reference implementation of C2SP signed-note): from its signer key, our code derives
the same verifier key and the same signature line, byte for byte."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orchestrator.audit import checkpoint as cp
from orchestrator.audit import signing
from orchestrator.audit.record import RecordError, canonical, parse
from orchestrator.audit.sink import event_record
from orchestrator.events import Event

pytestmark = pytest.mark.unit

# golang.org/x/mod/sumdb/note, package documentation.
GO_SKEY_SEED = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"  # from PRIVATE+KEY+PeterNeumann+...
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_SIG_LINE = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXg"
    "KvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def _key(seed: bytes | None = None) -> tuple[Ed25519PrivateKey, bytes]:
    priv = Ed25519PrivateKey.from_private_bytes(seed) if seed else Ed25519PrivateKey.generate()
    pub = priv.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return priv, pub


def test_the_go_note_example_byte_for_byte() -> None:
    priv, pub = _key(base64.b64decode(GO_SKEY_SEED)[1:])
    vkey = cp.verifier_key("PeterNeumann", pub)
    assert vkey.text() == GO_VKEY
    assert cp.parse_verifier_key(GO_VKEY) == vkey
    sig = priv.sign(GO_TEXT.encode())
    line = "\u2014 PeterNeumann " + base64.b64encode(vkey.key_id + sig).decode() + "\n"
    assert line == GO_SIG_LINE
    assert signing.verify(pub, GO_TEXT.encode(), sig)


ROOT = bytes(range(32))


@pytest.fixture(scope="module")
def signed() -> tuple[str, cp.VerifierKey]:
    priv, pub = _key()
    text = cp.sign(cp.Checkpoint("example.org/audit", 7, ROOT), "example.org/audit", pub, priv.sign)
    return text, cp.verifier_key("example.org/audit", pub)


def test_a_checkpoint_is_the_c2sp_layout_and_verifies(signed: tuple[str, cp.VerifierKey]) -> None:
    text, key = signed
    lines = text.split("\n")
    assert lines[:4] == ["example.org/audit", "7", base64.b64encode(ROOT).decode(), ""]
    assert lines[4].startswith("\u2014 example.org/audit ")
    assert cp.verify(text, key, signing.verify) == cp.Checkpoint("example.org/audit", 7, ROOT)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.replace("\n7\n", "\n8\n"), "signature does not verify"),
        (lambda t: t.replace("example.org/audit\n", "example.org/other\n", 1), "does not verify"),
        (lambda t: t.replace("\n7\n", "\n07\n"), "tree size '07' is not a decimal number"),
        (lambda t: t.replace("\n7\n", "\n-7\n"), "is not a decimal number"),
        (lambda t: t.replace("\n\n", "\n"), "no blank line"),
        (lambda t: t.split("\n\n")[0] + "\n\n", "has no signature"),
        (lambda t: t.replace("\u2014 ", "- "), "does not start with an em dash"),
        (lambda t: t.replace(base64.b64encode(ROOT).decode(), "AAAA"), "not 32 bytes"),
    ],
)
def test_an_altered_checkpoint_is_refused(
    signed: tuple[str, cp.VerifierKey], change: object, message: str
) -> None:
    text, key = signed
    with pytest.raises(cp.CheckpointError, match=message):
        cp.verify(change(text), key, signing.verify)  # type: ignore[operator]


def test_a_checkpoint_by_another_key_is_named_as_such(signed: tuple[str, cp.VerifierKey]) -> None:
    text, _ = signed
    _, other = _key()
    with pytest.raises(cp.CheckpointError, match="not signed by the audit key"):
        cp.verify(text, cp.verifier_key("example.org/audit", other), signing.verify)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name+c74f20a3", "not a verifier key"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "key id does not"),
        ("PeterNeumann+c74f20a3+AhpjZA==", "not an Ed25519 verifier key"),
        ("PeterNeumann+zz+ARpc", "not hex/base64"),
    ],
)
def test_bad_verifier_keys(text: str, message: str) -> None:
    with pytest.raises(cp.CheckpointError, match=message):
        cp.parse_verifier_key(text)


def test_canonical_records_round_trip_and_refuse_other_forms() -> None:
    rec = {"n": 0, "prev": "x", "time": "t", "who": "ü", "what": "w", "outcome": "o", "z": None}
    line = canonical(rec)
    assert line == '{"n":0,"outcome":"o","prev":"x","time":"t","what":"w","who":"ü"}'.encode()
    assert parse(line, 0)["who"] == "ü"
    for bad, why in [
        (line.replace(b",", b", ", 1), "not in canonical form"),
        (line[:-1], "not valid JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"n":0}', "lacks prev, time, who, what, outcome"),
        (
            b'{"n":0,"outcome":"o","prev":"x","time":"t","what":"w","who":"\\u00fc"}',
            "not in canonical form",
        ),
    ]:
        with pytest.raises(RecordError, match=why):
            parse(bad, 0)


def test_an_event_becomes_one_record() -> None:
    when = datetime(2026, 12, 1, 1, 30, tzinfo=UTC)
    ev = Event(
        "run.failed",
        when,
        "error",
        "backup failed",
        "web",
        "nas",
        "r1",
        {"snapshot_id": None, "level": "full", "error_kind": "network"},
    )
    rec = event_record(ev)
    assert rec["what"] == "run.failed" and rec["outcome"] == "failed"
    assert (rec["policy"], rec["target"], rec["run_id"]) == ("web", "nas", "r1")
    assert rec["event_time"] == "2026-12-01T01:30:00+00:00"
    assert rec["details"] == {"level": "full", "error_kind": "network"}
    done = event_record(Event("verify.done", when, "info", "ok", details={"outcome": "ok"}))
    assert done["outcome"] == "ok"
    assert event_record(Event("slot.missed", when, "warning", "x"))["outcome"] == "missed"


def test_who_is_the_person_behind_sudo(monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.audit.identity import current_identity

    monkeypatch.delenv("SUDO_USER", raising=False)
    me = current_identity()
    assert me["who"] == me["unix_user"]
    monkeypatch.setenv("SUDO_USER", "alice")
    assert current_identity() == {"who": "alice", "unix_user": me["unix_user"]}
