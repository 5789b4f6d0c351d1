"""restic command lines and the parsing of what they print.

Each function builds one command, runs it through the Runner and turns its
output into plain data. Nothing here decides policy.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.errors import ResticError
from orchestrator.restic import features
from orchestrator.restic.runner import (
    Completed,
    Repository,
    Runner,
    last_error_line,
    message_lines,
)

log = logging.getLogger("orchestrator.restic")


@dataclass(frozen=True)
class Snapshot:
    id: str
    time: datetime
    paths: tuple[str, ...]
    tags: tuple[str, ...]
    hostname: str = ""
    parent: str | None = None
    files: int | None = None  # restic 0.17+ records the backup's file count in the snapshot

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


def short_id(snapshot_id: str | None) -> str | None:
    """The 8-character form people see (text output, messages); the catalog keeps the
    full 64-character id, and any unique prefix is accepted on input."""
    return snapshot_id[:8] if snapshot_id else snapshot_id


def full_snapshot_id(runner: Runner, repo: Repository, snapshot_id: str) -> str:
    """The full id of a snapshot restic named by its short form.

    restic 0.14 reports `backup --json`'s `snapshot_id` and `copy`'s saved snapshot by
    the 8-character short id, 0.18 by the full one: one more `snapshots` call on 0.14
    makes the catalog hold the same, full form on both. If the lookup fails the short
    id is kept (it still names the snapshot: restic accepts unique prefixes)."""
    if len(snapshot_id) == 64:
        return snapshot_id
    result = runner.run(repo, ["snapshots", "--json", snapshot_id])
    if result.ok:
        with contextlib.suppress(ValueError, TypeError, KeyError, IndexError):
            ids = [item["id"] for item in json.loads(result.stdout or "[]") or []]
            if len(ids) == 1 and ids[0].startswith(snapshot_id):
                return ids[0]
    log.warning("could not resolve the full id of snapshot %s; keeping its short id", snapshot_id)
    return snapshot_id


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
    # Errors about the repository, not a source file: a parent tree restic cannot load.
    repository_errors: tuple[str, ...] = field(default_factory=tuple)


def parse_time(text: str) -> datetime:
    """restic prints nanoseconds; Python reads at most microseconds."""
    text = re.sub(r"(\.\d{6})\d+", r"\1", text.strip()).replace("Z", "+00:00")
    return datetime.fromisoformat(text)


def fail(repo: Repository, what: str, result: Completed) -> ResticError:
    """One sentence naming the target and what restic said.

    A lock names its holder as restic reports it; a failure in which restic says the
    repository lacks or garbles data becomes kind `repository_damaged`, naming the
    repository (never a source) with restic's own line, never a Go stack frame."""
    where = f"target '{repo.label}'" if repo.label else repo.url
    kind = result.kind or features.FATAL
    detail = _KIND_TEXT.get(kind, last_error_line(result.stderr))
    if kind == features.LOCKED and (holder := features.lock_holder(result.stderr)):
        detail = f"{detail}: {holder}"
    if kind == features.FATAL and (damage := features.damage_line(message_lines(result.stderr))):
        kind = features.REPOSITORY_DAMAGED
        detail = f"the repository is damaged: {damage}"
    return ResticError(f"{where}: {what} failed: {detail}", kind, result.returncode)


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
    snaps = [_snapshot_of(item) for item in items]
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
    """Read the `summary` message and the per-file errors of `backup --json`.

    restic prints its JSON `error` messages on stderr, so both streams are read."""
    summary: dict | None = None
    errors: list[str] = []
    repository_errors: list[str] = []
    for line in [*stdout.splitlines(), *stderr.splitlines()]:
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
            path = msg.get("item") or (err.get("Path") if isinstance(err, dict) else None)
            if _about_repository(msg, err):
                repository_errors.append(_error_text(err) if err else _PARENT_TREE)
            else:
                errors.append(f"{path or '?'}: {_error_text(err)}")
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
        repository_errors=tuple(dict.fromkeys(repository_errors)),
    )


