"""The catalog against what the repositories hold (design section 11).

The repositories are the truth about snapshots; every snapshot carries the tags
`policy:`, `level:` and `run:<run id>`. Whenever a target's snapshots are listed (a
backup the catalog cannot guide, `snapshots`, verification) the catalog is compared
with the listing:

- a run the catalog calls `interrupted` whose `run:` tag is on a snapshot finished
  after all (the orchestrator died, or its disk was full, after restic's work): it
  becomes a success with that snapshot;
- a good run whose snapshot is no longer listed, and was not forgotten by our own
  retention, has `vanished`: marked gone (never shown as the newest good backup),
  warned about, and reported as damage by `verify`;
- snapshots whose `run:` tag the catalog does not know (the catalog was deleted or
  replaced): warned about, and `orchestrator catalog rebuild` records them.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from orchestrator.catalog import GOOD_OUTCOMES, Catalog, RunRecord
from orchestrator.catalog.sqlite import (
    MISSING_AT_REBUILD_MARK,
    CatalogError,
    SqliteCatalog,
    same_snapshot,
)
from orchestrator.engine.context import Context
from orchestrator.events import Event
from orchestrator.restic.commands import Snapshot

log = logging.getLogger("orchestrator.catalog")

VANISHED = "vanished"  # gone_reason: missing from the repository, not removed by us
FORGOTTEN = "forgotten"  # gone_reason: removed by our retention
LOST = "lost"  # gone_reason: vanished, and accepted by `catalog rebuild`

CATALOG_RECONCILED = "catalog.reconciled"
SNAPSHOT_VANISHED = "snapshot.vanished"
CATALOG_INCOMPLETE = "catalog.incomplete"


@dataclass
class Reconciled:
    """What one comparison of the catalog with one target's listing found and did."""

    target: str
    recovered: list[RunRecord] = field(default_factory=list)
    vanished: list[RunRecord] = field(default_factory=list)  # newly found missing
    unknown: list[Snapshot] = field(default_factory=list)
    added: list[RunRecord] = field(default_factory=list)  # by `catalog rebuild`


def _target_runs(catalog: Catalog, target: str, policy: str | None) -> list[RunRecord]:
    return [
        r
        for r in catalog.runs(policy=policy, target=target, limit=1_000_000)
        if r.kind in ("backup", "copy")
    ]


def reconcile_listing(
    ctx: Context,
    target: str,
    snaps: Iterable[Snapshot],
    policy: str | None,
    listed_at: datetime,
    warn_unknown: bool = True,
) -> Reconciled:
    """Compare the catalog's runs on `target` (of `policy`, or all) with a listing made at
    `listed_at` (runs finished later may not be in it yet, and are left alone)."""
    snaps = list(snaps)
    found = Reconciled(target)
    runs = _target_runs(ctx.catalog, target, policy)
    by_tag = {s.tag("run"): s for s in snaps if s.tag("run")}
    for run in runs:
        snap = by_tag.get(run.id)
        if run.kind == "backup" and run.outcome == "interrupted" and snap and not run.snapshot_id:
            run.outcome, run.error_kind, run.snapshot_id = "success", None, snap.id
            run.level = snap.tag("level") or run.level
            run.message = (
                f"{run.level} snapshot {snap.short_id}: restic finished it, but the "
                "orchestrator stopped before recording it (reconciled from its run: tag)"
            )
            ctx.catalog.finish_run(run)
            found.recovered.append(run)
    found.vanished = mark_vanished(ctx, target, runs, [s.id for s in snaps], listed_at)
    known = {r.snapshot_id[:8] for r in runs if r.snapshot_id}  # 0.14 and 0.18 ids alike
    copying_here = any(r.outcome == "running" for r in runs)
    for snap in snaps:
        if snap.id[:8] in known:
            continue
        run_id = snap.tag("run")
        owner = ctx.catalog.get_run(run_id) if run_id else None
        if owner is not None and (owner.outcome == "running" or owner.target == target):
            continue  # still being recorded, or recorded here without an id
        if owner is not None and copying_here:
            continue  # a copy of it is arriving now
        found.unknown.append(snap)
    publish(ctx, found if warn_unknown else Reconciled(target, found.recovered, found.vanished))
    return found


