"""item 4 (issue 14): the feature table, keyed by restic version, and restic 0.17+'s JSON
errors turned back into text. Pure functions, tested with tables."""

from __future__ import annotations

import pytest

from orchestrator.restic import features
from orchestrator.restic.features import Features, Version, classify, features_of, plain_errors

pytestmark = pytest.mark.unit

V014, V016, V017, V018 = (Version(0, m, 0) for m in (14, 16, 17, 18))


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        (Version(0, 0, 0), Features(False, False, False, False, False, False, False)),
        (V014, Features(False, False, False, False, False, False, False)),
        (V016, Features(False, False, True, False, False, False, True)),
        (V017, Features(True, True, True, True, False, True, True)),
        (V018, Features(True, True, True, True, True, True, True)),
        (Version(1, 0, 0), Features(True, True, True, True, True, True, True)),
    ],
)
def test_item4_feature_table_by_version(version: Version, expected: Features) -> None:
    """item 4: exit codes, JSON errors, --retry-lock, --stdin-from-command, check --json."""
    assert features_of(version) == expected


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("restic 0.14.0 compiled with go1.19.8 on linux/amd64", V014),
        ("restic 0.18.0 compiled with go1.24.4 on linux/amd64", V018),
        ("something else", Version(0, 0, 0)),
    ],
)
def test_version_parse(text: str, version: Version) -> None:
    assert Version.parse(text) == version


@pytest.mark.parametrize(
    ("version", "code", "stderr", "kind"),
    [
        (V018, 10, "", features.NO_REPOSITORY),
        (V018, 11, "", features.LOCKED),
        (V018, 12, "", features.WRONG_PASSWORD),
        (V014, 10, "", features.FATAL),  # 0.14 has no code 10: the number means nothing
        (V014, 1, "Fatal: wrong password or no key found", features.WRONG_PASSWORD),
        (V018, 130, "", features.INTERRUPTED),
        (V014, 3, "", features.PARTIAL),
    ],
)
def test_classify_by_version(version: Version, code: int, stderr: str, kind: str) -> None:
    assert classify(version, code, stderr) == kind


@pytest.mark.parametrize(
    ("raw", "plain"),
    [
        # restic 0.18's exact output (measured), one line each
        (
            '{"message_type":"exit_error","code":12,'
            '"message":"Fatal: wrong password or no key found"}\n',
            "Fatal: wrong password or no key found\n",
        ),
        (
            '/nonexist does not exist, skipping\n{"message_type":"exit_error","code":1,'
            '"message":"Fatal: all source directories/files do not exist"}',
            "/nonexist does not exist, skipping\nFatal: all source directories/files do not exist",
        ),
        (
            '{"message_type":"exit_error","code":1,"message":'
            '"Fatal: LoadRaw(\\u003ckey/8e17946221\\u003e): invalid data returned"}',
            "Fatal: LoadRaw(<key/8e17946221>): invalid data returned",
        ),
        # a multi-line message stays multi-line text
        (
            '{"message_type":"exit_error","code":10,"message":"Fatal: repository does not '
            'exist\\nIs there a repository at the following location?\\n/r"}',
            "Fatal: repository does not exist\nIs there a repository at the following "
            "location?\n/r",
        ),
        # restic 0.14's plain text and other JSON lines are left alone
        ("Fatal: wrong password or no key found\n", "Fatal: wrong password or no key found\n"),
        (
            '{"message_type":"error","error":{"message":"x"}}',
            '{"message_type":"error","error":{"message":"x"}}',
        ),
        ('{"message_type":"exit_error", broken', '{"message_type":"exit_error", broken'),
        ("", ""),
    ],
)
def test_item4_plain_errors_unwraps_exit_error_json(raw: str, plain: str) -> None:
    """item 4: no raw JSON error reaches a person's message or the catalog."""
    assert plain_errors(raw) == plain


def test_item4_last_error_line_reads_through_json() -> None:
    from orchestrator.restic.runner import last_error_line

    raw = '{"message_type":"exit_error","code":1,"message":"Fatal: unable to open repo"}\n'
    assert last_error_line(raw) == "unable to open repo"
