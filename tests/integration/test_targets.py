"""One behaviour suite for every target kind: local disk, SFTP (a real sshd on loopback)
and S3 (a real moto server on loopback).

The same end-to-end test backs up at three levels through the installed command,
restores and compares bytes, then checks the storage listings against the SHA-256
names restic gives its files. The faults (wrong password, unknown or changed host key,
refused connection, a silent endpoint, wrong S3 credentials, a missing bucket) must each
give one clear sentence naming the target, the documented exit code, and no hang.
"""

from __future__ import annotations

import contextlib
import filecmp
import hashlib
import os
import shutil
import socket
import subprocess
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import servers
from conftest import ORCHESTRATOR, PASSWORD, Workspace, paused

pytestmark = pytest.mark.integration

BUCKET = "orc-targets"
S3_KEY_ID, S3_SECRET = "AKIATESTORCHESTRATOR", "orchestrator/s3+secret-Value0"
S3_SECRET_ENV = "ORCHESTRATOR_SECRET_S3_TEST"
KINDS = ("local", "sftp", "s3")
NAMES = {"local": "local", "sftp": "nas", "s3": "offsite"}

HEAD = """\
[orchestrator]
state_dir = "var"
timezone = "UTC"

"""

POLICY = """
[policies.files]
importance = "critical"
sources = ["data"]
targets = [{targets}]
daily = {{ at = "01:30", level = "incremental" }}
"""


@dataclass
class Remote:
    """One target of some kind, seeded with a copy of the template repository."""

    kind: str
    name: str
    block: str  # the [targets.NAME] table
    restic_args: list[str]  # --repo URL and -o options for a witness restic
    env: dict[str, str] = field(default_factory=dict)
    storage: Path | None = None  # where the files are, for kinds on this machine's disk

    def witness(self, *args: str, password: str = PASSWORD) -> subprocess.CompletedProcess[str]:
        """restic itself, independent of the orchestrator's code."""
        return subprocess.run(
            ["restic", *self.restic_args, "--no-cache", *args],
            env={**os.environ, **self.env, "RESTIC_PASSWORD": password},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def sftp_block(name: str, sshd: Any, path: str, **over: object) -> str:
    values: dict[str, object] = {
        "kind": "sftp",
        "host": "127.0.0.1",
        "port": sshd.port,
        "user": sshd.user,
        "path": path,
        "identity_file": str(sshd.client_key),
        "known_hosts": str(sshd.known_hosts),
        "password": "secret:repo-test",
        "connect_timeout": 5,
    }
    values.update(over)
    return toml_table(f"targets.{name}", values)


def s3_block(name: str, endpoint: str, bucket: str, prefix: str, **over: object) -> str:
    values: dict[str, object] = {
        "kind": "s3",
        "endpoint": endpoint,
        "bucket": bucket,
        "prefix": prefix,
        "credentials": "secret:s3-test",
        "password": "secret:repo-test",
        "connect_timeout": 5,
    }
    values.update(over)
    return toml_table(f"targets.{name}", values)


def toml_table(header: str, values: dict[str, object]) -> str:
    lines = [f"[{header}]"]
    for key, value in values.items():
        lines.append(f"{key} = {value}" if isinstance(value, int) else f'{key} = "{value}"')
    return "\n".join(lines) + "\n"


def write_config(ws: Workspace, *blocks: str, targets: tuple[str, ...]) -> None:
    listed = ", ".join(f'"{t}"' for t in targets)
    ws.config.write_text(HEAD + "\n".join(blocks) + textwrap.dedent(POLICY.format(targets=listed)))


def upload_tree(client: Any, root: Path, bucket: str, prefix: str) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(root).as_posix()}")


@pytest.fixture(scope="module")
def bucket(s3_server: Any) -> str:
    client = servers.s3_client(s3_server.endpoint)
    client.create_bucket(Bucket=BUCKET)
    return BUCKET


