"""Where restic stores data: one module per kind behind the `Target` protocol."""

from __future__ import annotations

from typing import Protocol

from orchestrator.errors import UsageError
from orchestrator.policies.model import LocalTargetSpec, TargetSpec
from orchestrator.restic.runner import Repository


class Target(Protocol):
    name: str

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
