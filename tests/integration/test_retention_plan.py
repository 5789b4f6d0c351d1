"""Retention planned from one listing per target (issue 15).

The keep rules are evaluated by `policies.keep.rule_keeps`, not by one `restic forget
--dry-run` per policy; these tests hold it to restic's own plan on the restic under
test, and count the restic processes of a daemon pass's retention.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from conftest import Workspace, counting_restic, restic, restic_snapshots, tag
from test_daemon import HEAD, policy
from test_process_counts import counted

from orchestrator.policies.keep import KEEP_RULES, Snap, rule_keeps
from orchestrator.restic.commands import parse_time
from orchestrator.restic.features import Version, features_of

pytestmark = pytest.mark.integration


def _restic_version() -> Version:
    return Version.parse(restic(".", "version").stdout)


def test_the_keep_rules_plan_exactly_what_restic_plans(workspace: Workspace) -> None:
    ws = workspace
    rng = random.Random(15)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    # 36 snapshots over 2.5 years, some hours, days and weeks apart
    moments = sorted(start + timedelta(minutes=rng.randint(0, 60 * 24 * 900)) for _ in range(36))
    for moment in moments:
        made = restic(
            ws.repo,
            "backup",
            "--tag",
            "policy:p",
            "--time",
            moment.strftime("%Y-%m-%d %H:%M:%S"),
            str(ws.data),
        )
        assert made.returncode == 0, made.stderr
    snaps = [Snap(s["id"], parse_time(s["time"]), None) for s in restic_snapshots(ws.repo)]
    keep_oldest = features_of(_restic_version()).forget_keeps_oldest
    differs_without_the_version_rule = 0
    for _ in range(20):
        counts: list[int | None] = [
            rng.choice([1, 2, 3, 5, 8]) if rng.random() < 0.5 else None for _ in KEEP_RULES
        ]
        if all(c is None for c in counts):
            counts[2] = 4
        args = ["forget", "--dry-run", "--json", "--group-by", "", "--tag", "policy:p"]
        for rule, count in zip(KEEP_RULES, counts, strict=True):
            if count is not None:
                args += [f"--keep-{rule}", str(count)]
        out = restic(ws.repo, *args)
        assert out.returncode == 0, out.stderr
        theirs = {s["id"] for g in json.loads(out.stdout) for s in g.get("keep") or ()}
        assert rule_keeps(snaps, counts, keep_oldest) == theirs, counts
        differs_without_the_version_rule += rule_keeps(snaps, counts, not keep_oldest) != theirs
    # the comparison can tell the versions' rules apart: it is not vacuous
    assert differs_without_the_version_rule > 0


@pytest.mark.parametrize("n", [2, 5])
def test_a_daemon_pass_plans_retention_with_one_listing_per_target(
    workspace: Workspace, n: int
) -> None:
    ws = workspace
    names = [f"p{i}" for i in range(n)]
    ws.write_policies(
        HEAD + "".join(policy(name, "once", "retention = { last = 1 }") for name in names)
    )
    for name in names:
        for day in (2, 3):
            ws.orc("backup", name, "--level", "full", "--now", f"2026-03-0{day}T01:00")
    log = counting_restic(ws)
    # 12:00: the policies are seen for the first time, so no backup is due; retention is
    verbs = counted(log, lambda: ws.orc("run", "--due", "--now", "2026-03-03T12:00"))
    assert verbs.count("snapshots") == 1 and verbs.count("forget") == 1, verbs
    assert "backup" not in verbs
    left = restic_snapshots(ws.repo)
    assert sorted(tag(s, "policy") for s in left) == names  # one each: the newest
    assert all(s["time"].startswith("2026-03-03") for s in left)
    gone = ws.query("SELECT COUNT(*) FROM runs WHERE gone_reason = 'forgotten'")
    assert gone == [(n,)]
