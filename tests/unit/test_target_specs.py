"""Remote target settings: `connect_timeout`, and how restic is told to reach each kind.

Pure: builds specs and targets, opens no connection (paramiko and boto3 stay unimported).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import ConfigError, SecretError
from orchestrator.policies.loader import parse_config
from orchestrator.policies.model import S3TargetSpec, SftpTargetSpec
from orchestrator.targets import open_target

pytestmark = pytest.mark.unit


def _config(target: dict[str, Any]) -> Any:
    raw = {
        "targets": {"t": {"password": "secret:pw", **target}},
        "policies": {"p": {"importance": "normal", "sources": ["/data"], "targets": ["t"]}},
    }
    return parse_config(raw, Path("/etc/orchestrator/policies.toml"))


SFTP = {"kind": "sftp", "host": "backup.example.net", "user": "backup", "path": "/srv/r"}
S3 = {"kind": "s3", "bucket": "acme-backups"}


@pytest.mark.parametrize("base", [SFTP, S3])
def test_connect_timeout_accepts_durations_and_defaults_to_30s(base: dict[str, Any]) -> None:
    assert _config(base).targets["t"].connect_timeout == 30
    assert _config({**base, "connect_timeout": "1m"}).targets["t"].connect_timeout == 60
    assert _config({**base, "connect_timeout": 5}).targets["t"].connect_timeout == 5


@pytest.mark.parametrize("base", [SFTP, S3])
def test_connect_timeout_must_be_positive(base: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as err:
        _config({**base, "connect_timeout": 0})
    assert "targets.t.connect_timeout: must be longer than zero" in err.value.message


def test_local_target_has_no_connect_timeout() -> None:
    with pytest.raises(ConfigError) as err:
        _config({"kind": "local", "path": "r", "connect_timeout": 5})
    assert "unknown key 'connect_timeout'" in err.value.message


def test_sftp_repository_uses_strict_ssh_with_the_same_key_and_known_hosts() -> None:
    spec = SftpTargetSpec(
        name="nas",
        kind="sftp",
        password="secret:pw",
        host="backup.example.net",
        port=2222,
        user="backup",
        path="/srv/restic/web",
        identity_file=Path("/keys/id_ed25519"),
        known_hosts=Path("/keys/known_hosts"),
        connect_timeout=9,
    )
    repo = open_target(spec).repository("pw")
    assert repo.url == "sftp:backup@backup.example.net:/srv/restic/web"
    (option,) = repo.options
    assert option.startswith("sftp.command=ssh -p 2222 -i /keys/id_ed25519 ")
    for part in (
        "-o UserKnownHostsFile=/keys/known_hosts",
        "-o StrictHostKeyChecking=yes",
        "-o BatchMode=yes",
        "-o ConnectTimeout=9",
        "backup@backup.example.net -s sftp",
    ):
        assert part in option
    assert "pw" not in option


def test_sftp_paths_with_spaces_are_quoted_for_restic() -> None:
    spec = SftpTargetSpec(
        name="nas", kind="sftp", password="", host="h", path="/r", identity_file=Path("/a b/k")
    )
    (option,) = open_target(spec).repository("pw").options
    assert option.startswith('"sftp.command=ssh -p 22 -i ""/a b/k"" ')  # CSV, as restic's -o


def test_s3_urls_credentials_in_env_and_path_style_for_custom_endpoints() -> None:
    custom = S3TargetSpec(
        name="off",
        kind="s3",
        password="secret:pw",
        endpoint="https://s3.example.net/",
        bucket="acme",
        prefix="/web/",
        region="eu-west-1",
        credentials="secret:s3",
    )
    repo = open_target(custom, {"secret:s3": "AKIAID:sec/ret"}.__getitem__).repository("pw")
    assert repo.url == "s3:https://s3.example.net/acme/web"
    assert repo.options == ("s3.bucket-lookup=path", "s3.region=eu-west-1")
    assert dict(repo.env) == {"AWS_ACCESS_KEY_ID": "AKIAID", "AWS_SECRET_ACCESS_KEY": "sec/ret"}
    aws = S3TargetSpec(name="aws", kind="s3", password="secret:pw", bucket="acme")
    repo = open_target(aws).repository("pw")
    assert (repo.url, repo.options, dict(repo.env)) == ("s3:s3.amazonaws.com/acme", (), {})


def test_heavy_libraries_are_imported_lazily() -> None:
    """paramiko and boto3 load only when a connection is made (`--help` stays fast)."""
    code = (
        "import sys, orchestrator.cli, orchestrator.targets.sftp, orchestrator.targets.s3;"
        "print(sorted({'paramiko', 'boto3', 'botocore'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_s3_credentials_secret_format_is_checked_without_echoing_it() -> None:
    spec = S3TargetSpec(name="off", kind="s3", password="", bucket="b", credentials="secret:s3")
    with pytest.raises(SecretError) as err:
        open_target(spec, lambda _ref: "no-colon-here").repository("pw")
    assert "ACCESS_KEY_ID:SECRET_ACCESS_KEY" in err.value.message
    assert "no-colon-here" not in err.value.message
