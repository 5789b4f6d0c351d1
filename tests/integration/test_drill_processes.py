"""Drills start a fixed number of restic processes, whatever the size of the sample.

A wrapper `restic` first on PATH appends each argv to a log and execs the real binary,
so the count is what the operating system saw, not what the code says it did. Each
drill also checks that its comparison is real: a restored file changed between restore
and comparison must be reported, against the live copy and against restic's own reading
of the snapshot alike.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

import pytest
from conftest import SECRET_ENV, Workspace, counting_restic, local_head, restic_verbs

pytestmark = pytest.mark.integration

FILES = 40


def policies(sample: int | None) -> str:
    drill = f"drill = {{ sample_files = {sample} }}" if sample else "drill = {}"
    return (
        local_head()
        + f"""
[policies.files]
importance = "critical"
sources = ["data"]
targets = ["local"]
daily = {{ at = "01:30", level = "incremental" }}
{drill}
"""
    )


@pytest.fixture
def counted(workspace: Workspace, tmp_path: Path) -> tuple[Workspace, Path]:
    """A workspace with 40 files in three folders, backed up once, and a counting restic."""
    for i in range(FILES):
        path = workspace.data / f"d{i % 3}" / f"f{i:02}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(3_000 + 97 * i))
    workspace.write_policies(policies(None))
    workspace.orc("backup", "files")
    return workspace, counting_restic(workspace)


def verbs(log: Path) -> Counter[str]:
    """restic processes started, by verb; `version` aside (asked once per binary and
    remembered, so only the first command of a test asks it)."""
    return Counter(v for v in restic_verbs(log) if v != "version")


def drill_in_process(ws: Workspace, corrupt: bool, monkeypatch: pytest.MonkeyPatch) -> dict:
    """One drill through the engine (its test seam changes a restored file when asked)."""
    from orchestrator.engine.context import Context
    from orchestrator.engine.verification import drill
    from orchestrator.policies.loader import load_config

    monkeypatch.setenv(SECRET_ENV, ws.env[SECRET_ENV])
    monkeypatch.setenv("PATH", ws.env["PATH"])
    monkeypatch.chdir(ws.root)

    def flip(scratch: Path) -> None:
        restored = sorted(p for p in scratch.rglob("*.bin") if p.is_file())
        assert restored, "nothing was restored"
        with restored[-1].open("r+b") as fh:
            byte = fh.read(1)
            fh.seek(0)
            fh.write(bytes([byte[0] ^ 0xFF]))

    ctx = Context.open(load_config(ws.config))
    try:
        [rec] = drill(
            ctx, ctx.config.policy("files"), seed=7, after_restore=flip if corrupt else None
        )
    finally:
        ctx.close()
    return {"outcome": rec.outcome, "damage": rec.damage, "details": rec.details}


@pytest.mark.parametrize("live", [True, False], ids=["live", "no-live"])
def test_drill_process_count_is_independent_of_the_sample(
    counted: tuple[Workspace, Path], live: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, log = counted
    if not live:
        shutil.rmtree(ws.data)
    seen = {}
    for sample in (3, 30):
        ws.write_policies(policies(sample))
        log.unlink(missing_ok=True)
        doc = ws.orc_json("drill", "files", "--seed", "11")["drills"][0]
        assert doc["outcome"] == "ok", doc
        d = doc["details"]
        assert d["files_checked"] == sample and d["mismatches"] == []
        against = d["checked_against_live"] if live else d["checked_against_dump"]
        assert against == sample, d
        seen[sample] = verbs(log)
    assert seen[3] == seen[30], seen
    assert seen[3]["restore"] == 1 and seen[3]["ls"] == 1
    # without live copies one more process reads restic's own content of the sample
    assert seen[3].get("dump", 0) + seen[3]["restore"] == (1 if live else 2), seen[3]
    assert sum(seen[3].values()) <= 5, seen[3]


@pytest.mark.parametrize("sample", [3, 30, None], ids=["3", "30", "whole"])
@pytest.mark.parametrize("live", [True, False], ids=["live", "no-live"])
def test_a_changed_restored_file_is_caught(
    counted: tuple[Workspace, Path],
    sample: int | None,
    live: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The comparison is no formality: one flipped byte in one restored file is damage,
    whether the reference is the live copy or restic's own reading (tar dump or
    restore --verify, whichever the drill chose)."""
    from orchestrator.verify import drill

    ws, log = counted
    if not live:
        shutil.rmtree(ws.data)
    ws.write_policies(policies(sample))
    # no slack: a sample of 3 of 40 files reads its reference by `restore --verify`,
    # 30 files and the whole snapshot by one `dump` of their folder as a tar stream
    monkeypatch.setattr(drill, "TAR_SLACK_BYTES", 0)
    rec = drill_in_process(ws, corrupt=True, monkeypatch=monkeypatch)
    assert rec["outcome"] == "damaged", rec
    [damage] = rec["damage"]
    assert damage["kind"] == "content_mismatch", damage
    assert damage["expected"] != damage["actual"] and len(damage["expected"]) == 64
    assert rec["details"]["mismatches"] == [damage["path"]]
    counts = verbs(log)
    assert counts["ls"] == 1 and counts["restore"] + counts.get("dump", 0) == 2, counts
    way = rec["details"]["reference_read"]
    if live:
        assert way == "file"  # only the changed file needs restic's reading
    else:
        assert way == ("restore" if sample == 3 else "tar"), way
    argvs = [ln.split("\x1f") for ln in log.read_text().splitlines()]  # conftest's log
    reads = [argv for argv in argvs if "dump" in argv or "--verify" in argv]
    assert len(reads) == 1, reads


def test_a_live_file_changed_behind_the_snapshot_goes_to_restic(
    counted: tuple[Workspace, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live file changed after the backup with its size and mtime kept (a corrupted
    reference) is no false alarm: restic's reading of the snapshot decides."""
    ws, log = counted
    victim = max(ws.data.rglob("*.bin"), key=lambda p: p.stat().st_size)
    st = victim.stat()
    with victim.open("r+b") as fh:
        fh.write(b"\0" * 16)
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    ws.write_policies(policies(None))
    rec = drill_in_process(ws, corrupt=False, monkeypatch=monkeypatch)
    assert rec["outcome"] == "ok", rec
    assert rec["details"]["checked_against_dump"] == 1
    d = rec["details"]
    assert d["files_checked"] == d["files_in_snapshot"] > FILES
    assert d["checked_against_live"] == d["files_checked"] - 1
    assert verbs(log)["dump"] == 1
