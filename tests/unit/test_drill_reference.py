"""How a drill reads restic's own content of the files with no live reference: always
one restic process, and never the whole snapshot for a small sample of a large one."""

from __future__ import annotations

import pytest

from orchestrator.restic.commands import restored_snapshot
from orchestrator.verify.drill import TAR_SLACK_BYTES, reference_read

MIB = 1 << 20


def test_one_file_is_dumped_raw() -> None:
    sizes = {"/d/a": 10, "/d/b": 20}
    assert reference_read({"/d/b": 20}, sizes) == ("file", "/d/b")


def test_a_whole_folder_is_one_tar_dump_of_the_common_folder() -> None:
    sizes = {"/srv/d/x/a": 10 * MIB, "/srv/d/y/b": 5 * MIB, "/srv/other": 1}
    assert reference_read({"/srv/d/x/a": 10 * MIB, "/srv/d/y/b": 5 * MIB}, sizes) == (
        "tar",
        "/srv/d",
    )


def test_a_small_sample_of_a_large_snapshot_is_restored_not_dumped_whole() -> None:
    sizes = {f"/srv/d/f{i}": 10 * MIB for i in range(100)}  # 1000 MiB under /srv/d
    needed = {"/srv/d/f1": 10 * MIB, "/srv/d/f2": 10 * MIB}
    assert reference_read(needed, sizes) == ("restore", "")


@pytest.mark.parametrize(
    ("under", "kind"),
    [(2 * 30 * MIB + TAR_SLACK_BYTES, "tar"), (2 * 30 * MIB + TAR_SLACK_BYTES + 1, "restore")],
)
def test_the_bound_between_dump_and_restore(under: int, kind: str) -> None:
    needed = {"/d/a": 10 * MIB, "/d/b": 20 * MIB}
    sizes = {**needed, "/d/rest": under - 30 * MIB, "/elsewhere": 10**12}
    assert reference_read(needed, sizes)[0] == kind


def test_a_folder_prefix_is_not_a_sibling_with_a_longer_name() -> None:
    needed = {"/d/a/1": 1, "/d/a/2": 1}
    sizes = {**needed, "/d/ab/huge": 10**12}  # /d/ab is not inside /d/a
    assert reference_read(needed, sizes) == ("tar", "/d/a")


@pytest.mark.parametrize(
    ("line", "snapshot"),
    [
        ("restoring <Snapshot 16ebadd8 of [/tmp/x] at 2026-12-01 06:50:15 +0000 UTC", "16ebadd8"),
        ("restoring snapshot 16ebadd8 of [/tmp/x] at 2026-12-01 06:50:15 +0000 UTC", "16ebadd8"),
        ("Summary: Restored 23 files/dirs (1.907 MiB) in 0:00", None),
    ],
)
def test_restore_names_the_snapshot_it_restored(line: str, snapshot: str | None) -> None:
    assert restored_snapshot(line + "\n") == snapshot
