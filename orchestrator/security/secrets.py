"""Resolve `secret:NAME` references; the value never appears in an error or a log.

Order (design section 10): the environment variable ORCHESTRATOR_SECRET_<NAME>,
then the local store under `state_dir/secrets/`. Until the encrypted store lands
(audit and security issue), the store is one 0600 file per secret; a file that
others could read is refused rather than used.
"""

from __future__ import annotations

import os
import re
import secrets as _random
import stat
from pathlib import Path

from orchestrator.errors import SecretError

PREFIX = "secret:"
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def env_name(name: str) -> str:
    return "ORCHESTRATOR_SECRET_" + re.sub(r"[-.]", "_", name).upper()


def secret_name(reference: str) -> str:
    if not reference.startswith(PREFIX) or not _NAME.match(reference[len(PREFIX) :]):
        raise SecretError("a secret must be a reference like 'secret:NAME'")
    return reference[len(PREFIX) :]


class SecretStore:
    """The file-backed store of the demo and of single-host installs."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "secrets"

    def resolve(self, reference: str) -> str:
        name = secret_name(reference)
        value = os.environ.get(env_name(name))
        if value:
            return value
        path = self.dir / name
        if not path.exists():
            raise SecretError(
                f"secret '{name}' is not set: export {env_name(name)} "
                f"or run 'orchestrator secrets set {name}'"
            )
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SecretError(
                f"secret file {path} is readable by others (mode {stat.S_IMODE(mode):o}); "
                "run 'chmod 600' on it"
            )
        value = path.read_text().rstrip("\n")
        if not value:
            raise SecretError(f"secret '{name}' is empty in {path}")
        return value

    def has(self, reference: str) -> bool:
        name = secret_name(reference)
        return bool(os.environ.get(env_name(name))) or (self.dir / name).exists()

    def set(self, name: str, value: str) -> Path:
        """Write atomically with mode 0600 from the start (never briefly world-readable)."""
        secret_name(PREFIX + name)
        if not value:
            raise SecretError(f"secret '{name}': refusing to store an empty value")
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.dir / name
        tmp = self.dir / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(value + "\n")
        os.replace(tmp, path)
        return path

    def names(self) -> list[str]:
        if not self.dir.is_dir():
            return []
        return sorted(p.name for p in self.dir.iterdir() if not p.name.startswith("."))

    def generate(self, name: str) -> Path:
        return self.set(name, _random.token_urlsafe(32))
