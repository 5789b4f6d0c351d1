"""Attacks on a real audit log, caught by the real `orchestrator audit` command.

Each test writes a log of ten records through the product's own trail (real files, a real
Ed25519 key, a signed checkpoint after every record), changes it the way an attacker would,
and checks the exit code and the sentence that names the first broken place."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import ORCHESTRATOR

from orchestrator.audit.trail import AuditTrail, open_trail
from orchestrator.policies.loader import load_config

pytestmark = pytest.mark.integration

RECORDS = 10


class AuditWs:
    def __init__(self, root: Path, every: int = 1) -> None:
        self.root = root
        self.config = root / "policies.toml"
        self.config.write_text(
            textwrap.dedent(
                f"""\
                [orchestrator]
                state_dir = "var"
                [targets.local]
                kind = "local"
                path = "repos/local"
                password = "secret:repo-test"
                [audit]
                checkpoint_every = {every}
                origin = "test.example/audit"
                """
            )
        )
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}

    @property
    def log(self) -> Path:
        return self.root / "var" / "audit" / "log.jsonl"

    @property
    def pub(self) -> Path:
        return self.root / "var" / "audit" / "audit-key.pub"

    def trail(self) -> AuditTrail:
        """The trail as after `audit init`: it may make the key (and the secret store)."""
        trail = open_trail(load_config(self.config))
        trail.explicit = True
        return trail

    def write(self, count: int = RECORDS) -> None:
        trail = self.trail()
        for i in range(count):
            trail.record({"what": "run.succeeded", "outcome": "success", "policy": f"p{i % 3}"})

    def lines(self) -> list[bytes]:
        return self.log.read_bytes().splitlines(keepends=True)

    def set_lines(self, lines: list[bytes]) -> None:
        self.log.write_bytes(b"".join(lines))

    def orc(
        self, *args: str, check: int | None = 0, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*ORCHESTRATOR, "--config", str(self.config), *args],
            env=self.env,
            cwd=cwd or self.root,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check is not None:
            assert result.returncode == check, (result.returncode, result.stdout, result.stderr)
        return result

    def broken(self, *args: str) -> str:
        """`audit verify` must exit 4 with one line on stderr and no traceback."""
        result = self.orc("audit", "verify", *args, check=4)
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith("orchestrator: audit log damaged: ")
        return result.stderr


@pytest.fixture
def aws(tmp_path: Path) -> AuditWs:
    ws = AuditWs(tmp_path)
    ws.write()
    return ws


def test_an_intact_log_verifies(aws: AuditWs) -> None:
    out = aws.orc("audit", "verify").stdout
    assert "audit log intact: 10 records" in out
    assert "the newest covers 10" in out
    data = json.loads(aws.orc("audit", "verify", "--json").stdout)
    assert data["records"] == 10 and data["covered"] == 10


@pytest.mark.parametrize("index", [0, 4, RECORDS - 1])
def test_one_edited_byte_is_named_at_its_record(aws: AuditWs, index: int) -> None:
    lines = aws.lines()
    assert b'"policy":"p' in lines[index]
    lines[index] = lines[index].replace(b'"policy":"p', b'"policy":"q', 1)  # still canonical JSON
    aws.set_lines(lines)
    err = aws.broken()
    assert f"record {index}: " in err
    assert "changed" in err


def test_an_edit_that_breaks_the_json_or_the_canonical_form(aws: AuditWs) -> None:
    lines = aws.lines()
    original = lines[3]
    lines[3] = original.replace(b"}", b"", 1)
    aws.set_lines(lines)
    assert "record 3: not valid JSON" in aws.broken()
    lines[3] = original.replace(b'":', b'": ', 1)
    aws.set_lines(lines)
    assert "record 3: not in canonical form" in aws.broken()


def test_a_deleted_record_is_named(aws: AuditWs) -> None:
    lines = aws.lines()
    del lines[4]
    aws.set_lines(lines)
    assert "record 4: numbered 5: record 4 was deleted" in aws.broken()


def test_swapped_records_are_named(aws: AuditWs) -> None:
    lines = aws.lines()
    lines[3], lines[4] = lines[4], lines[3]
    aws.set_lines(lines)
    assert "record 3: numbered 4" in aws.broken()


def test_an_inserted_record_is_named(aws: AuditWs) -> None:
    lines = aws.lines()
    forged = json.loads(lines[5])
    forged["what"] = "restore.done"  # the forger even copies the right number and prev
    from orchestrator.audit.record import canonical

    lines.insert(5, canonical(forged) + b"\n")
    aws.set_lines(lines)
    assert "record 6: numbered 5, a number already used: a record was inserted" in aws.broken()


def test_a_truncated_tail_is_caught_by_the_checkpoints(aws: AuditWs) -> None:
    aws.set_lines(aws.lines()[:7])
    err = aws.broken()
    assert "the log has 7 records but" in err
    assert "records 7..9 were removed (tail truncated)" in err


def test_truncation_with_local_checkpoints_removed_is_caught_by_one_kept_elsewhere(
    aws: AuditWs, tmp_path_factory: pytest.TempPathFactory
) -> None:
    kept = tmp_path_factory.mktemp("auditor") / "checkpoint"
    shutil.copy(aws.root / "var" / "audit" / "export" / "checkpoint", kept)
    # An attacker with root cuts the tail and every checkpoint on this host.
    aws.set_lines(aws.lines()[:6])
    shutil.rmtree(aws.root / "var" / "audit" / "checkpoints")
    shutil.rmtree(aws.root / "var" / "audit" / "export")
    (aws.root / "var" / "audit" / "checkpoint").unlink()
    assert "record 6 onward removed" in aws.broken()  # the state file still knows ...
    (aws.root / "var" / "audit" / "log.state").unlink()  # ... unless it is removed too
    assert "audit log intact: 6 records" in aws.orc("audit", "verify").stdout  # cannot know
    err = aws.broken("--checkpoint", str(kept))
    assert f"the log has 6 records but {kept} (signed) covers 10" in err


def test_a_checkpoint_with_a_bad_signature_or_size(aws: AuditWs) -> None:
    cp = aws.root / "var" / "audit" / "export" / "checkpoint"
    text = cp.read_text()
    body, sig = text.split("\n\n")
    flipped = sig[:-6] + ("A" if sig[-6] != "A" else "B") + sig[-5:]
    cp.write_text(body + "\n\n" + flipped)
    assert "its signature does not verify" in aws.broken()
    cp.write_text(text.replace("\n10\n", "\n9\n", 1))  # size changed, signature kept
    assert "its signature does not verify" in aws.broken()


def test_a_checkpoint_from_another_log_or_key(
    aws: AuditWs, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other = AuditWs(tmp_path_factory.mktemp("other"))
    other.write(3)
    err = aws.broken("--checkpoint", str(other.root / "var" / "audit" / "checkpoint"))
    assert "not signed by the audit key test.example/audit+" in err
    assert "a checkpoint from elsewhere or a replaced key" in err


def test_a_log_rewritten_and_resigned_with_a_new_key_fails_against_the_published_key(
    aws: AuditWs, tmp_path_factory: pytest.TempPathFactory
) -> None:
    auditor = tmp_path_factory.mktemp("auditor")
    shutil.copy(aws.pub, auditor / "audit.pub")
    shutil.copy(aws.root / "var" / "audit" / "checkpoint", auditor / "checkpoint")
    # Root replaces everything: the key (a new secret store), log, checkpoints, and
    # writes a new history.
    shutil.rmtree(aws.root / "keys")
    (aws.root / "var" / "secrets.sealed").unlink()
    shutil.rmtree(aws.root / "var" / "audit")
    aws.write(4)
    assert "audit log intact: 4 records" in aws.orc("audit", "verify").stdout  # self-consistent
    err = aws.broken("--key", str(auditor / "audit.pub"))
    assert "not signed by the audit key" in err
    err = aws.broken("--checkpoint", str(auditor / "checkpoint"))
    assert "not signed by the audit key" in err


def test_a_crash_mid_append_verifies_up_to_the_last_complete_record_and_is_repaired(
    aws: AuditWs,
) -> None:
    with aws.log.open("ab") as fh:
        fh.write(b'{"details":{"half":')  # the process died inside write()
    out = aws.orc("audit", "verify").stdout
    assert "audit log intact: 10 records" in out
    assert "record 10 is incomplete" in out and "intact up to record 9" in out
    aws.trail().record({"what": "run.succeeded", "outcome": "success"})
    recs = [json.loads(line) for line in aws.lines()]
    assert [r["what"] for r in recs[10:]] == ["audit.torn_tail", "run.succeeded"]
    assert "audit log intact: 12 records" in aws.orc("audit", "verify").stdout


def test_proofs_check_with_only_the_public_key(
    aws: AuditWs, tmp_path_factory: pytest.TempPathFactory
) -> None:
    auditor = tmp_path_factory.mktemp("auditor")  # no policies.toml, no log here
    shutil.copy(aws.pub, auditor / "audit.pub")
    (auditor / "p3.json").write_text(aws.orc("audit", "prove", "3").stdout)
    (auditor / "c.json").write_text(aws.orc("audit", "consistency", "4", "10").stdout)
    (auditor / "record").write_bytes(aws.lines()[3])
    env_cfg = str(auditor / "absent.toml")
    for proof in ("p3.json", "c.json"):
        result = subprocess.run(
            [
                *ORCHESTRATOR,
                "--config",
                env_cfg,
                "audit",
                "check-proof",
                proof,
                "--key",
                "audit.pub",
            ],
            cwd=auditor,
            capture_output=True,
            text=True,
            env=aws.env,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("proof holds: ")
    doc = json.loads((auditor / "p3.json").read_text())
    assert doc["index"] == 3 and doc["tree_size"] == 10 and len(doc["path"]) == 4

    def check(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                *ORCHESTRATOR,
                "--config",
                env_cfg,
                "audit",
                "check-proof",
                *args,
                "--key",
                "audit.pub",
            ],
            cwd=auditor,
            capture_output=True,
            text=True,
            env=aws.env,
            check=False,
        )

    assert check("p3.json", "--record", "record").returncode == 0
    (auditor / "forged").write_bytes(aws.lines()[3].replace(b'"p0"', b'"p9"'))
    result = check("p3.json", "--record", "forged")
    assert result.returncode == 4
    assert "proof fails: record 3 is NOT proven" in result.stderr
    # The newer log rewritten before size 4: its checkpoint no longer extends the old one.
    bad = json.loads((auditor / "c.json").read_text())
    bad["path"][0] = bad["path"][1]
    (auditor / "bad.json").write_text(json.dumps(bad))
    result = check("bad.json")
    assert result.returncode == 4 and "does NOT extend" in result.stderr


def test_prove_refuses_a_record_not_yet_covered(tmp_path: Path) -> None:
    ws = AuditWs(tmp_path, every=100)
    ws.write(5)  # only the first record is checkpointed
    result = ws.orc("audit", "prove", "3", check=2)
    assert "record 3 is not covered by the checkpoint (size 1" in result.stderr
    ws.orc("audit", "checkpoint")
    ws.orc("audit", "prove", "3")


def test_two_processes_append_safely(tmp_path: Path) -> None:
    ws = AuditWs(tmp_path, every=50)
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from orchestrator.audit.trail import open_trail
        from orchestrator.policies.loader import load_config
        trail = open_trail(load_config(Path({str(ws.config)!r})))
        for i in range(150):
            trail.record({{"what": "run.succeeded", "outcome": "success"}})
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    recs = [json.loads(line) for line in ws.lines()]
    assert [r["n"] for r in recs] == list(range(300))
    assert len({r["pid"] for r in recs}) == 2
    assert "audit log intact: 300 records" in ws.orc("audit", "verify").stdout


def test_records_after_the_newest_checkpoint_are_still_checked(tmp_path: Path) -> None:
    ws = AuditWs(tmp_path, every=4)
    ws.write(10)  # checkpoints at sizes 1, 5 and 9: record 9 is in none
    assert (
        "the newest covers 9 (1 newer records not yet in a checkpoint)"
        in ws.orc("audit", "verify").stdout
    )
    lines = ws.lines()
    lines[9] = lines[9].replace(b'"n":9', b'"n": 9')
    ws.set_lines(lines)
    assert "record 9: not in canonical form" in ws.broken()
    lines[9] = b"garbage\n"
    ws.set_lines(lines)
    assert "record 9: not valid JSON" in ws.broken()


def test_an_unwritable_log_stops_a_command_with_one_line(tmp_path: Path) -> None:
    ws = AuditWs(tmp_path)
    (tmp_path / "var" / "audit" / "log.jsonl").mkdir(parents=True)  # not a file any more
    result = ws.orc("status", check=1)
    assert result.stderr.startswith("orchestrator: cannot read the audit log ")
    assert "Traceback" not in result.stderr


def test_a_checkpoint_at_least_daily_and_show_filters(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    ws = AuditWs(tmp_path, every=1000)
    config = load_config(ws.config)
    start = datetime.now(UTC)
    clock = [start]
    trail = open_trail(config, now=lambda: clock[0])
    trail.explicit = True  # as after `audit init`: the key may be made
    trail.record({"what": "run.succeeded", "outcome": "success", "policy": "web"})  # first: signed
    trail.record({"what": "restore.done", "outcome": "success", "policy": "web"})
    assert trail.latest_checkpoint()[1] == 1  # type: ignore[index]
    clock[0] = start + timedelta(hours=25)
    trail.record({"what": "restore.done", "outcome": "success", "policy": "db"})
    assert trail.latest_checkpoint()[1] == 3  # type: ignore[index]  # a day passed

    def shown(*args: str) -> list[int]:
        return [
            r["n"] for r in json.loads(ws.orc("audit", "show", "--json", *args).stdout)["records"]
        ]

    assert shown() == [0, 1, 2]
    assert shown("--what", "restore") == [1, 2]
    assert shown("--policy", "web", "--what", "restore.done") == [1]
    later = (start + timedelta(hours=1)).isoformat()
    assert shown("--since", later) == [2]
    me = json.loads(ws.lines()[0])["who"]
    assert shown("--who", me) == [0, 1, 2]
    assert shown("--who", "someone-else") == []
    assert "no audit records match" in ws.orc("audit", "show", "--who", "someone-else").stdout
