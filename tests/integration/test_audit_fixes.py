"""Break-it findings on the audit log, each proved through the real command line: runs
killed with -9, commands that change secrets or keys, a log cut at its newest records, a
repository's checkpoint of another key, a bad export place, malformed proofs."""

from __future__ import annotations

import dataclasses
import json
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ORCHESTRATOR, Workspace
from test_audit_tamper import AuditWs, aws  # noqa: F401  (a fixture)
from test_faults import (
    big_data,  # noqa: F401  (a fixture)
    catalog_runs,
    spawn,  # noqa: F401  (a fixture)
    wait_for_restic_backup,
)

pytestmark = pytest.mark.integration


def audit_records(ws: Workspace | AuditWs, *args: str) -> list[dict]:
    return json.loads(ws.orc("--json", "audit", "show", *args).stdout)["records"]


# ----------------------------------------------------------------- A: kill -9


@pytest.mark.parametrize("first", [("status",), ("catalog", "rebuild")], ids=["status", "rebuild"])
def test_a_run_killed_with_9_is_an_audit_record_at_the_next_start(
    workspace: Workspace,
    big_data: Path,  # noqa: F811
    spawn: Callable[..., subprocess.Popen[str]],  # noqa: F811
    first: tuple[str, ...],
) -> None:
    ws = workspace
    orc = spawn("backup", "files", "--level", "full")
    wait_for_restic_backup(orc, ws.repo, big_data)
    orc.kill()
    orc.communicate(timeout=30)
    assert orc.returncode == -signal.SIGKILL
    [run] = catalog_runs(ws)
    assert run["outcome"] == "running"
    assert [r for r in audit_records(ws) if r["what"] == "run.interrupted"] == []

    ws.orc(*first)

    [run] = catalog_runs(ws)
    assert run["outcome"] == "interrupted"
    [rec] = [r for r in audit_records(ws) if r["what"] == "run.interrupted"]
    assert rec["run_id"] == run["id"]
    assert (rec["outcome"], rec["policy"], rec["target"]) == ("interrupted", "files", "local")
    ws.orc("status")  # recovered once: the next start records nothing more
    assert len([r for r in audit_records(ws) if r["what"] == "run.interrupted"]) == 1
    assert len(catalog_runs(ws)) == 1  # no second run row in the catalog


# ----------------------------------------------------------------- B: secrets, key, catalog

SET_VALUE = "value-never-in-the-log-1f3a"
PLAIN_VALUE = "plain-value-never-in-the-log-9c2e"


def test_secret_key_and_catalog_commands_are_audit_records_without_values(
    workspace: Workspace,
) -> None:
    ws = workspace
    extra = 'secrets_key_file = "keys/secrets.key"\n'
    ws.config.write_text(
        ws.config.read_text().replace('timezone = "UTC"\n', 'timezone = "UTC"\n' + extra)
    )
    ws.orc("secrets", "set", "db-password", input=SET_VALUE + "\n")
    ws.orc("secrets", "set", "generated-one", "--generate")
    plain = ws.root / "var" / "secrets"
    plain.mkdir(parents=True, exist_ok=True)
    (plain / "old-plain").write_text(PLAIN_VALUE)
    ws.orc("secrets", "migrate")
    ws.orc("secrets", "rotate")
    ws.orc("secrets", "remove", "db-password")
    ws.orc("secrets", "remove", "no-such-secret", check=None)
    ws.orc("audit", "init")
    ws.orc("audit", "checkpoint")
    ws.orc("catalog", "rebuild")

    records = audit_records(ws)
    acts = [
        (r["what"], r["outcome"], r.get("secret"))
        for r in records
        if r["what"].startswith(("secret.set", "secret.remove", "secrets.", "audit.", "catalog."))
    ]
    assert acts == [
        ("secret.set", "success", "db-password"),
        ("secret.set", "success", "generated-one"),
        ("secrets.migrate", "success", None),
        ("secrets.rotate", "success", None),
        ("secret.remove", "success", "db-password"),
        ("secret.remove", "failed", "no-such-secret"),
        ("audit.init", "success", None),
        ("audit.checkpoint", "success", None),
        ("catalog.rebuild", "success", None),
    ], acts
    by_what = {r["what"]: r for r in records}
    assert by_what["secrets.migrate"]["secrets"] == ["old-plain"]
    assert str(ws.root / "keys" / "secrets.key") in by_what["secrets.rotate"]["new_key"]
    assert by_what["audit.checkpoint"]["tree_size"] > 0
    assert all(r.get("unix_user") or r.get("who") for r in records)
    log = (ws.root / "var" / "audit" / "log.jsonl").read_bytes()
    assert SET_VALUE.encode() not in log and PLAIN_VALUE.encode() not in log
    ws.orc("audit", "verify")


