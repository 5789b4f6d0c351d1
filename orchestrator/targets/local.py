"""A repository on a local (or locally mounted) file system."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import BinaryIO

from orchestrator.audit.checkpoint import Extends, refuse_replacing
from orchestrator.errors import OrchestratorError
from orchestrator.policies.model import LocalTargetSpec
from orchestrator.restic.runner import Repository
from orchestrator.targets.base import (
    AUDIT_FILES,
    AUDIT_FOLDER,
    CONTENT_ADDRESSED,
    Probe,
    RepoFile,
)


class LocalTarget:
    def __init__(self, spec: LocalTargetSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.path = spec.path

    def repository(self, password: str) -> Repository:
        return Repository(url=str(self.path), password=password, label=self.name)

    def describe(self) -> str:
        return f"local:{self.path}"

    def preflight(self) -> None:
        """Catch what restic would report as a wall of errors: a file where the repository
        should be, or a parent directory we cannot create or write."""
        path = self.path
        if path.exists() and not path.is_dir():
            raise OrchestratorError(
                f"target '{self.name}': repository path {path} is a file, not a directory"
            )
        if path.is_dir():
            if not os.access(path, os.W_OK | os.X_OK):
                raise OrchestratorError(
                    f"target '{self.name}': repository directory {path} is not writable"
                )
            return
        parent = path.parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise OrchestratorError(
                f"target '{self.name}': cannot create repository {path}: "
                f"{parent} is not a writable directory"
            )

    def probe(self) -> Probe:
        """Preflight, plus free space (statvfs) on the file system that holds the repository."""
        self.preflight()
        existing = self.path
        while not existing.exists():
            existing = existing.parent
        st = os.statvfs(existing)
        notes = (
            () if self.path.exists() else (f"{self.path} does not exist yet (restic creates it)",)
        )
        return Probe(
            initialised=self.is_initialised(),
            writable=True,  # preflight checked it
            free_bytes=st.f_bavail * st.f_frsize,
            notes=notes,
        )

    def is_initialised(self) -> bool:
        return (self.path / "config").is_file()

    def list_files(self, folders: tuple[str, ...] = CONTENT_ADDRESSED) -> Iterator[RepoFile]:
        for folder in folders:
            base = self.path / folder
            for dirpath, _dirs, names in os.walk(base):
                for name in sorted(names):
                    full = os.path.join(dirpath, name)
                    rel = os.path.relpath(full, self.path).replace(os.sep, "/")
                    yield RepoFile(rel, os.stat(full).st_size)

    def open_file(self, path: str) -> BinaryIO:
        return (self.path / path).open("rb")

    def publish_audit_checkpoint(
        self, checkpoint: str, public_key: str, extends: Extends | None = None
    ) -> bool:
        """Audit log (issue 16): next to the snapshots; never creates a repository."""
        if not self.is_initialised():
            return False
        folder = self.path / AUDIT_FOLDER
        there = folder / AUDIT_FILES[0]
        try:
            existing: str | None = there.read_text()
        except FileNotFoundError:
            existing = None
        except (OSError, UnicodeDecodeError):
            existing = None  # unreadable: no evidence to keep; the write below says why
        refuse_replacing(existing, checkpoint, str(there), extends)
        folder.mkdir(exist_ok=True)
        for name, text in zip(AUDIT_FILES, (checkpoint, public_key), strict=True):
            tmp = folder / f".{name}.{os.getpid()}.tmp"
            tmp.write_text(text)
            os.replace(tmp, folder / name)
        return True