@pytest.fixture(params=KINDS)
def remote(
    request: pytest.FixtureRequest, workspace: Workspace, template_repo: Path
) -> Iterator[Remote]:
    """A fresh repository (a copy of the template) on a target of each kind, and a
    policies.toml backing up `data` to it."""
    kind = request.param
    name = NAMES[kind]
    if kind == "local":
        rem = Remote(
            kind,
            name,
            toml_table(
                f"targets.{name}",
                {"kind": "local", "path": "repos/local", "password": "secret:repo-test"},
            ),
            ["--repo", str(workspace.repo)],
            storage=workspace.repo,
        )
    elif kind == "sftp":
        sshd = request.getfixturevalue("sshd")
        path = sshd.root / f"repo-{uuid.uuid4().hex[:8]}"
        shutil.copytree(template_repo, path)
        ssh = (
            f"ssh -p {sshd.port} -i {sshd.client_key} -o IdentitiesOnly=yes "
            f"-o UserKnownHostsFile={sshd.known_hosts} -o StrictHostKeyChecking=yes "
            f"-o BatchMode=yes {sshd.user}@127.0.0.1 -s sftp"
        )
        rem = Remote(
            kind,
            name,
            sftp_block(name, sshd, str(path)),
            ["--repo", f"sftp:{sshd.user}@127.0.0.1:{path}", "-o", f"sftp.command={ssh}"],
            storage=path,
        )
    else:
        server = request.getfixturevalue("s3_server")
        bkt = request.getfixturevalue("bucket")
        prefix = f"repo-{uuid.uuid4().hex[:8]}"
        upload_tree(servers.s3_client(server.endpoint), template_repo, bkt, prefix)
        rem = Remote(
            kind,
            name,
            s3_block(name, server.endpoint, bkt, prefix),
            ["--repo", f"s3:{server.endpoint}/{bkt}/{prefix}"],
            env={"AWS_ACCESS_KEY_ID": S3_KEY_ID, "AWS_SECRET_ACCESS_KEY": S3_SECRET},
        )
        workspace.env[S3_SECRET_ENV] = f"{S3_KEY_ID}:{S3_SECRET}"
    write_config(workspace, rem.block, targets=(name,))
    yield rem


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert lines, "no message on stderr"
    return lines[-1]


def target_of(spec_name: str, ws: Workspace) -> Any:
    """The product's Target for `spec_name`, built from the workspace's policies.toml."""
    from orchestrator.policies.loader import load_config
    from orchestrator.security.secrets import SecretStore
    from orchestrator.targets import open_target

    config = load_config(ws.config)
    store = SecretStore.of(config.settings)
    saved = {k: os.environ.get(k) for k in ws.env if k.startswith("ORCHESTRATOR_SECRET_")}
    os.environ.update({k: ws.env[k] for k in saved})
    try:
        return open_target(config.targets[spec_name], store.resolve), saved
    except BaseException:
        restore_env(saved)
        raise


