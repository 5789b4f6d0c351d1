"""The parse cache on disk: written beside the catalog, used only for the same bytes,
and never trusted when damaged, foreign or stale (then the TOML is parsed again)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from orchestrator.errors import ConfigError
from orchestrator.policies.loader import load_config
from orchestrator.policies.parse_cache import CACHE_NAME

pytestmark = pytest.mark.integration

POLICIES = """\
[orchestrator]
state_dir = "var"
timezone = "UTC"

[targets.local]
kind = "local"
path = "repo"
password = "secret:x"

[policies.files]
importance = "normal"
sources = ["data"]
targets = ["local"]
daily = { at = "01:30", level = "incremental" }
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "var").mkdir()
    path = tmp_path / "policies.toml"
    path.write_text(textwrap.dedent(POLICIES))
    return path


def test_the_cache_is_written_owner_only_and_serves_the_same_config(config: Path) -> None:
    first = load_config(config)
    cache = config.parent / "var" / CACHE_NAME
    held = json.loads(cache.read_text())
    assert held["sha256"] == first.sha256
    assert held["document"]["policies"]["files"]["daily"]["at"] == "01:30"
    assert cache.stat().st_mode & 0o077 == 0
    # Change the cached document behind the loader's back: a second load uses it (proof
    # the TOML was not parsed again), and builds the same config from it.
    held["document"]["policies"]["files"]["description"] = "from the cache"
    cache.write_text(json.dumps(held))
    second = load_config(config)
    assert second.policies["files"].description == "from the cache"
    assert second.sha256 == first.sha256


def test_a_changed_file_is_parsed_again_and_recached(config: Path) -> None:
    load_config(config)
    config.write_text(config.read_text().replace("01:30", "02:45"))
    cfg = load_config(config)
    assert cfg.policies["files"].schedules[0].cron == "45 2 * * *"
    held = json.loads((config.parent / "var" / CACHE_NAME).read_text())
    assert held["sha256"] == cfg.sha256


@pytest.mark.parametrize(
    "damage",
    [
        "not json at all",
        "[]",
        '{"version": 1, "sha256": "SHA", "document": []}',
        '{"version": 99, "sha256": "SHA", "document": {}}',
        '{"version": 1, "sha256": "SHA", "document": {"orchestrator": {"state_dir": "elsewhere"}}}',
    ],
)
def test_a_damaged_or_foreign_cache_is_ignored(config: Path, damage: str) -> None:
    expected = load_config(config)
    cache = config.parent / "var" / CACHE_NAME
    cache.write_text(damage.replace("SHA", expected.sha256))
    cfg = load_config(config)
    assert cfg.policies == expected.policies and cfg.settings == expected.settings


def test_no_state_dir_yet_means_no_cache_and_no_folder(tmp_path: Path) -> None:
    path = tmp_path / "policies.toml"
    path.write_text(textwrap.dedent(POLICIES))
    load_config(path)
    assert not (tmp_path / "var").exists()


def test_a_toml_error_is_still_reported_with_its_line(config: Path) -> None:
    load_config(config)
    config.write_text(config.read_text() + "\n[policies.files]\n")
    with pytest.raises(ConfigError) as err:
        load_config(config)
    assert "line" in str(err.value.problems) or "defined twice" in str(err.value.problems)
