"""Where restic stores data: one module per kind behind the `Target` protocol."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from orchestrator.errors import UsageError
from orchestrator.policies.model import LocalTargetSpec, TargetSpec
from orchestrator.restic.runner import Repository

# The repository folders whose files restic names by the SHA-256 of their content.
CONTENT_ADDRESSED = ("data", "index", "snapshots", "keys")


@dataclass(frozen=True)
class RepoFile:
    """One file of a repository, as the storage sees it (no password needed)."""

    path: str  # relative to the repository root, '/'-separated, e.g. "data/ab/ab12..."
    size: int


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

    def describe(self) -> str:
        """Where the repository is, for people (no secrets)."""


def open_target(spec: TargetSpec) -> Target:
    if isinstance(spec, LocalTargetSpec):
        from orchestrator.targets.local import LocalTarget

        return LocalTarget(spec)
    raise UsageError(
        f"target '{spec.name}': kind '{spec.kind}' is not available in this version "
        "(only 'local' is; SFTP and S3 come with the remote targets issue)"
    )
