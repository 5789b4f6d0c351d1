"""What every target kind shares: the `Target` protocol and what it returns. Apart from
the package so that the kinds (local, sftp, s3) and the package's `open_target` do not
import each other."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Protocol

from orchestrator.restic.runner import Repository

if TYPE_CHECKING:
    from orchestrator.audit.checkpoint import Extends

# The repository folders whose files restic names by the SHA-256 of their content.
CONTENT_ADDRESSED = ("data", "index", "snapshots", "keys")
# Audit log (issue 16): signed checkpoints kept next to the snapshots, so copies carry them.
AUDIT_FOLDER = "orchestrator-audit"
AUDIT_FILES = ("checkpoint", "audit-key.pub")


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

    def publish_audit_checkpoint(
        self, checkpoint: str, public_key: str, extends: Extends | None = None
    ) -> bool:
        """Write the newest signed audit checkpoint and the verifier key into
        AUDIT_FOLDER of an initialised repository (atomically); False when not initialised.
        (audit log, issue 16)"""
