"""item 8: restic's messages read as restic means them (texts captured from 0.14 and 0.18)."""

from __future__ import annotations

import json

from orchestrator.restic.commands import parse_check_problems
from orchestrator.restic.features import damage_line, lock_holder
from orchestrator.restic.runner import last_error_line, message_lines

ID = "7f1c1304fe8c4b6a68a1c3807e3898f0a45a9670460e57589fbd76f0d943eb4c"
STACK_0_14 = (
    f"id {ID} not found in repository\n"
    "github.com/restic/restic/internal/repository.(*Repository).LoadBlob\n"
    "\tgithub.com/restic/restic/internal/repository/repository.go:256\n"
    "main.runLs\n"
    "\tgithub.com/restic/restic/cmd/restic/cmd_ls.go:223\n"
    "runtime.goexit\n"
    "\truntime/asm_amd64.s:1594\n"
)


def test_a_go_stack_trace_is_never_the_message() -> None:
    assert last_error_line(STACK_0_14) == f"id {ID} not found in repository"


def test_restic_0_18_json_exit_error_gives_its_message_line() -> None:
    doc = {"message_type": "exit_error", "code": 1, "message": STACK_0_14}
    assert last_error_line(json.dumps(doc) + "\n") == f"id {ID} not found in repository"


def test_a_panic_is_named_a_crash() -> None:
    text = "panic: runtime error: index out of range [3]\n\ngoroutine 1 [running]:\nmain.main()\n"
    assert last_error_line(text + "\t/x/main.go:12 +0x1d\n") == (
        "restic crashed: runtime error: index out of range [3]"
    )


def test_damage_and_lock_holder_as_restic_words_them() -> None:
    assert damage_line(message_lines(STACK_0_14)) == f"id {ID} not found in repository"
    assert damage_line(["repository is already locked by PID 1 on vm by root"]) is None
    locked = (
        "unable to create lock in backend: repository is already locked exclusively by "
        "PID 15754 on vm by root (UID 0, GID 0)\nlock was created at 2026-12-01 03:19:05\n"
    )
    assert lock_holder(locked) == "an exclusive lock held by PID 15754 on host vm (user root)"
    assert lock_holder("Fatal: wrong password or no key found") is None


def test_check_non_critical_lines_are_no_problems() -> None:
    text = (
        "load indexes\ncheck all packs\n"
        f"pack {ID}: not referenced in any index\n"
        "1 additional files were found in the repo, which likely contain duplicate data.\n"
        "This is non-critical, you can run `restic prune` to correct this.\n"
        f"error for tree 7f1c1304:\n  id {ID} not found in repository\n"
        "The repository is damaged and must be repaired. Please follow the troubleshooting "
        "guide at https://restic.readthedocs.io/en/stable/077_troubleshooting.html .\n"
        "Fatal: repository contains errors\n"
    )
    assert parse_check_problems(text) == (
        f"error for tree 7f1c1304: id {ID} not found in repository",
    )
