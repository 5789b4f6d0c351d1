"""Roles (issue 16): who is acting, [access] in policies.toml, and decide() as tables."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import ConfigError
from orchestrator.events import ACCESS_DENIED, Event, EventBus
from orchestrator.policies.loader import parse_config
from orchestrator.policies.model import AccessSettings
from orchestrator.security import access
from orchestrator.security.access import Decision, decide
from orchestrator.security.identity import Identity, identity_from, matches, subject_problem

pytestmark = pytest.mark.unit

ALICE = Identity("alice", ("alice", "staff"))
BOB = Identity("bob", ("bob",))
CAROL = Identity("carol", ("carol", "audit"))
DAVE = Identity("dave", ("dave",))
ROOT = Identity("root", ("root",))
ALICE_BY_SUDO = Identity("alice", ("alice", "staff"), via_sudo=True)
ROOTS = (Path("/srv/restores"), Path("/home/shared/restore"))

ACCESS = AccessSettings(
    operators=("bob", "@backup-admins"),
    auditors=("@audit",),
    requesters={"alice": ("web",), "@staff": ("mail",), "erin": ("*",)},
    restore_roots=ROOTS,
)
ADMIN = Identity("frank", ("frank", "backup-admins"))
ERIN = Identity("erin", ("erin",))
AUDITING_REQUESTER = Identity("alice", ("alice", "audit"))


@pytest.mark.parametrize(
    ("who", "action", "policy", "path", "allowed", "reason"),
    [
        # operators: by name, by group, root always; anything, anywhere
        (BOB, "backup", None, None, True, "operator"),
        (ADMIN, "forget", None, None, True, "operator"),
        (ROOT, "daemon", None, None, True, "root is always an operator"),
        (BOB, "restore", "web", Path("/etc"), True, "operator"),
        (BOB, "secrets", None, None, True, "operator"),
        (BOB, "catalog.rebuild", None, None, True, "operator"),
        (BOB, "audit.read", None, None, True, "operator"),
        (BOB, "some new command", None, None, True, "operator"),
        # auditors: read, nothing else
        (CAROL, "status", None, None, True, "auditor"),
        (CAROL, "plan", None, None, True, "auditor"),
        (CAROL, "snapshots", None, None, True, "auditor"),
        (CAROL, "audit.read", None, None, True, "auditor"),
        (CAROL, "report", None, None, True, "auditor"),
        (CAROL, "backup", None, None, False, "only an operator may backup; carol is auditor"),
        (CAROL, "restore", "web", Path("/srv/restores/x"), False, "carol is auditor"),
        (CAROL, "secrets", None, None, False, "only an operator may secrets"),
        (CAROL, "verify", None, None, False, "only an operator may verify"),
        (CAROL, "audit.init", None, None, False, "only an operator may audit init"),
        # requesters: their policies, inside the roots
        (ALICE, "restore", "web", Path("/srv/restores/alice"), True, "under the restore root"),
        (ALICE, "restore", "mail", Path("/srv/restores"), True, "/srv/restores"),  # via @staff
        (ALICE, "restore", "web", Path("/home/shared/restore/a/b"), True, "/home/shared/restore"),
        (ALICE, "restore", "db", Path("/srv/restores/x"), False, "may restore only web, mail"),
        (ALICE, "restore", "web", Path("/etc"), False, "/etc is outside the restore roots"),
        (ALICE, "restore", "web", Path("/srv/restores-evil"), False, "outside the restore roots"),
        (ALICE, "restore", "web", Path("/srv"), False, "outside the restore roots"),
        (ALICE, "restore", "web", None, False, "needs a destination"),
        (ALICE_BY_SUDO, "restore", "web", Path("/srv/restores/a"), True, "requester"),
        (ALICE_BY_SUDO, "restore", "web", Path("/root"), False, "outside the restore roots"),
        (ERIN, "restore", "anything", Path("/srv/restores/e"), True, "requester"),
        (ALICE, "snapshots", "web", None, True, "requester"),
        (ALICE, "snapshots", None, None, False, "must name one of their policies (web, mail)"),
        (ALICE, "snapshots", "db", None, False, "may restore only web, mail, not 'db'"),
        (ALICE, "status", None, None, True, "requester"),
        (ALICE, "plan", None, None, True, "requester"),
        (ALICE, "backup", None, None, False, "only an operator may backup; alice is requester"),
        (ALICE, "approve", None, None, False, "only an operator may approve"),
        (ALICE, "audit.read", None, None, False, "only an operator or an auditor may audit read"),
        (ALICE, "forget", None, None, False, "only an operator may forget"),
        (AUDITING_REQUESTER, "audit.read", None, None, True, "requester and auditor"),
        # no role at all
        (DAVE, "status", None, None, False, "dave holds no role in [access]"),
        (DAVE, "restore", "web", Path("/srv/restores/x"), False, "holds no role"),
        # open to everyone
        (DAVE, "validate", None, None, True, "open to everyone"),
        (DAVE, "demo", None, None, True, "open to everyone"),
    ],
)
def test_decide(
    who: Identity, action: str, policy: str | None, path: Path | None, allowed: bool, reason: str
) -> None:
    decision = decide(who, action, ACCESS, policy, path)
    assert decision.allowed is allowed, decision
    assert reason in decision.reason


@pytest.mark.parametrize("who", [DAVE, CAROL, ROOT, ALICE_BY_SUDO])
@pytest.mark.parametrize("action", ["backup", "restore", "secrets", "forget", "status"])
def test_without_access_everyone_may_do_everything(who: Identity, action: str) -> None:
    decision = decide(who, action, None, "web", Path("/etc"))
    assert decision == Decision(True, "no [access] in policies.toml: every user may do everything")


def test_requesters_without_roots_restore_nowhere() -> None:
    bare = AccessSettings(requesters={"*": ("*",)})
    decision = decide(DAVE, "restore", bare, "web", Path("/srv/restores/x"))
    assert decision == Decision(
        False, "[access] names no restore_roots: a requester may restore nowhere"
    )


def test_an_empty_access_table_denies_everyone_but_root() -> None:
    empty = AccessSettings()
    assert not decide(DAVE, "status", empty).allowed
    assert decide(ROOT, "backup", empty).allowed


@pytest.mark.parametrize(
    ("uid", "environ", "expected"),
    [
        (1000, {}, Identity("alice", ("alice", "staff"))),
        (0, {}, Identity("root", ("root",))),
        # through sudo: root's SUDO_USER is the person, with their own groups
        (0, {"SUDO_USER": "alice"}, Identity("alice", ("alice", "staff"), via_sudo=True)),
        (0, {"SUDO_USER": "root"}, Identity("root", ("root",), via_sudo=True)),
        # anyone can set SUDO_USER for their own process: not honoured when not root
        (1000, {"SUDO_USER": "root"}, Identity("alice", ("alice", "staff"))),
        (1001, {"SUDO_USER": "alice"}, Identity("bob", ("bob",))),
        # nonsense in SUDO_USER is not a name: root stays root
        (0, {"SUDO_USER": "a b"}, Identity("root", ("root",))),
        (0, {"SUDO_USER": ""}, Identity("root", ("root",))),
        # a uid without a passwd entry
        (4242, {}, Identity("uid:4242", ())),
    ],
)
def test_identity_from(uid: int, environ: dict[str, str], expected: Identity) -> None:
    users = {0: "root", 1000: "alice", 1001: "bob"}
    groups = {"root": ("root",), "alice": ("alice", "staff"), "bob": ("bob",)}
    got = identity_from(uid, environ, users.get, lambda u: groups.get(u, ()))
    assert got == expected


@pytest.mark.parametrize(
    ("subject", "who", "expected"),
    [
        ("*", DAVE, True),
        ("alice", ALICE, True),
        ("alice", BOB, False),
        ("@staff", ALICE, True),
        ("@staff", BOB, False),
        ("staff", ALICE, False),  # a bare name is a user, never a group
        ("@alice", ALICE, True),  # the user's own primary group
    ],
)
def test_matches(subject: str, who: Identity, expected: bool) -> None:
    assert matches(who, subject) is expected


@pytest.mark.parametrize(
    ("subject", "problem"),
    [
        ("alice", None),
        ("@backup-admins", None),
        ("*", None),
        ("svc$", None),
        ("@", "'@' names no group: write '@GROUP'"),
        ("a b", "'a b' is not a user name, '@group' or '*'"),
        ("@x/y", "'@x/y' is not a user name, '@group' or '*'"),
        ("", "'' is not a user name"),
        ("**", "'**' is not a user name"),
    ],
)
def test_subject_problem(subject: str, problem: str | None) -> None:
    found = subject_problem(subject)
    assert (found is None) if problem is None else (found is not None and problem in found)


@pytest.mark.parametrize(
    ("command", "action"),
    [
        ("backup", "backup"),
        ("target init", "target.init"),
        ("secrets set", "secrets"),
        ("secrets rotate", "secrets"),  # the whole group
        ("audit show", "audit.read"),
        ("audit init", "audit.init"),
        ("audit new-thing", "audit new-thing"),  # unknown: operator-only
        ("tickets close", "tickets.change"),
        ("tickets list", "tickets.read"),
        ("tickets rate", "tickets.rate"),
        ("tickets new-thing", "tickets new-thing"),  # unknown: operator-only
    ],
)
def test_action_for(command: str, action: str) -> None:
    assert access.action_for(command) == action
    if action not in access.COMMANDS.values():
        assert not decide(CAROL, action, ACCESS).allowed
        assert decide(BOB, action, ACCESS).allowed


def test_every_command_of_the_cli_is_in_the_table() -> None:
    """A new command must be placed in the role table (else only operators may run it)."""
    import click

    from orchestrator.cli import cli

    def paths(group: click.Group, prefix: str = "") -> list[str]:
        out = []
        for name, command in group.commands.items():
            path = f"{prefix}{name}"
            out += paths(command, path + " ") if isinstance(command, click.Group) else [path]
        return out

    unplaced = [p for p in paths(cli) if access.action_for(p) not in access.COMMANDS.values()]
    assert unplaced == []


def test_on_denied_publishes_one_event_on_the_context_bus_or_the_process_bus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(access, "DENIALS", EventBus())
    seen_ctx: list[Event] = []
    seen_process: list[Event] = []
    ctx_bus = EventBus()
    ctx_bus.subscribe(type("S", (), {"publish": lambda self, e: seen_ctx.append(e)})())
    access.DENIALS.subscribe(type("S", (), {"publish": lambda self, e: seen_process.append(e)})())

    event = access.on_denied(CAROL, "backup", "only an operator may backup", events=ctx_bus)
    assert seen_ctx == [event] and seen_process == []
    assert event.kind == ACCESS_DENIED == "access.denied"
    assert event.details["user"] == "carol" and event.details["action"] == "backup"

    other = access.on_denied(ALICE_BY_SUDO, "restore", "x", policy="web", path=Path("/etc"))
    assert seen_process == [other] and len(seen_ctx) == 1
    assert other.policy == "web"
    assert other.details["via_sudo"] is True and other.details["path"] == "/etc"
    assert "alice (through sudo) may not restore" in other.summary


# --------------------------------------------------------------------------- [access] in the file


def _doc(access_table: dict[str, Any]) -> dict[str, Any]:
    return {
        "targets": {"t": {"kind": "local", "path": "repo", "password": "secret:pw"}},
        "policies": {
            "web": {"importance": "normal", "sources": ["/data"], "targets": ["t"]},
            "db": {"importance": "normal", "sources": ["/db"], "targets": ["t"]},
        },
        "access": access_table,
    }


def test_access_table_is_read(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    doc = _doc(
        {
            "operators": ["bob", "@backup-admins"],
            "auditors": ["carol"],
            "requesters": {"alice": ["web"], "@staff": ["*"]},
            "restore_roots": [str(tmp_path / "link"), "restores"],
        }
    )
    cfg = parse_config(doc, tmp_path / "policies.toml")
    assert cfg.access == AccessSettings(
        operators=("bob", "@backup-admins"),
        auditors=("carol",),
        requesters={"alice": ("web",), "@staff": ("*",)},
        restore_roots=(tmp_path / "real", tmp_path / "restores"),  # symlinks followed
    )


def test_requesters_as_a_list_may_restore_every_policy(tmp_path: Path) -> None:
    cfg = parse_config(_doc({"requesters": ["alice", "@staff"]}), tmp_path / "p.toml")
    assert cfg.access is not None
    assert cfg.access.requesters == {"alice": ("*",), "@staff": ("*",)}


def test_no_access_table_is_none(tmp_path: Path) -> None:
    doc = _doc({})
    del doc["access"]
    assert parse_config(doc, tmp_path / "p.toml").access is None


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({"admins": ["x"]}, "access: unknown key 'admins'"),
        ({"operators": "alice"}, "access.operators: expected an array, got a string"),
        ({"operators": ["alice", 3]}, "access.operators[1]: expected a string, got an integer"),
        ({"auditors": ["@"]}, "access.auditors[0]: '@' names no group: write '@GROUP'"),
        (
            {"requesters": {"alice": ["web", "nope"]}},
            "access.requesters.alice[1]: unknown policy 'nope' (known: db, web, or '*' for all)",
        ),
        (
            {"requesters": {"a b": ["web"]}},
            "access.requesters.\"a b\": 'a b' is not a user name, '@group' or '*' "
            "(names hold only A-Z a-z 0-9 _ . -)",
        ),
        (
            {"requesters": {"alice": "web"}},
            "access.requesters.alice: expected an array, got a string",
        ),
        (
            {"requesters": "alice"},
            "access.requesters: expected an array of users/@groups, or a table of user -> "
            "policies; got a string",
        ),
        (
            {"restore_roots": ["/"]},
            "access.restore_roots[0]: '/' is the whole file system: it would bound nothing",
        ),
        ({"restore_roots": "/srv"}, "access.restore_roots: expected an array, got a string"),
    ],
)
def test_bad_access_reports_place_and_message(
    tmp_path: Path, table: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_doc(table), tmp_path / "policies.toml")
    assert expected in info.value.problems, info.value.problems


def test_a_restore_root_overlapping_state_dir_is_refused(tmp_path: Path) -> None:
    for root in (str(tmp_path), str(tmp_path / "var" / "x")):
        doc = copy.deepcopy(_doc({"restore_roots": [root]}))
        with pytest.raises(ConfigError) as info:
            parse_config(doc, tmp_path / "policies.toml")
        [problem] = info.value.problems
        assert problem.startswith("access.restore_roots[0]: ") and "overlaps state_dir" in problem


def test_every_access_problem_at_once(tmp_path: Path) -> None:
    doc = _doc(
        {
            "operators": ["@"],
            "auditors": "carol",
            "requesters": {"alice": ["nope"]},
            "restore_roots": ["/"],
            "typo": 1,
        }
    )
    with pytest.raises(ConfigError) as info:
        parse_config(doc, tmp_path / "policies.toml")
    assert len(info.value.problems) == 5, info.value.problems


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (None, ["no [access] in policies.toml: every user who can run orchestrator"]),
        (AccessSettings(requesters={"*": ("*",)}), ["access.restore_roots: none given"]),
        (
            AccessSettings(operators=("ghost", "@nogroup"), restore_roots=ROOTS),
            [
                "access.operators: user 'ghost' does not exist on this machine",
                "access.operators: group 'nogroup' does not exist on this machine",
            ],
        ),
        (ACCESS, []),
    ],
)
def test_access_warnings(settings: AccessSettings | None, expected: list[str]) -> None:
    known = {"*", "alice", "bob", "@staff", "@backup-admins", "@audit", "erin"}
    warnings = access.access_warnings(settings, known.__contains__)
    assert len(warnings) == len(expected)
    for warning, start in zip(warnings, expected, strict=True):
        assert warning.startswith(start), warning