_PARENT_TREE = "restic cannot load its tree (restic 0.14 gives no reason)"


def _about_repository(msg: dict, err: object) -> bool:
    """An error of `backup --json` that is about the repository, not a source file: restic
    0.15+ says so in its text ("tree ... is not known; the repository could be damaged");
    restic 0.14 gives no text, but its item is "/", the root of the parent snapshot's
    tree, which no source file is (restic's sources are absolute paths below it)."""
    text = _error_text(err) if err else ""
    if features.damage_line([text]):
        return True
    return msg.get("item") == "/" and msg.get("during") == "archival" and not err


def _error_text(err: object) -> str:
    """restic >= 0.15 sends {"message": ...}; 0.14 sends Go's PathError as
    {"Op": "open", "Path": ..., "Err": 13} with a bare errno and no text."""
    if not isinstance(err, dict):
        return str(err)
    if err.get("message"):
        return str(err["message"])
    errno = err.get("Err")
    reason = os.strerror(errno) if isinstance(errno, int) else str(errno or "unreadable")
    return f"{err['Op']}: {reason}" if err.get("Op") else reason


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
        # 'There were 2 errors' says nothing: show restic's own lines naming file and reason.
        err = fail(repo, "restore", result)
        why = [
            ln.strip().removeprefix("ignoring error for ")
            for ln in result.stderr.splitlines()
            if ln.startswith("ignoring error for ")
        ]
        more = f" (and {len(why) - 3} more)" if len(why) > 3 else ""
        if why:
            text = f"{err.message}: {'; '.join(why[:3])}{more}"
            err = ResticError(text, err.kind, err.returncode)
        raise err
    return result


# --- verification (restic 0.14 `check` prints text only; `ls --json` gives sizes) ---

_HEX64 = re.compile(r"\b[0-9a-f]{64}\b")
# Lines `check` prints while it works; anything else on stderr is a finding.
_CHECK_NOISE = (
    "using temporary cache",
    "create exclusive lock",
    "create lock",
    "load indexes",
    "check all packs",
    "check snapshots",
    "read all data",
    "read group",
    "no errors were found",
    "[",
)


@dataclass(frozen=True)
class CheckResult:
    """`restic check` as data: `problems` are restic's own lines naming what is wrong."""

    completed: Completed
    problems: tuple[str, ...]

    @property
    def damaged(self) -> bool:
        """restic ran and said the repository has errors (not: restic could not run)."""
        return self.completed.returncode == 1 and (
            bool(self.problems) or "repository contains errors" in self.completed.stderr
        )


def check(
    runner: Runner, repo: Repository, read_data_subset: str | None = None, read_data: bool = False
) -> CheckResult:
    """`restic check` (structure), optionally reading part `i/N` or all of the pack data."""
    args = ["check"]
    if read_data_subset:
        args.append(f"--read-data-subset={read_data_subset}")
    elif read_data:
        args.append("--read-data")
    result = run_exclusive(runner, repo, args)
    return CheckResult(result, parse_check_problems(result.stdout + "\n" + result.stderr))


# Lines of `check` that are no damage: restic itself calls unindexed packs non-critical
# (0.14 lists them, 0.18 only counts them; both exit 0 when nothing else is wrong), and
# 0.18 closes with a pointer to its troubleshooting guide.
_CHECK_NOT_DAMAGE = (
    "not referenced in any index",
    "additional files were found in the repo",
    "this is non-critical",
    "the repository is damaged and must be repaired",
    "fatal: repository contains errors",
)


