"""Resolve `secret:NAME` references; the value never appears in an error or a log.

Order (design section 10): the environment variable ORCHESTRATOR_SECRET_<NAME>, then
the sealed store `state_dir/secrets.sealed` (AES-256-GCM, see sealing.py; its key from
keys.py, never from `state_dir`). The 0600 plain files of earlier versions under
`state_dir/secrets/` are sealed once by `secrets migrate` and refused until then.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets as _random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import ExitCode, SecretError
from orchestrator.security import keys
from orchestrator.security.files import destroy, sync_dir, write_private

if TYPE_CHECKING:
    from orchestrator.policies.model import Settings
    from orchestrator.security.sealing import Header

PREFIX = "secret:"
STORE_FILE = "secrets.sealed"
PLAIN_DIR = "secrets"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
NAME_RULE = "starts with a letter or digit, holds only A-Z a-z 0-9 _ . - and no '..'"
# The audit log's signing key (audit/signing.py): sealed here by the audit trail alone.
# No `secret:` reference, `secrets set/remove` or plain file of `migrate` may name it:
# else a repository password could be the key, or someone who can write state_dir
# could choose it.
AUDIT_KEY_NAME = "audit-signing-key"


class NoStoreYet(SecretError):
    """Nothing is sealed yet and no key exists for a store: made only when asked."""


class StoreDamagedError(SecretError):
    """The sealed file was altered, cut short or cannot be read: exit 1, not a usage error."""

    exit_code = ExitCode.FAILURE


def valid_name(name: str) -> bool:
    """Never '.', '..' or a path: names were file names in the plain store of old."""
    return bool(_NAME.fullmatch(name)) and ".." not in name


def env_name(name: str) -> str:
    return "ORCHESTRATOR_SECRET_" + re.sub(r"[-.]", "_", name).upper()


def secret_name(reference: str) -> str:
    if not reference.startswith(PREFIX):
        raise SecretError("a secret must be a reference like 'secret:NAME'")
    name = reference[len(PREFIX) :]
    if not valid_name(name):
        raise SecretError(f"secret name '{name}' is not valid: a name {NAME_RULE}")
    if name == AUDIT_KEY_NAME:
        raise SecretError(
            f"secret '{name}' is the audit log's signing key (made by 'orchestrator audit "
            "init'): it is not set, removed or used as a password"
        )
    return name


@dataclass
class _Seal:
    """The key the store is (or will be) sealed with, and where it came from."""

    key: bytes
    kdf: str  # "key" | "scrypt"
    source: str  # for messages: a file name or "the passphrase"
    salt: bytes = b""
    n: int = 0


class SecretStore:
    """The sealed store of one `state_dir`; decrypted once per process, on first use."""

    def __init__(self, state_dir: Path, key_file: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / STORE_FILE
        self.plain_dir = state_dir / PLAIN_DIR
        self.key_file = key_file
        self.created_key: Path | None = None  # set when a write had to create the key file
        self._values: dict[str, str] | None = None
        self._seal: _Seal | None = None
        # audit log (issue 16): told (name, "env" | "store") after each use; never the value
        self.on_use: Callable[[str, str], None] | None = None

    @classmethod
    def of(cls, settings: Settings) -> SecretStore:
        """The store of a configuration. The loader always fills the key file; settings
        made in code without one get the loader's default (`keys/` beside the folder
        holding `state_dir`, which is the configuration's folder by default)."""
        key_file = settings.secrets_key_file
        if key_file is None:
            key_file = keys.default_key_file(settings.state_dir.parent / "policies.toml")
        return cls(settings.state_dir, key_file)

    # ------------------------------------------------------------------ reading

    def resolve(self, reference: str) -> str:
        name = secret_name(reference)
        value = os.environ.get(env_name(name))
        if value:
            if self.on_use:  # audit log (issue 16)
                self.on_use(name, "env")
            return value
        value = self._load().get(name)
        if not value:
            raise SecretError(
                f"secret '{name}' is not set: export {env_name(name)} "
                f"or run 'orchestrator secrets set {name}'"
            )
        if self.on_use:  # audit log (issue 16)
            self.on_use(name, "store")
        return value

    def peek(self, name: str) -> str | None:
        """The stored value of `name`, never from the environment (whoever runs the
        command must not choose the audit key), without telling `on_use`."""
        return self._load().get(name)

    def has(self, reference: str) -> bool:
        name = secret_name(reference)
        return bool(os.environ.get(env_name(name))) or name in self._load()

    def names(self) -> list[str]:
        return sorted(self._load())

    # ------------------------------------------------------------------ writing

    def set(self, name: str, value: str) -> Path:
        secret_name(PREFIX + name)
        if not value:
            raise SecretError(f"secret '{name}': refusing to store an empty value")
        with self._locked():
            values = dict(self._load(fresh=True))
            values[name] = value
            self._save(values, self._seal or self._new_seal())
        return self.path

    def setdefault(
        self, name: str, make: Callable[[], str], new_key_file: bool = True
    ) -> tuple[str, bool]:
        """The stored value of `name`, storing `make()` first when there is none (True);
        under the store's lock, so two processes never store two different values.
        `new_key_file=False`: rather than create the store's key file (the one file the
        operator must keep a copy of), raise NoStoreYet."""
        with self._locked():
            values = dict(self._load(fresh=True))
            if values.get(name):
                return values[name], False
            if self._seal is None and not new_key_file and not self._has_key_source():
                raise NoStoreYet(
                    f"no secret store yet ({self.path}) to seal '{name}' in, and no key "
                    "for one: 'orchestrator audit init' or 'secrets set' makes them"
                )
            values[name] = make()
            self._save(values, self._seal or self._new_seal())
            return values[name], True

    def _has_key_source(self) -> bool:
        """A new store would be sealed without creating a key file."""
        found = any(path != _pending(self.key_file) for path, _ in self._key_candidates())
        return found or os.environ.get(keys.PASSPHRASE_ENV) is not None

    def generate(self, name: str) -> Path:
        return self.set(name, _random.token_urlsafe(32))

    def remove(self, name: str) -> None:
        secret_name(PREFIX + name)
        with self._locked():
            values = dict(self._load(fresh=True))
            if name not in values:
                raise SecretError(f"secret '{name}' is not in the store {self.path}")
            del values[name]
            assert self._seal is not None  # a name was found, so the store was opened
            self._save(values, self._seal)

    def rotate(self, passphrase: bool, to: Path | None = None) -> str:
        """Seal everything under a new key file, or a new passphrase; the old key no longer
        opens the store and an old key file is overwritten, unless `to` names another
        key file to move to (the old one is shared with other stores: left to them).
        Returns what was done."""
        if to is not None and not passphrase:
            return self._rotate_to(to)
        with self._locked():
            values = self._load(fresh=True)
            old = self._seal
            if old is None:
                raise SecretError(f"no secret store at {self.path} yet: nothing to rotate")
            if passphrase:
                self._save(values, self._passphrase_seal(keys.NEW_PASSPHRASE_ENV))
                if to is None:
                    for path in (self.key_file, _pending(self.key_file)):
                        destroy(path)
                    done = f"sealed under the new passphrase; key file {self.key_file} removed"
                else:
                    done = (
                        f"sealed under the new passphrase; the earlier shared key file "
                        f"{self.key_file} is left for the other stores sealed with it"
                    )
            else:
                key = _new_key()
                write_private(_pending(self.key_file), keys.encode_key(key))
                self._save(values, _Seal(key, "key", str(self.key_file)))
                self._install_pending_key()
                done = f"sealed under a new key in {self.key_file} (the old one is overwritten)"
            if keys.credential_file(os.environ):
                done += f"; replace or remove the systemd credential {keys.CREDENTIAL_NAME}"
            return done

    def _rotate_to(self, to: Path) -> str:
        with self._locked():
            values = self._load(fresh=True)
            if self._seal is None:
                raise SecretError(f"no secret store at {self.path} yet: nothing to rotate")
            shared, self.key_file = self.key_file, to
            self._refuse_key_in_state_dir()
            key = _new_key()
            write_private(_pending(to), keys.encode_key(key))
            self._save(values, _Seal(key, "key", str(to)))
            self._install_pending_key()
            return (
                f"sealed under a new key in {to}; the earlier shared key file {shared} is "
                "left for the other stores sealed with it (remove it once none is)"
            )

    def migrate(self) -> list[str]:
        """Seal the plain files of earlier versions, then overwrite and remove them."""
        with self._locked():
            entries = sorted(self.plain_dir.iterdir()) if self.plain_dir.is_dir() else []
            if not entries:
                return []
            values = dict(self._load(fresh=True, refuse_plain=False))
            found = [p for p in entries if not p.name.startswith(".")]
            if any(p.name == AUDIT_KEY_NAME for p in found):
                raise SecretError(
                    f"{self.plain_dir / AUDIT_KEY_NAME} is not migrated: the audit log's "
                    "signing key is never taken from a plain file (it was planted, or "
                    "left by hand); remove it, then run 'orchestrator secrets migrate'"
                )
            for path in found:
                value = _read_plain(path)
                if values.get(path.name, value) != value:
                    raise SecretError(
                        f"secret '{path.name}' is in {self.path} and in {path} with different "
                        f"values: remove one of them, then run 'orchestrator secrets migrate'"
                    )
                values[path.name] = value
            self._save(values, self._seal or self._new_seal())
            for path in entries:  # hidden ones are temporary files of old failed writes
                destroy(path)
            self.plain_dir.rmdir()
            return [p.name for p in found]

    # ------------------------------------------------------------------ the sealed file

    def _load(self, fresh: bool = False, refuse_plain: bool = True) -> dict[str, str]:
        if refuse_plain:
            self._refuse_plain_files()
        if self._values is not None and not fresh:
            return self._values
        from orchestrator.security import sealing

        try:
            blob = self.path.read_bytes()
        except FileNotFoundError:
            self._values, self._seal = {}, None
            return self._values
        except OSError as exc:
            raise StoreDamagedError(
                f"secret store {self.path}: cannot read it: {exc.strerror or exc}"
            ) from None
        try:
            header = sealing.read_header(blob)[0]
            seal = self._existing_seal(header)
        except sealing.SealError as exc:
            raise StoreDamagedError(f"secret store {self.path}: {exc.reason}") from None
        try:
            plaintext = sealing.unseal(blob, seal.key)
        except sealing.SealError as exc:
            where = f"secret store {self.path}: {exc.reason}"
            if exc.wrong_key:
                raise SecretError(f"{where}; tried {seal.source}") from None
            raise StoreDamagedError(where + "; nothing was read from it") from None
        self._values, self._seal = _decode(plaintext, self.path), seal
        return self._values

    def _save(self, values: dict[str, str], seal: _Seal) -> None:
        from orchestrator.security import sealing

        plaintext = json.dumps({"secrets": values}, sort_keys=True).encode("utf-8")
        blob = sealing.seal(plaintext, seal.key, seal.kdf, seal.salt, seal.n)
        try:
            write_private(self.path, blob)
        except OSError as exc:
            raise SecretError(
                f"cannot write the secret store {self.path}: {exc.strerror or exc}"
            ) from None
        self._values, self._seal = values, seal

    def _existing_seal(self, header: Header) -> _Seal:
        """The key of an existing store: its passphrase, or the key source (systemd
        credential, key file, a key file left by an interrupted rotation) that matches."""
        from orchestrator.security import sealing

        if header.kdf == "scrypt":
            phrase = keys.passphrase(keys.PASSPHRASE_ENV, f"passphrase of {self.path}")
            key = sealing.derive(phrase, header.salt, header.n, header.r, header.p)
            return _Seal(key, "scrypt", "the passphrase", header.salt, header.n)
        tried: list[str] = []
        for path, private in self._key_candidates():
            key = keys.read_key(path, private)
            if sealing.key_id(key) == header.key_id:
                if path == _pending(self.key_file):
                    with contextlib.suppress(OSError):  # the key works from there meanwhile
                        self._install_pending_key()  # finish a rotation a crash interrupted
                return _Seal(key, "key", str(path))
            tried.append(str(path))
        if tried:
            raise SecretError(
                f"secret store {self.path}: the key does not open it (wrong key); "
                f"tried {' and '.join(tried)}"
            )
        raise SecretError(
            f"secret store {self.path} is sealed with a key that is nowhere to be found: "
            f"not in the systemd credential {keys.CREDENTIAL_NAME} nor in the key file "
            f"{self.key_file} (orchestrator.secrets_key_file): put your copy of it back"
        )

    def _new_seal(self) -> _Seal:
        """The key of a new store: a systemd credential, an existing key file, a passphrase
        in the environment, else a new key file (0600, outside state_dir)."""
        for path, private in self._key_candidates():
            if path != _pending(self.key_file):
                return _Seal(keys.read_key(path, private), "key", str(path))
        if os.environ.get(keys.PASSPHRASE_ENV) is not None:
            return self._passphrase_seal(keys.PASSPHRASE_ENV)
        key = _new_key()
        try:
            write_private(self.key_file, keys.encode_key(key))
        except OSError as exc:
            raise SecretError(
                f"cannot create the key file {self.key_file}: {exc.strerror or exc}; set "
                "orchestrator.secrets_key_file to a writable place outside state_dir"
            ) from None
        self.created_key = self.key_file
        return _Seal(key, "key", str(self.key_file))

    def _passphrase_seal(self, env: str) -> _Seal:
        from orchestrator.security import sealing

        phrase = keys.passphrase(env, f"new passphrase of {self.path}", new=True)
        salt, n, r, p = sealing.passphrase_params(keys.scrypt_n(sealing.SCRYPT_N))
        return _Seal(sealing.derive(phrase, salt, n, r, p), "scrypt", "the passphrase", salt, n)

    def _key_candidates(self) -> Iterator[tuple[Path, bool]]:
        self._refuse_key_in_state_dir()
        credential = keys.credential_file(os.environ)
        if credential is not None and credential.exists():
            yield credential, False
        for path in (self.key_file, _pending(self.key_file)):
            if path.exists():
                yield path, True

    def _install_pending_key(self) -> None:
        """The new key replaces the old key file, whose bytes are overwritten first."""
        pending = _pending(self.key_file)
        if self.key_file.is_file():
            size = self.key_file.stat().st_size
            with self.key_file.open("r+b") as fh:
                fh.write(b"\0" * size)
                os.fsync(fh.fileno())
        os.replace(pending, self.key_file)
        sync_dir(self.key_file.parent)

    def _refuse_key_in_state_dir(self) -> None:
        key, state = self.key_file.resolve(), self.state_dir.resolve()
        if key == state or state in key.parents:
            raise SecretError(
                f"the key file {self.key_file} is inside state_dir {self.state_dir}: a copy "
                "of state_dir would reveal every secret; set orchestrator.secrets_key_file "
                "to a place outside it"
            )

    def _refuse_plain_files(self) -> None:
        if self.plain_dir.is_dir() and (names := sorted(p.name for p in self.plain_dir.iterdir())):
            shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            raise SecretError(
                f"{self.plain_dir} holds secrets in plain files ({shown}): run "
                f"'orchestrator secrets migrate' to seal them into {self.path}"
            )

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time: two `secrets set` at once must not lose either. A file
        system error on the way (a key folder not writable, a full disk) is one line."""
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.state_dir / "secrets.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            raise SecretError(f"secret store {self.path}: {exc.strerror or exc}{where}") from None


def _pending(key_file: Path) -> Path:
    return key_file.with_name(key_file.name + ".new")


def _new_key() -> bytes:
    from orchestrator.security import sealing

    return sealing.new_key()


def _read_plain(path: Path) -> str:
    if not path.is_file() or path.is_symlink():
        raise SecretError(f"{path} is not a plain secret file: move it out of {path.parent}")
    if not valid_name(path.name):
        raise SecretError(f"{path}: '{path.name}' is not a valid secret name (a name {NAME_RULE})")
    try:
        value = path.read_text().rstrip("\n")
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise SecretError(f"cannot read {path}: {why}") from None
    if not value:
        raise SecretError(f"{path} is empty: remove it, then run 'orchestrator secrets migrate'")
    return value


def _decode(plaintext: bytes, path: Path) -> dict[str, str]:
    try:
        values = json.loads(plaintext)["secrets"]
        if isinstance(values, dict) and all(isinstance(v, str) for v in values.values()):
            return values
    except (ValueError, KeyError, TypeError):
        pass
    raise StoreDamagedError(f"secret store {path}: its content is not a table of secrets")