# ----------------------------------------------------------------- C: the newest records cut


@pytest.fixture
def sparse(tmp_path: Path) -> AuditWs:
    """Ten records, only the first in a checkpoint (the default cadence is 100)."""
    ws = AuditWs(tmp_path, every=100)
    ws.write()
    return ws


@pytest.mark.parametrize("cut", [1, 3])
def test_deleting_the_newest_lines_is_damage_named_at_the_first_missing(
    sparse: AuditWs, cut: int
) -> None:
    sparse.set_lines(sparse.lines()[:-cut])  # sed -i '$d'
    err = sparse.broken()
    assert f"the log has {10 - cut} complete records" in err
    assert f"record {10 - cut} onward removed" in err, err
    # and nothing more is appended over the gap
    result = sparse.orc("status", check=1)
    assert "audit log" in result.stderr and "damaged" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert len(sparse.lines()) == 10 - cut


def test_cutting_into_a_committed_record_is_damage_and_never_repaired(sparse: AuditWs) -> None:
    whole = sparse.log.read_bytes()
    sparse.log.write_bytes(whole[:-7])  # the last record loses its end and its newline
    err = sparse.broken()
    assert "record 9 onward removed" in err, err
    result = sparse.orc("status", check=1)
    assert "record 9 is cut" in result.stderr, result.stderr
    assert sparse.log.read_bytes() == whole[:-7]  # not "repaired" by an append
    assert b"audit.torn_tail" not in sparse.log.read_bytes()


def test_a_torn_line_beyond_the_committed_records_is_still_repaired(sparse: AuditWs) -> None:
    with sparse.log.open("ab") as fh:
        fh.write(b'{"details":{"half":')
    assert "audit log intact: 10 records" in sparse.orc("audit", "verify").stdout
    sparse.orc("status")
    whats = [json.loads(line)["what"] for line in sparse.lines()]
    assert whats[10] == "audit.torn_tail"
    sparse.orc("audit", "verify")


# ----------------------------------------------------------------- D: a repository's checkpoint


@pytest.mark.parametrize("replaced", ["key", "log"])
def test_a_repository_checkpoint_of_another_key_or_a_larger_tree_is_not_overwritten(
    workspace: Workspace, replaced: str
) -> None:
    ws = workspace
    ws.orc("audit", "init")
    for _ in range(3):
        ws.orc("status")
    ws.orc("audit", "checkpoint")
    there = ws.repo / "orchestrator-audit" / "checkpoint"
    kept = there.read_text()
    kept_size = int(kept.splitlines()[1])
    # Someone replaces the log (and, for "key", the signing key too) with a shorter one.
    shutil.rmtree(ws.root / "var" / "audit")
    if replaced == "key":  # the signing key lives in the secret store: a new store
        (ws.root / "var" / "secrets.sealed").unlink()
        shutil.rmtree(ws.root / "keys")

    result = ws.orc("audit", "checkpoint", check=1 if replaced == "key" else 4)

    assert there.read_text() == kept  # the evidence stays
    last = result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr
    if replaced == "key":  # no new key while the repository holds the old log's checkpoint
        assert "holds no audit signing key, but this log has a checkpoint in the repository" in last
    else:
        assert f"target 'local': {there}" in last, last
        assert f"holds a checkpoint of {kept_size} records, more than this log's" in last
        [rec] = [r for r in audit_records(ws) if r["what"] == "audit.checkpoint"]
        assert rec["outcome"] == "refused" and "target 'local'" in rec["refused"][0]
    # the repository's copy still convicts the replaced log
    ws.orc("audit", "verify", check=4)


# ----------------------------------------------------------------- E: the export place


def test_an_export_dir_that_is_a_file_is_a_validate_problem(aws: AuditWs) -> None:  # noqa: F811
    (aws.root / "a-file").write_text("not a folder\n")
    aws.config.write_text(aws.config.read_text() + 'export_dir = "a-file"\n')
    result = aws.orc("validate", check=2)
    assert "export_dir" in result.stderr and "a-file exists and is not a directory" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["init", "checkpoint"])
