"""`orchestrator demo`: a month of a web shop's uploads, fast-forwarded, then a restore.

Real restic, a real repository, the real engine: only the clock is simulated
(snapshots carry the simulated times). It writes everything under one working
directory, so nothing else on the machine is touched.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

DEMO_POLICIES = """\
[orchestrator]
state_dir = "var"
timezone = "UTC"
secrets_key_file = "secrets.key"   # the demo keeps its key in its own folder too

[targets.local]
kind = "local"
path = "var/repos/local"
password = "secret:demo-repo"

[policies.shop-uploads]
description = "Uploaded files of the demo web shop"
importance = "critical"
sources = ["data/uploads"]
exclude = ["*.tmp"]
targets = ["local"]
monthly = { day = 1, at = "03:00", level = "full" }
weekly = { on = "sun", at = "02:00", level = "differential" }
schedules = [{ cron = "30 1 * * 3", level = "incremental" }]
retention = { daily = 7, weekly = 5, monthly = 12 }
rpo_hours = 170
"""

MONTH_START = datetime(2026, 11, 1, tzinfo=ZoneInfo("UTC"))
MONTH_END = datetime(2026, 12, 1, tzinfo=ZoneInfo("UTC"))


def _write_day(uploads: Path, day: datetime) -> None:
    """Each simulated day adds an invoice and rewrites the catalogue page."""
    uploads.mkdir(parents=True, exist_ok=True)
    (uploads / "invoices").mkdir(exist_ok=True)
    (uploads / "invoices" / f"{day:%Y-%m-%d}.txt").write_text(
        f"invoice of {day:%Y-%m-%d}\n" + "line item\n" * (day.day * 40)
    )
    (uploads / "catalogue.html").write_text(f"<h1>catalogue, edition {day:%Y-%m-%d}</h1>\n" * 200)
    (uploads / "scratch.tmp").write_text("never backed up\n")


def run_demo(workdir: Path | None, echo: Callable[[str], None]) -> None:
    from orchestrator.clock import FixedClock
    from orchestrator.engine.backup import backup_policy
    from orchestrator.engine.context import Context
    from orchestrator.policies.loader import load_config
    from orchestrator.policies.schedule import slots_between

    keep = workdir is not None
    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="orchestrator-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        (root / "policies.toml").write_text(DEMO_POLICIES)
        config = load_config(root / "policies.toml")
        clock = FixedClock(MONTH_START)
        ctx = Context.open(config, clock, simulated=True)
        if not ctx.secrets.has("secret:demo-repo"):
            ctx.secrets.generate("demo-repo")
        policy = config.policy("shop-uploads")
        uploads = root / "data" / "uploads"
        slots = slots_between(policy, "UTC", MONTH_START, MONTH_END)
        echo(f"demo: {root}\npolicy shop-uploads: {len(slots)} scheduled runs in November 2026\n")
        for slot in slots:
            clock.at = slot.due
            _write_day(uploads, slot.due)
            (run,) = backup_policy(ctx, policy, slot.level, slot_key=slot.key)
            echo(
                f"{slot.due:%a %d %b %H:%M}  {run.level:<12} {run.outcome:<8} "
                f"snapshot {(run.snapshot_id or '-')[:8]}  {run.files_total} files  ({slot.reason})"
            )
        _demo_restore(ctx, policy, root, uploads, echo)
        from orchestrator.engine.status import status
        from orchestrator.render.status import render_status

        echo("\nstatus at the end of the month:")
        echo(render_status(status(ctx)))
        ctx.close()
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def _demo_restore(
    ctx: object, policy: object, root: Path, uploads: Path, echo: Callable[[str], None]
) -> None:
    from orchestrator.engine.restore import restore_policy

    lost = uploads / "invoices" / "2026-11-15.txt"
    original = hashlib.sha256(lost.read_bytes()).hexdigest()
    lost.unlink()
    echo(f"\noops: {lost.name} was deleted; restoring it from the latest snapshot ...")
    result = restore_policy(ctx, policy, root / "restored", paths=(str(lost),))  # type: ignore[arg-type]
    restored = result.destination / lost.relative_to("/")
    same = hashlib.sha256(restored.read_bytes()).hexdigest() == original
    echo(
        f"restored {restored} from snapshot {result.snapshot.short_id} "
        f"({result.snapshot.tag('level')}): content {'identical' if same else 'DIFFERENT'} "
        "to the deleted file"
    )
