"""Everything an operation needs, built once from the validated config."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator import events
from orchestrator.audit.sink import AuditSink
from orchestrator.audit.trail import open_trail
from orchestrator.catalog import Catalog, CatalogEventSink, RunRecord, VerificationRecord
from orchestrator.clock import Clock, SystemClock
from orchestrator.events import Event, EventBus
from orchestrator.notify.outbox import NoticeSink
from orchestrator.policies.model import Config, TargetSpec
from orchestrator.restic.runner import Repository, Runner
from orchestrator.security.secrets import SecretStore
from orchestrator.service.sink import TicketSink
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
    audit: AuditSink | None = None  # audit log (issue 16)
    request_id: int | None = None  # the restore request being carried out (issue 17)

    @classmethod
    def open(cls, config: Config, clock: Clock | None = None, simulated: bool = False) -> Context:
        from orchestrator.catalog.sqlite import SqliteCatalog

        state = config.settings.state_dir
        catalog = SqliteCatalog(state / "catalog.sqlite")
        ctx = cls(
            config=config,
            catalog=catalog,
            runner=Runner(
                config.settings.restic_binary,
                config.settings.timeout_seconds,
                cache_dir=state / "cache",
            ),
            secrets=SecretStore.of(config.settings),
            clock=clock or SystemClock(),
            simulated=simulated,
        )
        ctx.events.subscribe(CatalogEventSink(catalog))
        ctx.audit = open_audit(ctx)  # audit log (issue 16)
        ctx.events.subscribe(  # tickets (issue 17): after the audit, which hears of both
            TicketSink(
                config,
                catalog,
                ctx.events,
                ctx.host,
                lambda name: ctx.target(config.targets[name]).describe(),
            )
        )
        # notices are queued here and sent by the daemon's pass
        ctx.events.subscribe(NoticeSink(catalog, config.notify, config.service.escalate))
        recover_interrupted(ctx)
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


def open_audit(ctx: Context) -> AuditSink:
    """Audit log (issue 16): every event, secret use and this config load is recorded by
    this process; checkpoints go to each repository (remote ones by `audit checkpoint`)."""
    publishers = [
        (
            f"target '{name}'",
            lambda text, key, extends, spec=spec: ctx.target(spec).publish_audit_checkpoint(
                text, key, extends
            ),
            spec.kind != "local",
        )
        for name, spec in ctx.config.targets.items()
    ]
    sink = AuditSink(open_trail(ctx.config, publishers, vault=lambda: ctx.secrets))
    ctx.events.subscribe(sink)
    ctx.secrets.on_use = sink.secret_used
    sink.config_loaded(str(ctx.config.path), ctx.config.sha256)
    return sink


def recover_interrupted(ctx: Context) -> None:
    """Finish the catalog rows of runs and checks whose process died (kill -9), remove a
    dead drill's scratch copy, and publish each on the bus (the audit log records them)."""
    state = ctx.config.settings.state_dir
    checks: list[VerificationRecord] = []

    def recovered_check(rec: VerificationRecord) -> None:
        remove_drill_scratch(state, rec)
        checks.append(rec)

    runs = ctx.catalog.recover_interrupted(ctx.host, _pid_alive, ctx.clock.now(), recovered_check)
    publish_interrupted(ctx, runs, checks)


def publish_interrupted(
    ctx: Context, runs: Sequence[RunRecord], checks: Sequence[VerificationRecord]
) -> None:
    """A process killed with -9 wrote no end to its runs: the next start finds them and
    says so on the bus, so the audit log (and the catalog's event list) has a record of
    each; the catalog rows themselves were already finished by `recover_interrupted`."""
    now = ctx.clock.now()
    for run in runs:
        ctx.events.publish(
            Event(
                events.RUN_INTERRUPTED,
                now,
                "error",
                f"{run.kind} of {run.policy} to {run.target} interrupted: {run.message}",
                policy=run.policy,
                target=run.target,
                run_id=run.id,
                details={
                    "kind": run.kind,
                    "pid": run.pid,
                    "started_at": run.started_at.isoformat(),
                },
            )
        )
    for rec in checks:
        ctx.events.publish(
            Event(
                events.VERIFY_FAILED,
                now,
                "error",
                f"{rec.tier} of {rec.target} interrupted: {rec.message}",
                policy=rec.policy,
                target=rec.target,
                run_id=rec.id,
                details={
                    "tier": rec.tier,
                    "outcome": "interrupted",
                    "started_at": rec.started_at.isoformat(),
                },
            )
        )


def remove_drill_scratch(state_dir: Path, rec: VerificationRecord) -> None:
    """A drill whose process died (kill -9) left its full restored copy in
    `state_dir/drills`; remove it when its record is recovered, not only at the next drill.
    The name is the one verification.py's drill gives it: `<target>-<record id[:12]>`."""
    if rec.tier != "drill" or not rec.target or not rec.id:
        return
    shutil.rmtree(state_dir / "drills" / f"{rec.target}-{rec.id[:12]}", ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
