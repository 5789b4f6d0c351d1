"""Issue 14 item 3: scripts/test.sh, what CI runs, cannot pass by testing nothing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import SYSTEM_PATH

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def run_test_sh(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.pop("ORCHESTRATOR_TEST_RESTIC", None)
    env["PATH"] = SYSTEM_PATH  # the machine's restic, whichever one this test run uses
    env["TEST_WORKERS"] = "0"  # no xdist workers: these runs select nothing or fail at once
    return subprocess.run(
        [str(ROOT / "scripts" / "test.sh"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_item3_a_pass_that_collects_no_tests_fails_the_script() -> None:
    """item 3: pytest's exit 5 (no tests ran) is a failure, named, in either pass."""
    out = run_test_sh("-k", "no_test_has_this_name_4f1c")
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stderr.count("collected no tests (pytest exit 5)") == 2, out.stderr
    assert "test: FAILED" in out.stderr


def test_item3_a_failing_first_pass_fails_the_script() -> None:
    """item 3: a failure in the first pass (here: pytest refuses a missing test file) fails
    the whole script even though the second pass runs after it."""
    out = run_test_sh("tests/unit/no_such_test_file.py")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "pass 'all tiers, restic" in out.stderr and "failed (pytest exit 4)" in out.stderr
    assert "pass 'integration and e2e, restic" in out.stderr
