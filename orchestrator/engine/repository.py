"""Creating a repository: once per repository, and never over one that vanished.

Two runs that both found no repository used to both run `restic init`; the repository
ended with two keys and one config, which no later run could open. Creation is therefore
serialised per repository URL on this host (an flock in `state_dir/locks`, shared by every
policy and process), and whoever gets the lock looks again before creating.

A repository the catalog has ever recorded a snapshot in is never created again by a
backup or a copy: its absence means an unmounted disk, a moved directory or a wrong
bucket, and a new empty repository at that place would hide the loss. Only the explicit
`orchestrator target init NAME` creates one there.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from orchestrator.engine.context import Context
from orchestrator.engine.preflight import missing_error, ready_repository
from orchestrator.errors import BusyError, OrchestratorError, ResticError, UsageError
from orchestrator.policies.model import TargetSpec
from orchestrator.restic import commands, features
from orchestrator.restic.runner import Repository, Runner
from orchestrator.targets import Target

# `restic init` takes about 3 s locally; a slow remote a little longer. A creator that
# holds the lock for longer than this is stuck, and the waiter gives up as busy.
CREATE_LOCK_WAIT_SECONDS = 600.0


@contextmanager
def creation_lock(
    lock_dir: Path, url: str, wait: float = CREATE_LOCK_WAIT_SECONDS
) -> Iterator[None]:
    """Hold the host-wide lock for creating the repository at `url` (waits for it).

    The file is named by a hash of the URL, so two target names for one repository share
    it, and no part of the URL (a bucket, a user) ends up in a file name."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(url.encode()).hexdigest()[:24]
    fd = os.open(lock_dir / f"create-{digest}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise BusyError(
                        f"another process has been creating the repository for {wait:.0f}s; "
                        "try again later"
                    ) from None
                time.sleep(0.1)  # a poll, so that Ctrl-C is never stuck in flock()
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def snapshots_or_create(
    ctx: Context,
    spec: TargetSpec,
    repo: Repository,
    tags: list[str],
    create: Callable[[], None] | None = None,
) -> list:
    """The snapshots having `tags`; a repository that does not exist yet is created first
    (by `create`, default `restic init`) unless the catalog says it existed once."""
    try:
        return commands.snapshots(ctx.runner, repo, tags)
    except ResticError as exc:
        if exc.kind != features.NO_REPOSITORY:
            raise
    if ctx.catalog.ever_had_snapshot(spec.name):
        raise missing_error(ctx, spec)
    with creation_lock(ctx.config.settings.state_dir / "locks", repo.url):
        try:  # another run may have created it while we waited for the lock
            return commands.snapshots(ctx.runner, repo, tags)
        except ResticError as exc:
            if exc.kind != features.NO_REPOSITORY:
                raise
        (create or (lambda: commands.init(ctx.runner, repo)))()
    return []


def full_id(runner: Runner, target: Target, repo: Repository, snapshot_id: str) -> str:
    """The 64-character id of a snapshot restic 0.14 named by its 8-character form.

    The repository's `snapshots/` folder names each snapshot by its full id: one listing
    of it (a directory read, an SFTP listdir, one S3 LIST) finds it without starting
    restic again; only when that fails or is ambiguous is restic asked."""
    if len(snapshot_id) == 64:
        return snapshot_id
    try:
        names = [
            name
            for f in target.list_files(("snapshots",))
            if (name := f.path.rsplit("/", 1)[-1]).startswith(snapshot_id)
        ]
    except (OSError, OrchestratorError):
        names = []
    if len(names) == 1 and len(names[0]) == 64:
        return names[0]
    return commands.full_snapshot_id(runner, repo, snapshot_id)


@dataclass(frozen=True)
class InitResult:
    target: str
    where: str
    created: bool
    message: str


def init_target(ctx: Context, name: str) -> InitResult:
    """`orchestrator target init NAME`: create the repository if there is none (a copy
    target gets its source's chunker parameters); one that exists is left as it is."""
    if name not in ctx.config.targets:
        known = ", ".join(sorted(ctx.config.targets)) or "none"
        raise UsageError(f"unknown target '{name}' (known: {known})")
    spec = ctx.config.targets[name]
    target, repo = ready_repository(ctx, spec)
    where = target.describe()
    source = _copy_source(ctx, name)
    created = False

    def create() -> None:
        nonlocal created
        if source is None:
            commands.init(ctx.runner, repo)
        else:
            _, src_repo = ready_repository(ctx, source)
            commands.init_copy(ctx.runner, repo, src_repo)
        created = True

    try:
        existing = commands.snapshots(ctx.runner, repo)
    except ResticError as exc:
        if exc.kind != features.NO_REPOSITORY:
            raise
        with creation_lock(ctx.config.settings.state_dir / "locks", repo.url):
            try:
                existing = commands.snapshots(ctx.runner, repo)
            except ResticError as again:
                if again.kind != features.NO_REPOSITORY:
                    raise
                create()
    if not created:
        return InitResult(
            name, where, False, f"repository exists ({len(existing)} snapshots); left as it is"
        )
    note = (
        " (replacing one the catalog had snapshots in)"
        if ctx.catalog.ever_had_snapshot(name)
        else ""
    )
    chunker = f" with the chunker parameters of '{source.name}'" if source else ""
    return InitResult(name, where, True, f"repository created{chunker}{note}")


def _copy_source(ctx: Context, name: str) -> TargetSpec | None:
    """The target whose snapshots are copied to `name` (the first policy's first target)."""
    for policy in ctx.config.policies.values():
        if name in policy.copy_to and policy.targets:
            return ctx.config.targets[policy.targets[0]]
    return None