def restore_env(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


# --------------------------------------------------------------------------- behaviour


def test_three_levels_restore_and_listing(
    remote: Remote, workspace: Workspace, make_file: Callable[[Path, int], Path]
) -> None:
    ws = workspace
    ws.orc("backup", "files", "--level", "full")
    (ws.data / "a.txt").write_text("alpha, changed\n")
    make_file(ws.data / "big.bin", 3 << 20)
    ws.orc("backup", "files", "--level", "incremental")
    (ws.data / "sub" / "c.txt").write_text("gamma\n")
    ws.orc("backup", "files", "--level", "differential")

    listing = ws.orc_json("snapshots")["targets"]
    assert [t["target"] for t in listing] == [remote.name]
    assert [s["level"] for s in listing[0]["snapshots"]] == ["full", "incremental", "differential"]

    # restic itself sees the same three snapshots on the target.
    out = remote.witness("snapshots", "--json")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count('"level:') == 3

    dest = ws.root / "restored"
    ws.orc("restore", "files", "--to", str(dest))
    restored = next(p for p in dest.rglob("data") if p.is_dir() and (p / "a.txt").exists())
    cmp = filecmp.dircmp(ws.data, restored)
    assert not cmp.left_only and not cmp.right_only and not cmp.diff_files
    for rel in ("a.txt", "big.bin", "sub/b.bin", "sub/c.txt"):
        assert (restored / rel).read_bytes() == (ws.data / rel).read_bytes(), rel

    # Storage listings: every content-addressed file is named by the SHA-256 of its bytes,
    # sizes agree, and (where the storage is on this disk) nothing is missing.
    target, saved = target_of(remote.name, ws)
    try:
        files = list(target.list_files())
        assert {f.path.split("/")[0] for f in files} == {"data", "index", "snapshots", "keys"}
        assert sum(f.path.startswith("snapshots/") for f in files) == 3
        for f in files:
            digest, size = hashlib.sha256(), 0
            with target.open_file(f.path) as fh:
                while chunk := fh.read(1 << 16):
                    digest.update(chunk)
                    size += len(chunk)
            assert digest.hexdigest() == f.path.rsplit("/", 1)[1], f.path
            assert size == f.size, f.path
        if remote.storage is not None:
            on_disk = {
                p.relative_to(remote.storage).as_posix()
                for folder in ("data", "index", "snapshots", "keys")
                for p in (remote.storage / folder).rglob("*")
                if p.is_file()
            }
            assert {f.path for f in files} == on_disk
        with pytest.raises(FileNotFoundError), target.open_file("data/00/" + "0" * 64) as fh:
            fh.read(1)
    finally:
        getattr(target, "close", lambda: None)()
        restore_env(saved)
    assert remote.witness("check").returncode == 0


def test_wrong_password_names_the_target(remote: Remote, workspace: Workspace) -> None:
    workspace.env["ORCHESTRATOR_SECRET_REPO_TEST"] = "not the password"
    result = workspace.orc("backup", "files", check=1, timeout=120)
    line = one_line(result.stderr)
    assert f"files@{remote.name}" in line
    assert "wrong repository password" in line


def test_secrets_never_reach_output(remote: Remote, workspace: Workspace) -> None:
    """-vv logs every restic command line: neither the password nor S3 keys appear."""
    result = workspace.orc("-vv", "backup", "files")
    for secret in (PASSWORD, S3_SECRET):
        assert secret not in result.stdout + result.stderr


# A stand-in for restic that does what a careless restic error could do: echo the
# repository password (read from its pipe) and the S3 secret key (from its environment)
# in its error message, and in what it prints on stdout. The subject under test is our
# masking, not restic, so a script is the honest tool here.
LEAKY_RESTIC = """#!/bin/sh
if [ "$1" = version ]; then echo "restic 0.14.0 compiled with go1.19.8 on linux/amd64"; exit 0; fi
pw=$(cat "$RESTIC_PASSWORD_FILE")
if [ -n "$RESTIC_FROM_PASSWORD_FILE" ]; then pw="$pw' from '$(cat "$RESTIC_FROM_PASSWORD_FILE")"; fi
echo "{\\"password\\": \\"$pw\\", \\"key\\": \\"$AWS_SECRET_ACCESS_KEY\\"}"
echo "Fatal: cannot open repository: password '$pw', secret key '$AWS_SECRET_ACCESS_KEY'" >&2
exit 1
"""


def test_secrets_echoed_by_restic_are_masked(remote: Remote, workspace: Workspace) -> None:
    """item 14: when restic's own output carries the password or the S3 secret key, they
    reach neither our output (-vv log, error line, --json) nor the catalog: each shows
    as ***. With mask() a no-op this test fails (the secret is really in restic's text)."""
    leaky = workspace.root / "leaky-restic"
    leaky.write_text(LEAKY_RESTIC)
    leaky.chmod(0o755)
    text = workspace.config.read_text()
    workspace.config.write_text(
        text.replace("[orchestrator]\n", f'[orchestrator]\nrestic_binary = "{leaky}"\n', 1)
    )
    result = workspace.orc("-vv", "backup", "files", check=1, timeout=120)
    as_json = workspace.orc("--json", "backup", "files", check=1, timeout=120)
    catalog = b"".join(p.read_bytes() for p in workspace.catalog.parent.glob("catalog.sqlite*"))
    outputs = (result.stdout + result.stderr + as_json.stdout + as_json.stderr).encode()
    secrets = [PASSWORD] + ([S3_SECRET] if remote.kind == "s3" else [])
    for secret in secrets:
        assert secret.encode() not in outputs + catalog
    line = one_line(result.stderr)
    assert f"files@{remote.name}" in line
    assert "password '***'" in line  # restic's text did reach us, masked
    if remote.kind == "s3":
        assert "secret key '***'" in line


def test_every_runner_path_masks_what_restic_echoes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """item 14: `run`, `stream` (dump) and a copy's second password: restic's echo of any
    secret is masked in what the runner returns and logs, and in the error it raises."""
    from orchestrator.errors import ResticError
    from orchestrator.restic import commands
    from orchestrator.restic.runner import Repository, Runner

    leaky = tmp_path / "leaky-restic"
    leaky.write_text(LEAKY_RESTIC)
    leaky.chmod(0o755)
    runner = Runner(str(leaky))
    dest = Repository(
        str(tmp_path / "dest"), PASSWORD, "dest", env={"AWS_SECRET_ACCESS_KEY": S3_SECRET}
    )
    source = Repository(str(tmp_path / "src"), "the source's own password", "src")
    caplog.set_level("DEBUG", logger="orchestrator")
    ran = runner.run(dest, ["snapshots"])
    streamed = runner.stream(dest, ["dump", "latest", "/a"], lambda _chunk: None)
    with pytest.raises(ResticError) as copied:
        commands.copy(runner, dest, source, ["abc"])
    seen = [ran.stderr, streamed.stderr, copied.value.message, caplog.text]
    for secret in (PASSWORD, S3_SECRET, "the source's own password"):
        assert all(secret not in text for text in seen), secret
    assert "password '***'" in ran.stderr and "password '***'" in streamed.stderr
    assert "password '***' from '***'" in copied.value.message


def test_target_check_reports_each_fact(remote: Remote, workspace: Workspace) -> None:
    result = workspace.orc("target", "check")
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith(remote.name))
    assert "reachable" in line and "initialised" in line and "restic 0." in line
    if remote.kind == "sftp":
        assert "host key" in line and "SHA256:" in line and "free" in line
    if remote.kind == "s3":
        assert "bucket" in line and "writable" in line
    data = workspace.orc_json("target", "check", remote.name)
    (row,) = data["targets"]
    assert row["ok"] and row["initialised"] and row["restic_version"]