def parse_check_problems(text: str) -> tuple[str, ...]:
    """The lines of `check` output that report damage, without progress chatter or what
    restic calls non-critical. An indented line continues the problem above it
    (`error for tree 15086b18:` / `  id ... not found in repository`)."""
    problems: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        low = line.lower()
        if not line or any(low.startswith(n) for n in _CHECK_NOISE):
            continue
        if any(n in low for n in _CHECK_NOT_DAMAGE):
            continue
        if raw[:1] in (" ", "\t") and problems and problems[-1].endswith(":"):
            problems[-1] = f"{problems[-1]} {line}"
            continue
        problems.append(line)
    return tuple(dict.fromkeys(problems))


def check_problem_files(line: str) -> tuple[str, ...]:
    """The 64-hex ids (packs, blobs, files) a `check` line names."""
    return tuple(_HEX64.findall(line))


@dataclass(frozen=True)
class LsNode:
    """One file of a snapshot as the snapshot itself records it."""

    path: str
    type: str
    size: int
    mtime: datetime | None


def ls(runner: Runner, repo: Repository, snapshot: str) -> tuple[list[LsNode], Completed]:
    """Every node of `snapshot` (`restic ls --json`); the first JSON line is the snapshot."""
    result = runner.run(repo, ["ls", "--json", snapshot])
    if not result.ok:
        raise fail(repo, "listing the snapshot's files", result)
    nodes = []
    for line in result.stdout.splitlines():
        if not line.startswith("{"):
            continue
        item = json.loads(line)
        if item.get("struct_type") != "node":
            continue
        nodes.append(_ls_node(item))
    return nodes, result


def _ls_node(item: dict) -> LsNode:
    mtime = item.get("mtime")
    return LsNode(
        path=item["path"],
        type=item.get("type", ""),
        size=int(item.get("size") or 0),
        mtime=parse_time(mtime) if mtime else None,
    )


# restore's first line names the snapshot it restores and its paths (0.14 'restoring
# <Snapshot 1a2b3c4d of [/src] at ...', 0.18 'restoring snapshot 1a2b3c4d of [/src] at').
_RESTORING = re.compile(r"restoring <?[Ss]napshot ([0-9a-f]{8,64}) of \[(.*?)\] at ")


def restored(stdout: str) -> tuple[str, tuple[str, ...]] | None:
    """The (short) id and the paths of the snapshot a `restore` run says it restored."""
    match = _RESTORING.search(stdout)
    return (match.group(1), tuple(match.group(2).split())) if match else None


def restored_snapshot(stdout: str) -> str | None:
    """The (short) id of the snapshot a `restore` run says it restored."""
    found = restored(stdout)
    return found[0] if found else None


def ls_latest(
    runner: Runner, repo: Repository, tags: Sequence[str]
) -> tuple[Snapshot | None, list[LsNode], Completed]:
    """The newest snapshot having all `tags` and its nodes, from ONE `ls --json latest
    --tag` (its first JSON line is the snapshot). None when no snapshot has the tags:
    0.14 then exits 0 printing nothing, 0.18 exits 1 saying 'no snapshot found'."""
    args = ["ls", "--json", "latest"]
    if tags:
        args += ["--tag", ",".join(tags)]
    result = runner.run(repo, args)
    if not result.ok:
        if "no snapshot found" in result.stderr and result.kind == features.FATAL:
            return None, [], result
        raise fail(repo, "listing the snapshot's files", result)
    snapshot: Snapshot | None = None
    nodes = []
    for line in result.stdout.splitlines():
        if not line.startswith("{"):
            continue
        item = json.loads(line)
        if snapshot is None and "tree" in item and "id" in item:
            snapshot = _snapshot_of(item)
            continue
        if item.get("struct_type") != "node":
            continue
        nodes.append(_ls_node(item))
    return snapshot, nodes, result


def dump(
    runner: Runner, repo: Repository, snapshot: str, path: str, sink: Callable[[bytes], None]
) -> Completed:
    """Stream one file of `snapshot` as restic reads it from the repository into `sink`."""
    return runner.stream(repo, ["dump", snapshot, path], sink)


