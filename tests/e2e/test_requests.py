"""Restore requests (issue 17) through the real command run as other Unix users: a
requester asks, cannot approve, an operator approves (never their own), the request is
carried out and verified into the restore root, resolved with the evidence, and rated
by the requester alone; every step and every refusal is in the audit log."""

from __future__ import annotations

import json

import pytest
from conftest import Workspace
from test_roles_cli import ALICE, BOB, access, as_user, give_to, one_line, users, ws  # noqa: F401

pytestmark = pytest.mark.e2e


def ticket(place: Workspace, n: int) -> dict:
    return json.loads(as_user(place, None, "--json", "tickets", "show", str(n)).stdout)["ticket"]


def test_a_restore_request_from_asking_to_rating(ws: Workspace) -> None:  # noqa: F811
    access(ws, f'operators = ["{BOB}"]\nrequesters = {{ "{ALICE}" = ["files"] }}\n')
    roots = ws.root / "restores"
    give_to(ws.root, ALICE)
    lost = str(ws.data / "a.txt")

    other = as_user(ws, ALICE, "request", "restore", "other", "--to", str(roots / "o"),
                    "--reason", "x", check=77)  # fmt: skip
    assert "may restore only files" in one_line(other.stderr)
    etc = as_user(ws, ALICE, "request", "restore", "files", "--to", "/etc/x", "--reason", "x",
                  check=77)  # fmt: skip
    assert "outside the restore roots" in one_line(etc.stderr)

    filed = as_user(ws, ALICE, "--json", "request", "restore", "files", "--path", lost,
                    "--to", str(roots / "req"), "--reason", "deleted a.txt by mistake")  # fmt: skip
    t = json.loads(filed.stdout)["ticket"]
    assert (t["kind"], t["requester"], t["priority"], t["classification"]) == (
        "restore-request", ALICE, "general", "routine"  # normal data: general
    )  # fmt: skip
    assert t["details"]["request"]["state"] == "awaiting-approval"
    n = str(t["id"])
    assert "only an operator may approve" in one_line(
        as_user(ws, ALICE, "request", "approve", n, check=77).stderr
    )

    give_to(ws.root, BOB)
    own = json.loads(as_user(ws, BOB, "--json", "request", "restore", "files", "--to",
                             str(roots / "bob"), "--reason", "mine").stdout)["ticket"]  # fmt: skip
    refused = as_user(ws, BOB, "request", "approve", str(own["id"]), check=2)
    assert "may not approve their own request" in one_line(refused.stderr)
    as_user(ws, BOB, "request", "approve", n)
    assert "only a request awaiting approval" in one_line(
        as_user(ws, BOB, "request", "approve", n, check=2).stderr  # approving twice
    )
    assert ticket(ws, int(n))["details"]["request"]["approved_by"] == BOB

    as_user(ws, None, "request", "run", n)  # what the daemon's pass does
    restored = roots / "req" / lost.lstrip("/")
    assert restored.read_bytes() == (ws.data / "a.txt").read_bytes()
    done = ticket(ws, int(n))
    assert done["status"] == "resolved" and done["details"]["request"]["state"] == "done"
    evidence = done["details"]["request"]["evidence"]
    assert evidence["files"] >= 1 and evidence["to"] == str(roots / "req")
    assert evidence["snapshot"] in done["solution"]

    give_to(ws.root, BOB)
    assert f"only its requester ({ALICE}) rates it" in one_line(
        as_user(ws, BOB, "tickets", "rate", n, "2", check=2).stderr
    )
    give_to(ws.root, ALICE)
    assert "1 to 5" in one_line(as_user(ws, ALICE, "tickets", "rate", n, "9", check=2).stderr)
    as_user(ws, ALICE, "tickets", "rate", n, "5", "--comment", "back within the hour")
    assert ticket(ws, int(n))["rating"] == 5

    records = json.loads(as_user(ws, None, "--json", "audit", "show").stdout)["records"]
    mine = [r for r in records if r["what"].startswith("ticket.")]
    assert {r["who"] for r in mine} >= {ALICE, BOB}
    refusals = [r["details"]["action"] for r in mine if r["what"] == "ticket.refused"]
    assert refusals == ["approve", "approve", "rate", "rate"]


def test_a_request_killed_mid_run_is_failed_and_runs_again_once_approved(
    ws: Workspace,  # noqa: F811
) -> None:
    """Third break-it: a request whose process was killed (-9) stayed `running` forever,
    and a failed request could never run again."""
    import os
    import signal
    import subprocess
    import time

    from conftest import ORCHESTRATOR

    access(ws, f'operators = ["{BOB}"]\nrequesters = {{ "{ALICE}" = ["files"] }}\n')
    big = ws.data / "big.bin"
    with big.open("wb") as fh:
        for _ in range(48):
            fh.write(os.urandom(1 << 20))
    as_user(ws, None, "backup", "files")
    roots = ws.root / "restores"
    give_to(ws.root, ALICE)
    filed = as_user(ws, ALICE, "--json", "request", "restore", "files", "--to",
                    str(roots / "big"), "--reason", "need it")  # fmt: skip
    n = str(json.loads(filed.stdout)["ticket"]["id"])
    give_to(ws.root, BOB)
    as_user(ws, BOB, "request", "approve", n)

    run = subprocess.Popen(
        [*ORCHESTRATOR, "--config", str(ws.config), "request", "run", n],
        env=ws.env, cwd=ws.root, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while ticket(ws, int(n))["details"]["request"]["state"] != "running":
        assert time.monotonic() < deadline and run.poll() is None
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait(30)

    again = as_user(ws, None, "request", "run", n, check=2)  # found dead, failed, not run
    assert "only an approved request is run" in one_line(again.stderr)
    dead = ticket(ws, int(n))
    assert dead["details"]["request"]["state"] == "failed" and dead["status"] == "acknowledged"
    assert "the process running it" in dead["details"]["request"]["error"]
    assert not any(p.name.startswith(".") for p in roots.iterdir())  # no staging left
    as_user(ws, BOB, "request", "approve", n)  # approved again: it runs again
    as_user(ws, None, "request", "run", n)
    assert (roots / "big" / str(big).lstrip("/")).read_bytes() == big.read_bytes()
    assert ticket(ws, int(n))["status"] == "resolved"