def mark_vanished(
    ctx: Context,
    target: str,
    runs: list[RunRecord] | None,
    present: list[str],
    listed_at: datetime,
) -> list[RunRecord]:
    """Mark good runs whose snapshot id is not among `present` as gone (vanished)."""
    if runs is None:
        runs = _target_runs(ctx.catalog, target, None)
    held: dict[str, list[str]] = {}
    for sid in present:
        held.setdefault(sid[:8], []).append(sid)
    missing = [
        r
        for r in runs
        if r.outcome in GOOD_OUTCOMES
        and r.snapshot_id
        and r.gone_at is None
        and (r.finished_at is None or r.finished_at <= listed_at)
        and not any(same_snapshot(r.snapshot_id, sid) for sid in held.get(r.snapshot_id[:8], ()))
    ]
    for run in runs:  # listed again (a passing fault of the storage): not lost after all
        sid = run.snapshot_id or ""
        back = any(same_snapshot(sid, s) for s in held.get(sid[:8], ()))
        if run.gone_reason == VANISHED and back:
            run.gone_at, run.gone_reason = None, None
            ctx.catalog.finish_run(run)
    ids = [str(r.snapshot_id) for r in missing]
    return ctx.catalog.mark_gone(target, ids, VANISHED, ctx.clock.now())


def publish(ctx: Context, found: Reconciled) -> None:
    now = ctx.clock.now()
    for run in found.recovered:
        log.warning("target '%s': %s", found.target, run.message)
        ctx.events.publish(
            Event(
                CATALOG_RECONCILED,
                now,
                "warning",
                f"run {run.id[:8]} of '{run.policy}' on '{run.target}': {run.message}",
                run.policy,
                run.target,
                run.id,
                {"snapshot_id": run.snapshot_id},
            )
        )
    if found.vanished:
        ids = ", ".join(str(r.snapshot_id)[:8] for r in found.vanished)
        text = (
            f"target '{found.target}' no longer holds {len(found.vanished)} snapshot(s) the "
            f"catalog recorded ({ids}), and our retention did not remove them: the "
            "repository lost data (run 'orchestrator verify')"
        )
        log.warning("%s", text)
        ctx.events.publish(
            Event(
                SNAPSHOT_VANISHED,
                now,
                "critical",
                text,
                target=found.target,
                details={"snapshots": [r.snapshot_id for r in found.vanished]},
            )
        )
    if found.unknown:
        text = (
            f"target '{found.target}' holds {len(found.unknown)} snapshot(s) the catalog "
            "does not know (a deleted or replaced catalog?): run 'orchestrator catalog "
            "rebuild' to record them"
        )
        log.warning("%s", text)
        ctx.events.publish(
            Event(
                CATALOG_INCOMPLETE,
                now,
                "warning",
                text,
                target=found.target,
                details={"snapshots": [s.id for s in found.unknown]},
            )
        )


def lost_snapshots(catalog: Catalog, target: str, policy: str | None = None) -> list[RunRecord]:
    """Good runs whose snapshot vanished from `target` and nobody has accepted the loss."""
    return [
        r
        for r in catalog.gone_runs(target, VANISHED, policy)
        if r.kind in ("backup", "copy") and r.outcome in GOOD_OUTCOMES
    ]


# --- `orchestrator catalog rebuild` ---


def open_or_set_aside(path: Path) -> tuple[SqliteCatalog, Path | None]:
    """The catalog; a damaged one is moved aside (kept for inspection) and a new one made."""
    try:
        catalog = SqliteCatalog(path)
        try:  # a sound header with ruined pages opens: look at every page once
            sound = catalog.db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        except CatalogError as exc:
            if getattr(exc, "kind", None) != "catalog_damaged":
                raise
            sound = False
        if sound:
            return catalog, None
        catalog.close()
    except CatalogError as exc:
        if getattr(exc, "kind", None) != "catalog_damaged":
            raise
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    shutil.move(path, aside)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            shutil.move(side, aside.with_name(aside.name + suffix))
    return SqliteCatalog(path), aside


