"""Everything an operation needs, built once from the validated config."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from orchestrator.catalog import Catalog, CatalogEventSink
from orchestrator.clock import Clock, SystemClock
from orchestrator.events import EventBus
from orchestrator.policies.model import Config, TargetSpec
from orchestrator.restic.runner import Repository, Runner
from orchestrator.security.secrets import SecretStore
from orchestrator.targets import Target, open_target


@dataclass
class Context:
    config: Config
    catalog: Catalog
    runner: Runner
    secrets: SecretStore
    clock: Clock = field(default_factory=SystemClock)
    events: EventBus = field(default_factory=EventBus)
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    simulated: bool = False  # `--now` given: restic records snapshots at the simulated time

    @classmethod
    def open(cls, config: Config, clock: Clock | None = None, simulated: bool = False) -> Context:
        from orchestrator.catalog.sqlite import SqliteCatalog

        state = config.settings.state_dir
        catalog = SqliteCatalog(state / "catalog.sqlite")
        ctx = cls(
            config=config,
            catalog=catalog,
            runner=Runner(config.settings.restic_binary, config.settings.timeout_seconds),
            secrets=SecretStore(state),
            clock=clock or SystemClock(),
            simulated=simulated,
        )
        ctx.events.subscribe(CatalogEventSink(catalog))
        ctx.catalog.recover_interrupted(ctx.host, _pid_alive, ctx.clock.now())
        return ctx

    def target(self, spec: TargetSpec) -> Target:
        """The target, able to resolve the extra secrets it needs (S3 credentials)."""
        return open_target(spec, self.secrets.resolve)

    def open_repository(self, spec: TargetSpec) -> tuple[Target, Repository]:
        """The target and its repository handle; resolves the password only now."""
        target = self.target(spec)
        password = self.secrets.resolve(spec.password)
        return target, target.repository(password)

    def close(self) -> None:
        self.catalog.close()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
