"""Item 13: the systemd steps in the README work as written.

The unit's ExecStart is what the README's install command creates, its Documentation=
file is installed by the README too, the config it names is the one the README installs,
and that config's state_dir is the unit's StateDirectory under /var/lib."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import require

from orchestrator.policies.loader import load_config

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "packaging" / "orchestrator.service"


def _unit() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def _readme_service_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Running as a service", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```sh\n(.*?)```", section, re.S)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_item13_unit_and_readme_install_agree() -> None:
    unit = _unit()
    commands = _readme_service_commands()
    (venv,) = [c.split()[-1] for c in commands if c.startswith("python3 -m venv ")]
    assert f"{venv}/bin/pip install ." in commands
    # The console script pip creates in the venv is what ExecStart runs.
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "orchestrator" in scripts
    exec_start = unit["Service"]["ExecStart"].split()
    assert exec_start == [f"{venv}/bin/orchestrator", "daemon"]
    # Documentation= names a file the README installs.
    doc = unit["Unit"]["Documentation"].removeprefix("file://")
    assert f"install -D -m 0644 README.md {doc}" in commands
    # The config the unit reads is the one the README installs ...
    env = dict(e.split("=", 1) for e in unit["Service"]["Environment"].split())
    config = env["ORCHESTRATOR_CONFIG"]
    installed = [c for c in commands if c.startswith("install ") and c.endswith(" " + config)]
    (install_config,) = installed
    shipped = ROOT / install_config.split()[-2]
    # ... and its state_dir is the unit's StateDirectory, under /var/lib.
    state_dir = load_config(shipped).settings.state_dir
    assert state_dir == Path("/var/lib") / unit["Service"]["StateDirectory"]
    assert state_dir == Path("/var/lib/orchestrator")
    assert unit["Service"]["StateDirectoryMode"] == "0700"
    assert f"install -m 0644 {UNIT.relative_to(ROOT)} /etc/systemd/system/" in commands


def test_item13_unit_verifies_with_the_install_prefix(tmp_path: Path) -> None:
    """systemd itself accepts the unit once ExecStart exists: this test's own virtual
    environment stands in for the README's (same `pip install` into a venv)."""
    analyze = shutil.which("systemd-analyze")
    require(analyze is not None, "systemd-analyze (scripts/setup.sh installs systemd)")
    venv = next(c.split()[-1] for c in _readme_service_commands() if "-m venv" in c)
    assert Path(sys.prefix, "bin", "orchestrator").exists()
    unit = tmp_path / "orchestrator.service"
    unit.write_text(UNIT.read_text().replace(venv, sys.prefix))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # The shipped unit as it is names the README's path, which this machine need not have.
    assert f"ExecStart={venv}/bin/orchestrator daemon" in UNIT.read_text()