# --- retention (`forget --dry-run --json` plans; removal is by explicit ids) ---


def _snapshot_of(item: dict) -> Snapshot:
    return Snapshot(
        id=item["id"],
        time=parse_time(item["time"]),
        paths=tuple(item.get("paths") or ()),
        tags=tuple(item.get("tags") or ()),
        hostname=item.get("hostname", ""),
        parent=item.get("parent"),
        files=(item.get("summary") or {}).get("total_files_processed"),
    )


def forget_ids(runner: Runner, repo: Repository, ids: Sequence[str]) -> None:
    """Remove exactly these snapshots (never a rule evaluated a second time)."""
    result = run_exclusive(runner, repo, ["forget", *ids])
    if not result.ok:
        raise fail(repo, "forgetting snapshots", result)


def prune(runner: Runner, repo: Repository) -> Completed:
    """Remove data no snapshot references (takes an exclusive lock)."""
    result = run_exclusive(runner, repo, ["prune"])
    if not result.ok:
        raise fail(repo, "prune", result)
    return result


def list_locks(runner: Runner, repo: Repository) -> set[str] | None:
    """The ids of the repository's lock files; None when restic could not list them.
    `--no-lock`: listing must not itself wait for, or add to, the locks it counts."""
    result = runner.run(repo, ["--no-lock", "list", "locks"])
    if not result.ok:
        return None
    return {ln.strip() for ln in result.stdout.splitlines() if _HEX64.fullmatch(ln.strip())}


def unlock_stale(runner: Runner, repo: Repository) -> int:
    """`restic unlock` without --remove-all removes only locks restic itself judges stale
    (its process gone on this host, or older than 30 minutes): never a live run's lock.

    Returns how many locks it removed, counted by listing the locks before and after:
    restic 0.14 prints "successfully removed locks" even when it removed none."""
    before = list_locks(runner, repo)
    result = runner.run(repo, ["unlock"])
    if not result.ok:
        raise fail(repo, "removing stale locks", result)
    after = list_locks(runner, repo)
    if before is None or after is None:
        return 0
    return len(before - after)


def run_exclusive(runner: Runner, repo: Repository, args: list[str]) -> Completed:
    """Run a command that needs an exclusive lock; if a lock stops it, remove the *stale*
    ones (a crashed backup's) and, only when some were removed, try once more. A live
    run's lock stays and wins: the caller reports `locked` (exit 75)."""
    result = runner.run(repo, args)
    if result.kind != features.LOCKED:
        return result
    where = repo.label or repo.url
    try:
        removed = unlock_stale(runner, repo)
    except ResticError:
        return result
    if not removed:
        log.warning(
            "target '%s': %s is blocked by a live restic lock (%s); no stale lock to remove",
            where,
            args[0],
            features.lock_holder(result.stderr) or "holder not reported",
        )
        return result
    log.warning(
        "target '%s': %s was blocked by a lock; removed %d stale restic lock(s) and retried",
        where,
        args[0],
        removed,
    )
    return runner.run(repo, args)


# --- copies (`copy` and `init --copy-chunker-params` print text only in 0.14) ---


def init_copy(runner: Runner, repo: Repository, source: Repository) -> None:
    """Create `repo` with `source`'s chunker parameters, so that copied snapshots and later
    ones deduplicate against each other (restic chunks identically in both)."""
    result = runner.run(repo, ["init", "--copy-chunker-params"], source=source)
    if not result.ok:
        raise fail(repo, "creating the repository for copies", result)


def copy(
    runner: Runner, repo: Repository, source: Repository, snapshot_ids: Sequence[str]
) -> Completed:
    """`restic -r DEST copy --from-repo SRC IDS...`: restic skips snapshots already there."""
    result = runner.run(repo, ["copy", *snapshot_ids], source=source)
    if not result.ok:
        raise fail(repo, f"copying from '{source.label}'", result)
    return result