def rebuild_target(ctx: Context, target: str, snaps: list[Snapshot]) -> Reconciled:
    """Record every tagged snapshot of `target` the catalog lacks; accept vanished ones."""
    found = reconcile_listing(ctx, target, snaps, None, ctx.clock.now(), warn_unknown=False)
    runs = _target_runs(ctx.catalog, target, None)
    for snap in found.unknown:
        policy = snap.tag("policy")
        if policy is None:
            continue  # not made by the orchestrator
        tag = snap.tag("run")
        pol = ctx.config.policies.get(policy)
        is_copy = pol is not None and target in pol.copy_to and target not in pol.targets
        run_id = tag if tag and ctx.catalog.get_run(tag) is None else uuid.uuid4().hex
        run = RunRecord(
            id=run_id,
            kind="copy" if is_copy or run_id != tag else "backup",
            policy=policy,
            target=target,
            started_at=snap.time,
            host=snap.hostname,
            pid=0,
            asked_level=snap.tag("level"),
            level=snap.tag("level"),
            level_reason="rebuilt from the repository's tags",
            outcome="success",
            finished_at=snap.time,
            snapshot_id=snap.id,
            files_total=snap.files,  # restic 0.17+; 0.14 does not record it (see backup.py)
            message=f"rebuilt from snapshot {snap.short_id}'s tags (run:{tag or '-'})",
        )
        ctx.catalog.start_run(run)
        found.added.append(run)
    lost = [r for r in runs if r.gone_reason == VANISHED]
    for run in lost:  # the catalog now matches the repository: the loss is accepted
        run.gone_reason = LOST
        ctx.catalog.finish_run(run)
    return found


@dataclass
class Rebuilt:
    """What `orchestrator catalog rebuild` did."""

    set_aside: Path | None
    targets: list[Reconciled] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def rebuild(config: object) -> tuple[Context, Rebuilt]:
    """Rebuild runs and snapshots from every target's snapshot tags; a damaged catalog file
    is moved aside first. A target that cannot be read is reported and left as it was."""
    from orchestrator.catalog import CatalogEventSink
    from orchestrator.engine.context import open_audit, recover_interrupted
    from orchestrator.engine.preflight import ready_repository
    from orchestrator.errors import OrchestratorError
    from orchestrator.restic import commands
    from orchestrator.restic.runner import Runner
    from orchestrator.security.secrets import SecretStore

    settings = config.settings  # type: ignore[attr-defined]
    catalog, aside = open_or_set_aside(settings.state_dir / "catalog.sqlite")
    ctx = Context(
        config=config,  # type: ignore[arg-type]
        catalog=catalog,
        runner=Runner(
            settings.restic_binary, settings.timeout_seconds, cache_dir=settings.state_dir / "cache"
        ),
        secrets=SecretStore.of(settings),
    )
    ctx.events.subscribe(CatalogEventSink(catalog))
    ctx.audit = open_audit(ctx)  # audit log (issue 16): the rebuild's own records too
    recover_interrupted(ctx)
    done = Rebuilt(aside)
    for spec in ctx.config.targets.values():
        try:
            _target, repo = ready_repository(ctx, spec)
            snaps = commands.snapshots(ctx.runner, repo)
        except OrchestratorError as exc:
            if getattr(exc, "kind", None) == "no_repository":
                # A missing repository is not "nothing to rebuild": the lost catalog may
                # have seen snapshots there (an unmounted disk, a moved directory). Say
                # so, and keep backups from creating a new empty one in its place.
                mark = MISSING_AT_REBUILD_MARK + spec.name
                ctx.catalog.set_mark(mark, "missing", ctx.clock.now())
                where = ctx.target(spec).describe()
                done.errors[spec.name] = (
                    f"repository missing ({where}); backups will not create one there: "
                    f"if it is really lost, 'orchestrator target init {spec.name}' creates "
                    "a new, empty one"
                )
            else:
                done.errors[spec.name] = _unprefixed(exc.message, spec.name)
            continue
        ctx.catalog.set_mark(f"{MISSING_AT_REBUILD_MARK}{spec.name}", None, ctx.clock.now())
        done.targets.append(rebuild_target(ctx, spec.name, snaps))
    return ctx, done


def _unprefixed(message: str, target: str) -> str:
    """The error without its own "target 'x': " prefix: the report names the target."""
    prefix = f"target '{target}': "
    return message[len(prefix) :] if message.startswith(prefix) else message
