"""Tier `check`: restic's structural check of the repository (needs the password)."""

from __future__ import annotations

from orchestrator.restic import commands, features
from orchestrator.restic.runner import Repository, Runner
from orchestrator.verify import CHECK_ERROR, Damage, TierResult


def run_check(runner: Runner, repo: Repository, subset: str | None = None) -> TierResult:
    """Run `restic check` (reading part `subset` of the data when given).

    A check that could not run (locked, wrong password, no repository) raises
    ResticError: that is a failure to verify, not damage."""
    result = commands.check(runner, repo, read_data_subset=subset)
    tier = "subset" if subset else "check"
    out = TierResult(tier=tier, seconds=result.completed.seconds, part=subset)
    if result.completed.ok:
        out.message = "restic check: no errors were found" + (
            f" (read part {subset})" if subset else ""
        )
        return out
    if result.completed.kind != features.FATAL or not result.damaged:
        raise commands.fail(repo, "restic check", result.completed)
    for line in result.problems or ("restic check: repository contains errors",):
        ids = commands.check_problem_files(line)
        out.damage.append(Damage(CHECK_ERROR, ids[0] if ids else None, line))
    out.message = f"restic check found {len(out.damage)} problem(s)"
    return out