def test_a_failed_export_fails_audit_init_and_checkpoint_naming_the_place(
    aws: AuditWs,  # noqa: F811
    command: str,
) -> None:
    export = aws.root / "var" / "audit" / "export"
    shutil.rmtree(export / "checkpoints")
    (export / "checkpoints").write_text("in the way\n")  # the history folder cannot be made
    before = (export / "checkpoint").read_text()
    result = aws.orc("audit", command, check=1)
    [line] = result.stderr.strip().splitlines()[-1:]
    assert f"checkpoint not exported to {export}" in line, result.stderr
    assert "Traceback" not in result.stderr
    assert (export / "checkpoint").read_text() == before
    [rec] = [r for r in audit_records(aws) if r["what"] == f"audit.{command}"]
    assert rec["outcome"] == "failed" and "cannot write" in rec["error"]


# ----------------------------------------------------------------- F: malformed inputs


def _check_proof(ws: AuditWs, where: Path, proof: str) -> subprocess.CompletedProcess[str]:
    """As an auditor runs it: no policies file, no log; only the public key."""
    config = str(where / "absent.toml")
    return subprocess.run(
        [*ORCHESTRATOR, "--config", config, "audit", "check-proof", proof, "--key", str(ws.pub)],
        cwd=where,
        capture_output=True,
        text=True,
        env=ws.env,
        check=False,
    )


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("prove", "tree_size", -1),
        ("prove", "tree_size", 9),
        ("prove", "index", -1),
        ("consistency", "old_size", -1),
        ("consistency", "new_size", 11),
    ],
)
def test_check_proof_refuses_a_proof_stating_a_wrong_size(
    aws: AuditWs,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
    kind: str,
    field: str,
    value: int,
) -> None:
    auditor = tmp_path_factory.mktemp("auditor")
    args = ("prove", "3") if kind == "prove" else ("consistency", "4", "10")
    doc = json.loads(aws.orc("audit", *args).stdout)
    (auditor / "good.json").write_text(json.dumps(doc))
    assert _check_proof(aws, auditor, "good.json").returncode == 0
    doc[field] = value
    (auditor / "bad.json").write_text(json.dumps(doc))
    result = _check_proof(aws, auditor, "bad.json")
    assert result.returncode == 4, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("orchestrator: proof fails: ") and f"'{field}'" in line, line


def test_verify_with_a_garbage_checkpoint_file_is_a_usage_error(aws: AuditWs) -> None:  # noqa: F811
    garbage = aws.root / "garbage"
    garbage.write_text("this is not a checkpoint\n")
    result = aws.orc("audit", "verify", "--checkpoint", str(garbage), check=2)
    [line] = result.stderr.strip().splitlines()
    assert f"--checkpoint {garbage} is not a checkpoint" in line and "damaged" not in line
    # a real checkpoint that does not verify is still damage
    other = aws.root / "var" / "audit" / "checkpoint"
    forged = aws.root / "forged"
    forged.write_text(other.read_text().replace("\n10\n", "\n9\n", 1))
    assert "damaged" in aws.orc("audit", "verify", "--checkpoint", str(forged), check=4).stderr


# ----------------------------------------------------------------- an upgrade


def test_an_earlier_versions_key_file_is_moved_into_the_store(workspace: Workspace) -> None:
    """Versions before the sealed key kept it as a PEM file beside policies.toml: the
    first command after the upgrade seals that same key (the log's earlier checkpoints
    go on verifying) and removes the plain file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from orchestrator.audit.checkpoint import parse_verifier_key

    ws = workspace
    key = Ed25519PrivateKey.generate()
    pem = ws.root / "keys" / "audit-ed25519.pem"
    pem.parent.mkdir(mode=0o700, exist_ok=True)
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pem.chmod(0o600)
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )

    result = ws.orc("audit", "init")

    pub = ws.root / "var" / "audit" / "audit-key.pub"
    assert parse_verifier_key(pub.read_text(), str(pub)).public == public
    assert pub.read_text().strip() in result.stdout
    assert not pem.exists()
    assert "audit-signing-key" in ws.orc_json("secrets", "list")["names"]
    ws.orc("audit", "verify")


# ----------------------------------------------------------------- the sealed key, broken


def _pem(path: Path) -> bytes:
    """An earlier version's PEM key file at `path`; its raw public key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@pytest.mark.parametrize("lost", ["store", "store-and-key-file"])
