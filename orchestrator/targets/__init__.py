"""Where restic stores data: one module per kind behind the `Target` protocol."""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.errors import UsageError
from orchestrator.policies.model import LocalTargetSpec, S3TargetSpec, SftpTargetSpec, TargetSpec
from orchestrator.targets.base import CONTENT_ADDRESSED, Probe, RepoFile, Target

__all__ = ["CONTENT_ADDRESSED", "Probe", "RepoFile", "Target", "open_target"]


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
