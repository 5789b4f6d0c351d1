"""restic command lines and the parsing of what they print.

Each function builds one command, runs it through the Runner and turns its
output into plain data. Nothing here decides policy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.errors import ResticError
from orchestrator.restic import features
from orchestrator.restic.runner import Completed, Repository, Runner, last_error_line


@dataclass(frozen=True)
class Snapshot:
    id: str
    time: datetime
    paths: tuple[str, ...]
    tags: tuple[str, ...]
    hostname: str = ""
    parent: str | None = None

    @property
    def short_id(self) -> str:
        return self.id[:8]

    def tag(self, key: str) -> str | None:
        """The value of a `key:value` tag, e.g. tag('level') -> 'full'."""
        prefix = key + ":"
        for t in self.tags:
            if t.startswith(prefix):
                return t[len(prefix) :]
        return None


@dataclass(frozen=True)
class BackupSummary:
    """restic's own JSON summary of one backup (verification tier 1)."""

    snapshot_id: str | None
    files_new: int = 0
    files_changed: int = 0
    files_unmodified: int = 0
    files_total: int = 0
    bytes_added: int = 0
    bytes_total: int = 0
    seconds: float = 0.0
    errors: tuple[str, ...] = field(default_factory=tuple)


def parse_time(text: str) -> datetime:
    """restic prints nanoseconds; Python reads at most microseconds."""
    text = re.sub(r"(\.\d{6})\d+", r"\1", text.strip()).replace("Z", "+00:00")
    return datetime.fromisoformat(text)


def fail(repo: Repository, what: str, result: Completed) -> ResticError:
    """One sentence naming the target and what restic said."""
    where = f"target '{repo.label}'" if repo.label else repo.url
    detail = _KIND_TEXT.get(result.kind or "", last_error_line(result.stderr))
    return ResticError(
        f"{where}: {what} failed: {detail}", result.kind or "fatal", result.returncode
    )


_KIND_TEXT = {
    features.WRONG_PASSWORD: "wrong repository password (restic found no key for it)",
    features.DISK_FULL: "no space left on the device holding the repository",
    features.REPOSITORY_NOT_DIRECTORY: "the repository path is not a directory",
    features.LOCKED: "the repository is locked by another restic process",
    features.TIMEOUT: "restic did not finish within the time limit and was stopped",
}


def init(runner: Runner, repo: Repository) -> None:
    result = runner.run(repo, ["init"])
    if not result.ok:
        raise fail(repo, "creating the repository", result)


def snapshots(runner: Runner, repo: Repository, tags: Sequence[str] = ()) -> list[Snapshot]:
    """Snapshots having all `tags`, oldest first. Raises ResticError(kind=no_repository)."""
    args = ["snapshots", "--json"]
    if tags:
        args += ["--tag", ",".join(tags)]
    result = runner.run(repo, args)
    if not result.ok:
        raise fail(repo, "listing snapshots", result)
    items = json.loads(result.stdout or "[]") or []
    snaps = [
        Snapshot(
            id=item["id"],
            time=parse_time(item["time"]),
            paths=tuple(item.get("paths") or ()),
            tags=tuple(item.get("tags") or ()),
            hostname=item.get("hostname", ""),
            parent=item.get("parent"),
        )
        for item in items
    ]
    return sorted(snaps, key=lambda s: s.time)


def backup(
    runner: Runner,
    repo: Repository,
    sources: Sequence[Path],
    *,
    tags: Sequence[str],
    excludes: Sequence[str] = (),
    force: bool = False,
    parent: str | None = None,
    when: datetime | None = None,
) -> tuple[Completed, BackupSummary | None]:
    """Run one backup. Exit 3 (some files unreadable) still yields a snapshot."""
    args = ["backup", "--json"]
    for t in tags:
        args += ["--tag", t]
    for pattern in excludes:
        args += ["--exclude", pattern]
    if force:
        args.append("--force")
    if parent:
        args += ["--parent", parent]
    if when is not None:
        # The runner sets TZ=UTC for restic, so this wall-clock time is read as UTC.
        args += ["--time", when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")]
    args += ["--", *(str(s) for s in sources)]
    result = runner.run(repo, args, ok_codes=(0,))
    return result, parse_backup_output(result.stdout, result.stderr)


def parse_backup_output(stdout: str, stderr: str) -> BackupSummary | None:
    """Read the `summary` message and the per-file errors of `backup --json`."""
    summary: dict | None = None
    errors: list[str] = []
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        if msg.get("message_type") == "summary":
            summary = msg
        elif msg.get("message_type") == "error":
            err = msg.get("error") or {}
            text = err.get("message") if isinstance(err, dict) else str(err)
            errors.append(f"{msg.get('item', '?')}: {text}")
    for line in stderr.splitlines():
        if line.startswith("error: "):
            errors.append(line.removeprefix("error: ").strip())
    if summary is None:
        return None
    return BackupSummary(
        snapshot_id=summary.get("snapshot_id"),
        files_new=summary.get("files_new", 0),
        files_changed=summary.get("files_changed", 0),
        files_unmodified=summary.get("files_unmodified", 0),
        files_total=summary.get("total_files_processed", 0),
        bytes_added=summary.get("data_added", 0),
        bytes_total=summary.get("total_bytes_processed", 0),
        seconds=summary.get("total_duration", 0.0),
        errors=tuple(dict.fromkeys(errors)),
    )


def restore(
    runner: Runner,
    repo: Repository,
    snapshot: str,
    target_dir: Path,
    *,
    includes: Sequence[str] = (),
    tags: Sequence[str] = (),
    verify: bool = True,
) -> Completed:
    """Restore `snapshot` (an id or 'latest' among `tags`) and let restic re-read what it wrote."""
    args = ["restore", snapshot, "--target", str(target_dir)]
    if tags:
        args += ["--tag", ",".join(tags)]
    for inc in includes:
        args += ["--include", inc]
    if verify:
        args.append("--verify")
    result = runner.run(repo, args)
    if not result.ok:
        raise fail(repo, "restore", result)
    return result