def test_a_lost_store_never_makes_a_new_key_in_place_of_the_published_one(
    workspace: Workspace, lost: str
) -> None:
    """Break-it D2: the store lost (a state_dir restored without keys/), the next
    checkpoint made a new key and overwrote audit-key.pub, exit 0; verify then failed."""
    ws = workspace
    ws.config.write_text(ws.config.read_text() + "\n[audit]\ncheckpoint_every = 1\n")
    ws.orc("audit", "init")
    pub = ws.root / "var" / "audit" / "audit-key.pub"
    published = pub.read_text()
    (ws.root / "var" / "secrets.sealed").unlink()
    if lost == "store-and-key-file":
        shutil.rmtree(ws.root / "keys")

    result = ws.orc("audit", "checkpoint", check=1)
    assert "holds no audit signing key, but this log has its public key" in result.stderr
    assert "Traceback" not in result.stderr
    backup = ws.orc("backup", "files")  # the work goes on; the records are written
    assert "checkpoint" in backup.stderr and "not signed" in backup.stderr
    assert pub.read_text() == published
    assert "audit-signing-key" not in ws.orc_json("secrets", "list")["names"]
    ws.orc("audit", "verify")  # intact: the records stand, unsigned since the last checkpoint


def test_an_earlier_key_file_of_another_key_is_refused_and_kept(workspace: Workspace) -> None:
    """Break-it D3: a PEM that is not the log's key replaced the public key silently."""
    ws = workspace
    ws.orc("audit", "init")
    (ws.root / "var" / "secrets.sealed").unlink()
    pem = ws.root / "keys" / "audit-ed25519.pem"
    _pem(pem)
    result = ws.orc("audit", "checkpoint", check=1)
    assert f"{pem} of an earlier version is not the key of this log's public key" in result.stderr
    assert pem.exists()


def test_an_earlier_key_file_that_is_a_link_removes_only_the_link(workspace: Workspace) -> None:
    """Break-it D4: the upgrade zeroed the file a linked PEM pointed to."""
    ws = workspace
    elsewhere = ws.root / "elsewhere.pem"
    public = _pem(elsewhere)
    kept = elsewhere.read_bytes()
    link = ws.root / "keys" / "audit-ed25519.pem"
    link.parent.mkdir(mode=0o700)
    link.symlink_to(elsewhere)
    ws.orc("audit", "init")
    assert not link.is_symlink() and elsewhere.read_bytes() == kept
    pub = (ws.root / "var" / "audit" / "audit-key.pub").read_text()
    from orchestrator.audit.checkpoint import parse_verifier_key

    assert parse_verifier_key(pub).public == public


def test_an_earlier_key_file_left_beside_its_sealed_copy_is_removed(workspace: Workspace) -> None:
    """Break-it D7: a crash between sealing and removing left the PEM for good."""
    ws = workspace
    pem = ws.root / "keys" / "audit-ed25519.pem"
    _pem(pem)
    kept = pem.read_bytes()
    ws.orc("audit", "init")
    pem.write_bytes(kept)  # as if the process died before removing it
    pem.chmod(0o600)
    ws.orc("audit", "checkpoint")  # the next checkpoint (the first use of the key) sees it
    assert not pem.exists()


def test_only_audit_init_makes_the_key_file_and_says_so(workspace: Workspace) -> None:
    """Break-it D8: any command made the store's key file for the signing key, silently.
    Now no command but `audit init` (or `secrets set`) makes a store; until then the
    records are written unsigned and `status` says so."""
    ws = workspace
    made = ws.root / "keys" / "secrets.key"
    first = ws.orc("status")
    assert not made.exists() and not (ws.root / "var" / "secrets.sealed").exists()
    assert "the audit log is not signed yet: run 'orchestrator audit init'" in first.stdout
    assert first.stderr == ""
    ws.orc("backup", "files")
    unsigned = ws.orc("audit", "verify")
    assert "not signed yet" in unsigned.stdout

    init = ws.orc("audit", "init")
    assert made.is_file()
    assert f"created the secret store's key file {made}" in init.stderr
    assert "keep a copy off this machine" in init.stderr
    assert "not signed yet" not in ws.orc("status").stdout
    assert "covers" in ws.orc("audit", "verify").stdout


# ----------------------------------------------------------------- a rewritten log, re-signed