# --------------------------------------------------------------------------- SFTP faults


def _restic_children(pid: int) -> list[int]:
    """The restic processes `pid` runs now (its direct children named restic)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                with contextlib.suppress(OSError):
                    argv0 = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")[0]
                    if argv0.endswith(b"restic"):
                        found.append(int(child))
    return found


def _sftp_workspace(ws: Workspace, sshd: Any, template: Path, **over: object) -> Path:
    path = sshd.root / f"repo-{uuid.uuid4().hex[:8]}"
    shutil.copytree(template, path)
    write_config(ws, sftp_block("nas", sshd, str(path), **over), targets=("nas",))
    return path


def test_sftp_unknown_host_key_names_the_fingerprint(
    workspace: Workspace, sshd: Any, template_repo: Path
) -> None:
    empty = workspace.root / "known_hosts"
    empty.write_text("")
    _sftp_workspace(workspace, sshd, template_repo, known_hosts=str(empty))
    line = one_line(workspace.orc("backup", "files", check=1, timeout=60).stderr)
    assert "target 'nas'" in line
    assert sshd.host_fingerprint in line
    assert "never accepted automatically" in line
    assert empty.read_text() == ""  # nothing was added


def test_sftp_changed_host_key_is_refused(
    workspace: Workspace, sshd: Any, template_repo: Path
) -> None:
    other = workspace.root / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    pub = Path(f"{other}.pub").read_text().split()
    known = workspace.root / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {pub[0]} {pub[1]}\n")
    _sftp_workspace(workspace, sshd, template_repo, known_hosts=str(known))
    line = one_line(workspace.orc("backup", "files", check=1, timeout=60).stderr)
    assert "target 'nas'" in line and "CHANGED" in line
    assert sshd.host_fingerprint in line


def test_sftp_connection_refused_is_quick_and_clear(
    workspace: Workspace, sshd: Any, template_repo: Path
) -> None:
    _sftp_workspace(workspace, sshd, template_repo, port=servers.free_port())
    started = time.monotonic()
    line = one_line(workspace.orc("backup", "files", check=1, timeout=60).stderr)
    assert "target 'nas'" in line and "connection refused" in line
    assert time.monotonic() - started < 30


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (the kernel's backlog) but never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


def test_sftp_silent_server_times_out(
    workspace: Workspace, sshd: Any, template_repo: Path, silent_port: int
) -> None:
    _sftp_workspace(workspace, sshd, template_repo, port=silent_port, connect_timeout=2)
    line = one_line(workspace.orc("backup", "files", check=1, timeout=60).stderr)
    assert "target 'nas'" in line and "no answer within 2 s" in line


def test_one_target_down_others_succeed(
    workspace: Workspace, sshd: Any, template_repo: Path
) -> None:
    """local + sftp with sftp down: the local backup is made, exit 3, both outcomes shown."""
    down = sftp_block("nas", sshd, "/nonexistent", port=servers.free_port())
    local = toml_table(
        "targets.local", {"kind": "local", "path": "repos/local", "password": "secret:repo-test"}
    )
    write_config(workspace, local, down, targets=("local", "nas"))
    result = workspace.orc("backup", "files", check=3, timeout=120)
    rows = {ln.split()[1]: ln for ln in result.stdout.splitlines()[1:] if ln.startswith("files")}
    assert "success" in rows["local"] and "failed" in rows["nas"]
    assert "files@nas" in result.stderr and "connection refused" in result.stderr
    out = subprocess.run(
        ["restic", "--repo", str(workspace.repo), "--no-cache", "snapshots", "--json"],
        env={**os.environ, "RESTIC_PASSWORD": PASSWORD},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.count('"level:') == 1


# --------------------------------------------------------------------------- S3 faults


def _s3_workspace(ws: Workspace, endpoint: str, bucket: str, **over: object) -> None:
    ws.env[S3_SECRET_ENV] = f"{S3_KEY_ID}:{S3_SECRET}"
    write_config(
        ws,
        s3_block("offsite", endpoint, bucket, f"r-{uuid.uuid4().hex[:8]}", **over),
        targets=("offsite",),
    )


def test_s3_missing_bucket(workspace: Workspace, s3_server: Any) -> None:
    _s3_workspace(workspace, s3_server.endpoint, "no-such-bucket")
    line = one_line(workspace.orc("backup", "files", check=1, timeout=60).stderr)
    assert "target 'offsite'" in line and "bucket 'no-such-bucket' does not exist" in line
    names = [b["Name"] for b in servers.s3_client(s3_server.endpoint).list_buckets()["Buckets"]]
    assert "no-such-bucket" not in names  # restic did not create it behind our back


def test_s3_wrong_credentials(workspace: Workspace, s3_server: Any, bucket: str) -> None:
    import requests

    _s3_workspace(workspace, s3_server.endpoint, bucket)
    workspace.env[S3_SECRET_ENV] = "AKIAWRONGWRONGWRONG:not-the-secret"
    auth = f"{s3_server.endpoint}/moto-api/reset-auth"
    requests.post(auth, data=b"0", timeout=10).raise_for_status()  # moto checks keys now
    try:
        line = one_line(workspace.orc("backup", "files", check=1, timeout=60).stderr)
    finally:
        requests.post(auth, data=b"inf", timeout=10).raise_for_status()
    assert "target 'offsite'" in line and "credentials rejected" in line
    assert "not-the-secret" not in line


def test_s3_malformed_credentials_secret(workspace: Workspace, s3_server: Any, bucket: str) -> None:
    _s3_workspace(workspace, s3_server.endpoint, bucket)
    workspace.env[S3_SECRET_ENV] = "only-one-part"
    result = workspace.orc("backup", "files", check=None, timeout=60)
    assert result.returncode in (1, 2)
    line = one_line(result.stderr)
    assert "offsite" in line and "ACCESS_KEY_ID:SECRET_ACCESS_KEY" in line
    assert "only-one-part" not in result.stderr


def test_s3_silent_endpoint_times_out(workspace: Workspace, silent_port: int, bucket: str) -> None:
    _s3_workspace(workspace, f"http://127.0.0.1:{silent_port}", bucket, connect_timeout=2)
    started = time.monotonic()
    line = one_line(workspace.orc("backup", "files", check=1, timeout=90).stderr)
    assert "target 'offsite'" in line and "no answer within 2 s" in line
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("kind", ["sftp", "s3"])
def test_target_check_before_first_backup(
    kind: str, workspace: Workspace, request: pytest.FixtureRequest
) -> None:
    """A new, empty location is fine (restic creates the repository on the first backup)."""
    if kind == "sftp":
        sshd = request.getfixturevalue("sshd")
        block = sftp_block("nas", sshd, str(sshd.root / f"new-{uuid.uuid4().hex[:8]}"))
    else:
        server = request.getfixturevalue("s3_server")
        bkt = request.getfixturevalue("bucket")
        workspace.env[S3_SECRET_ENV] = f"{S3_KEY_ID}:{S3_SECRET}"
        block = s3_block("offsite", server.endpoint, bkt, f"new-{uuid.uuid4().hex[:8]}")
    write_config(workspace, block, targets=(NAMES[kind],))
    out = workspace.orc("target", "check").stdout
    assert "ok" in out and "repository not initialised yet" in out


def test_sftp_server_dies_mid_backup(
    workspace: Workspace,
    sshd: Any,
    template_repo: Path,
    make_file: Callable[[Path, int], Path],
) -> None:
    """The SSH session is killed while restic uploads: a clear failure naming the target,
    no hang, and the repository still passes `restic check` afterwards."""
    path = _sftp_workspace(workspace, sshd, template_repo)
    for i in range(3):
        make_file(workspace.data / f"big{i}.bin", 48 << 20)
    proc = subprocess.Popen(
        [*ORCHESTRATOR, "--config", str(workspace.config), "backup", "files"],
        env=workspace.env,
        cwd=workspace.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any((path / "data").glob("*/*")):
        time.sleep(0.05)  # wait until restic has started writing pack files
    # Issue 14 item 6: restic is held still while every SSH process serving it dies, so it
    # cannot finish its upload first: the moment is certain, and the run must fail.
    restic_pids = _restic_children(proc.pid)
    assert restic_pids, "restic was not running when its pack files appeared"
    with contextlib.ExitStack() as stack:
        for pid in restic_pids:
            stack.enter_context(paused(pid))
        sshd.kill_sessions()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, out + err
    line = one_line(err)
    assert "files@nas" in line and "failed" in line
    # restic could not remove its lock over the dead connection; its process is gone, so
    # plain `restic unlock` (stale locks only) clears it. The data must be intact.
    env = {**os.environ, "RESTIC_PASSWORD": PASSWORD}
    for args in (["unlock"], ["check"]):
        witness = subprocess.run(
            ["restic", "--repo", str(path), "--no-cache", *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert witness.returncode == 0, witness.stdout + witness.stderr
