"""Where restic stores data: one module per kind behind the `Target` protocol."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from orchestrator.errors import UsageError
from orchestrator.policies.model import LocalTargetSpec, S3TargetSpec, SftpTargetSpec, TargetSpec
from orchestrator.restic.runner import Repository

# The repository folders whose files restic names by the SHA-256 of their content.
CONTENT_ADDRESSED = ("data", "index", "snapshots", "keys")


@dataclass(frozen=True)
class RepoFile:
    """One file of a repository, as the storage sees it (no password needed)."""

    path: str  # relative to the repository root, '/'-separated, e.g. "data/ab/ab12..."
    size: int


@dataclass(frozen=True)
class Probe:
    """What the full preflight (`target check`) found; failures raise TargetError instead.

    `writable` and `free_bytes` are None where the storage cannot tell (S3 has no free space).
    """

    initialised: bool
    writable: bool | None
    free_bytes: int | None = None
    notes: tuple[str, ...] = ()  # facts for people: "host key ... known", "bucket ... exists"


class Target(Protocol):
    name: str

    def list_files(self, folders: tuple[str, ...] = CONTENT_ADDRESSED) -> Iterator[RepoFile]:
        """Every file under these repository folders, with its size."""

    def open_file(self, path: str) -> AbstractContextManager[BinaryIO]:
        """Stream one repository file's bytes (never the whole file in memory)."""

    def repository(self, password: str) -> Repository:
        """How restic reaches this target's repository."""

    def preflight(self) -> None:
        """Cheap checks before every run; raises OrchestratorError with a reason."""

    def probe(self) -> Probe:
        """The full check for `target check` (may write and delete a small probe file)."""

    def describe(self) -> str:
        """Where the repository is, for people (no secrets)."""


def open_target(spec: TargetSpec, resolve: Callable[[str], str] | None = None) -> Target:
    """The target for `spec`. `resolve` turns a `secret:NAME` into its value; targets that
    need more secrets than the repository password (S3 credentials) call it when needed."""
    if isinstance(spec, LocalTargetSpec):
        from orchestrator.targets.local import LocalTarget

        return LocalTarget(spec)
    if isinstance(spec, SftpTargetSpec):
        from orchestrator.targets.sftp import SftpTarget

        return SftpTarget(spec)
    if isinstance(spec, S3TargetSpec):
        from orchestrator.targets.s3 import S3Target

        return S3Target(spec, resolve)
    raise UsageError(f"target '{spec.name}': kind '{spec.kind}' is not supported")