def _forge(ws: Workspace, index: int) -> None:
    """What a rewriter with root does: record `index` changed, every later `prev`
    recomputed, the state file and the tree index (which would give it away) removed."""
    from orchestrator.audit import merkle
    from orchestrator.audit.record import b64, canonical

    audit = ws.root / "var" / "audit"
    records = [json.loads(line) for line in (audit / "log.jsonl").read_text().splitlines()]
    records[index]["who"] = "mallory"
    tree = merkle.CompactRange()
    out = []
    for record in records:
        record["prev"] = b64(tree.root())
        line = canonical(record)
        tree.append(merkle.leaf_hash(line))
        out.append(line + b"\n")
    (audit / "log.jsonl").write_bytes(b"".join(out))
    (audit / "log.state").unlink(missing_ok=True)
    shutil.rmtree(audit / "index", ignore_errors=True)


def test_a_rewritten_log_is_never_signed_over_a_checkpoint_a_repository_holds(
    workspace: Workspace,
) -> None:
    """Second break-it: the repository's smaller checkpoint was overwritten by one of a
    rewritten log (signed with the real key), so `audit verify` said intact."""
    ws = workspace
    ws.orc("audit", "init")
    ws.orc("backup", "files")
    ws.orc("audit", "checkpoint")
    there = ws.repo / "orchestrator-audit" / "checkpoint"
    kept = there.read_text()
    _forge(ws, 2)

    refused = ws.orc("audit", "checkpoint", check=1)  # its own newest checkpoint says so
    assert "no longer starts with the" in refused.stderr and "not signed" in refused.stderr
    assert there.read_text() == kept
    audit = ws.root / "var" / "audit"
    for gone in ("checkpoints", "export"):
        shutil.rmtree(audit / gone)
    (audit / "checkpoint").unlink()
    ws.orc("status")  # an automatic checkpoint: signed here, but never over the evidence
    assert there.read_text() == kept
    result = ws.orc("audit", "checkpoint", check=4)
    assert "that this log no longer starts with" in result.stderr
    assert there.read_text() == kept
    ws.orc("audit", "verify", check=4)  # the repository's copy convicts it

    (audit / "audit-key.pub").unlink()  # and without the key here: the repository's copy
    for gone in ("checkpoints", "export"):
        shutil.rmtree(audit / gone, ignore_errors=True)
    (audit / "checkpoint").unlink(missing_ok=True)
    ws.orc("audit", "verify", check=4)


def test_a_log_that_says_it_was_signed_but_has_no_key_left_is_damaged(
    workspace: Workspace,
) -> None:
    ws = workspace
    ws.orc("audit", "init")
    ws.orc("status")
    audit = ws.root / "var" / "audit"
    for gone in ("checkpoints", "export", "index"):
        shutil.rmtree(audit / gone)
    for gone in ("checkpoint", "audit-key.pub"):
        (audit / gone).unlink()
    shutil.rmtree(ws.repo / "orchestrator-audit")  # as an SFTP or S3 copy would be: unread
    result = ws.orc("audit", "verify", check=4)
    assert "says a checkpoint was signed, but no public key or checkpoint" in result.stderr


def test_a_process_that_found_no_key_signs_once_audit_init_made_one(workspace: Workspace) -> None:
    """Second break-it: a daemon started before `audit init` never signed again."""
    from orchestrator.audit.trail import open_trail
    from orchestrator.policies.loader import load_config

    ws = workspace
    trail = open_trail(load_config(ws.config))  # the daemon's, made before any key
    trail.record({"what": "run.succeeded", "outcome": "success"})
    assert trail.latest_checkpoint() is None and trail._no_key_yet
    ws.orc("audit", "init")
    size = trail.latest_checkpoint()[1]  # type: ignore[index]
    trail.record({"what": "run.succeeded", "outcome": "success"})  # due: daily, first of it
    trail.settings = dataclasses.replace(trail.settings, checkpoint_every=1)
    trail.record({"what": "run.succeeded", "outcome": "success"})
    assert trail.latest_checkpoint()[1] > size  # type: ignore[index]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("ack", "99999999999999999999999"), "is not in the range"),
        (("comment", "1", "\udcff bad"), "not valid UTF-8"),
        (("comment", "1", "ok\x1b[2Kforged"), "control character U+001B"),
        (("assign", "1", "a\nb"), "control character U+000A"),
        (("ack", "1", "--now", "2000-01-01T00:00"), "only moves forward"),
    ],
)
def test_bad_ticket_input_is_one_line(
    workspace: Workspace, args: tuple[str, ...], words: str
) -> None:
    ws = workspace
    ws.data.rename(ws.root / "gone")
    ws.orc("backup", "files", check=1)  # ticket 1
    result = ws.orc("tickets", *args, check=2)
    assert words in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
