"""Hardening items 1-4 (fix-input): input at the edges is one clear line with the
documented exit code, and a full disk is blamed on the device that is full."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest
from conftest import Workspace, require

pytestmark = pytest.mark.e2e


def _one_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


def test_item1_restore_below_a_regular_file_is_one_line(workspace: Workspace) -> None:
    ws = workspace
    ws.orc("backup", "files")
    afile = ws.root / "afile"
    afile.write_text("not a folder\n")
    stderr = _one_line(ws.orc("restore", "files", "--to", str(afile / "sub"), check=None), 2)
    assert str(afile) in stderr and "not a directory" in stderr


def test_item1_plan_at_the_end_of_time_is_one_line(workspace: Workspace) -> None:
    stderr = _one_line(workspace.orc("plan", "--from", "9999-12-31", "--days", "3", check=None), 2)
    assert "--from" in stderr


@pytest.mark.parametrize(
    ("old", "new", "place"),
    [
        ('sources = ["data"]', 'sources = ["/tmp/s\\u0000rc"]', "policies.files.sources[0]"),
        ('state_dir = "var"', 'state_dir = "v\\u0000ar"', "orchestrator.state_dir"),
        ('path = "repos/local"', 'path = "repos/lo\\u0000cal"', "targets.local.path"),
        (
            'timezone = "UTC"',
            'timezone = "UTC"\nrestic_binary = "res\\u0000tic"',
            "orchestrator.restic_binary",
        ),
    ],
    ids=["sources", "state_dir", "path", "restic_binary"],
)
def test_item1_a_nul_byte_in_a_path_is_refused_with_its_place(
    workspace: Workspace, old: str, new: str, place: str
) -> None:
    ws = workspace
    ws.config.write_text(ws.config.read_text().replace(old, new))
    for command in ("validate", "status"):  # config problems: a heading, one line each
        result = ws.orc(command, check=None)
        stderr = result.stderr
        assert result.returncode == 2 and "Traceback" not in stderr, stderr
        assert place in stderr and "NUL byte" in stderr


def test_item1_a_nul_byte_in_sftp_paths_is_refused_with_its_place(workspace: Workspace) -> None:
    ws = workspace
    ws.config.write_text(
        ws.config.read_text()
        + '\n[targets.far]\nkind = "sftp"\nhost = "h"\nuser = "u"\npath = "r\\u0000"\n'
        + 'password = "secret:repo-test"\nidentity_file = "k\\u0000"\n'
        + 'known_hosts = "kh\\u0000"\n'
    )
    result = workspace.orc("validate", check=None)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    for key in ("path", "identity_file", "known_hosts"):
        assert f"targets.far.{key}" in result.stderr, result.stderr


def _mount_small_tmpfs(path: Path, size: str) -> None:
    """A small file system of its own; skipped where it cannot be mounted, but a failure
    under CI (which runs as root) so the test never silently stops proving anything."""
    path.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    require(result.returncode == 0, f"a tmpfs mounted at {path} (root): {result.stderr.strip()}")


def test_item2_a_full_restore_destination_is_named_not_the_repository(
    workspace: Workspace, tmp_path: Path
) -> None:
    ws = workspace
    (ws.data / "big.bin").write_bytes(os.urandom(6_000_000))
    ws.orc("backup", "files")
    small = tmp_path / "small"
    _mount_small_tmpfs(small, "2M")
    try:
        result = ws.orc("restore", "files", "--to", str(small / "x"), check=None)
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert f"no space left on the device holding the destination {small / 'x'}" in (
            result.stderr
        ), result.stderr
        assert "holding the repository" not in result.stderr
        assert list(small.iterdir()) == []  # nothing half-written left behind
    finally:
        subprocess.run(["umount", str(small)], check=False)


def _fill(directory: Path) -> None:
    """Write until the file system says it is full."""
    with open(directory / "filler", "wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    with contextlib.suppress(OSError):
        (directory / "filler2").write_bytes(b"\0" * 4096)


def test_item3_a_state_dir_full_before_the_start_gets_the_free_space_hint(
    workspace: Workspace, tmp_path: Path
) -> None:
    ws = workspace
    state = tmp_path / "state"
    _mount_small_tmpfs(state, "1M")
    try:
        ws.config.write_text(ws.config.read_text().replace('"var"', f'"{state}"'))
        ws.orc("status", check=None)  # the catalog exists, then the disk fills up
        assert (state / "catalog.sqlite").exists()
        _fill(state)
        for command in (("status",), ("backup", "files")):
            result = ws.orc(*command, check=None)
            assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
            assert "no space left on the device holding the state directory" in result.stderr
            assert "free space there" in result.stderr
    finally:
        subprocess.run(["umount", str(state)], check=False)


def test_item4_validate_refuses_a_cron_that_never_fires_with_its_place(
    workspace: Workspace,
) -> None:
    ws = workspace
    ws.config.write_text(ws.config.read_text() + 'schedules = [{cron = "0 0 30 2 *"}]\n')
    for command in (("validate",), ("plan",)):
        result = ws.orc(*command, check=None)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert "policies.files.schedules[0].cron" in result.stderr, result.stderr
        assert "never fires" in result.stderr


def test_item5_now_in_the_future_warns_once_on_stderr(workspace: Workspace) -> None:
    ws = workspace
    future = ws.orc("backup", "files", "--now", "2999-01-01T01:30")
    warnings = [ln for ln in future.stderr.splitlines() if "--now" in ln and "future" in ln]
    assert len(warnings) == 1 and "never use it on a real repository" in warnings[0]
    due = ws.orc("run", "--due", "--now", "2999-01-02T01:30", check=None)
    assert "Traceback" not in due.stderr and "is in the future" in due.stderr
    past = ws.orc("backup", "files", "--now", "2001-01-01T01:30")
    assert "future" not in past.stderr
