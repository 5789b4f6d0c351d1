"""Resolve `secret:NAME` references; the value never appears in an error or a log.

Order (design section 10): the environment variable ORCHESTRATOR_SECRET_<NAME>,
then the local store under `state_dir/secrets/`. Until the encrypted store lands
(audit and security issue), the store is one 0600 file per secret; a file that
others could read is refused rather than used.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets as _random
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from orchestrator.errors import SecretError

PREFIX = "secret:"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
NAME_RULE = "starts with a letter or digit, holds only A-Z a-z 0-9 _ . - and no '..'"


def valid_name(name: str) -> bool:
    """A secret's name is a file name in the store: never '.', '..' or a path."""
    return bool(_NAME.fullmatch(name)) and ".." not in name


def env_name(name: str) -> str:
    return "ORCHESTRATOR_SECRET_" + re.sub(r"[-.]", "_", name).upper()


def secret_name(reference: str) -> str:
    if not reference.startswith(PREFIX):
        raise SecretError("a secret must be a reference like 'secret:NAME'")
    name = reference[len(PREFIX) :]
    if not valid_name(name):
        raise SecretError(f"secret name '{name}' is not valid: a name {NAME_RULE}")
    return name


class SecretStore:
    """The file-backed store of the demo and of single-host installs."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "secrets"
        # audit log (issue 16): told (name, "env" | "store") after each use; never the value
        self.on_use: Callable[[str, str], None] | None = None

    def resolve(self, reference: str) -> str:
        name = secret_name(reference)
        value = os.environ.get(env_name(name))
        if value:
            if self.on_use:  # audit log (issue 16)
                self.on_use(name, "env")
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
        try:
            value = path.read_text().rstrip("\n")
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise SecretError(f"secret '{name}': cannot read {path}: {why}") from None
        if not value:
            raise SecretError(f"secret '{name}' is empty in {path}")
        if self.on_use:  # audit log (issue 16)
            self.on_use(name, "store")
        return value

    def has(self, reference: str) -> bool:
        name = secret_name(reference)
        return bool(os.environ.get(env_name(name))) or (self.dir / name).exists()

    def set(self, name: str, value: str) -> Path:
        """Write atomically with mode 0600 from the start (never briefly world-readable);
        the temporary file holding the value is removed whatever fails."""
        secret_name(PREFIX + name)
        if not value:
            raise SecretError(f"secret '{name}': refusing to store an empty value")
        path = self.dir / name
        tmp: str | None = None
        try:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.dir)
            with os.fdopen(fd, "w") as fh:  # mkstemp creates it 0600
                fh.write(value + "\n")
            os.replace(tmp, path)
            tmp = None
        except OSError as exc:
            why = exc.strerror or str(exc)
            raise SecretError(f"secret '{name}': cannot store it in {self.dir}: {why}") from None
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        return path

    def names(self) -> list[str]:
        if not self.dir.is_dir():
            return []
        return sorted(p.name for p in self.dir.iterdir() if not p.name.startswith("."))

    def generate(self, name: str) -> Path:
        return self.set(name, _random.token_urlsafe(32))
