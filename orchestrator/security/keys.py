"""Where the secret store's key comes from: a systemd credential, a key file kept outside
`state_dir`, or a passphrase (scrypt). Never from `state_dir` itself, so that a copy of
`state_dir` alone reveals no secret."""

from __future__ import annotations

import base64
import binascii
import getpass
import os
import stat
import sys
from collections.abc import Mapping
from pathlib import Path

from orchestrator.errors import SecretError, UsageError

# `LoadCredential=orchestrator-secrets-key:/path` (or LoadCredentialEncrypted=) in the unit.
CREDENTIAL_NAME = "orchestrator-secrets-key"
PASSPHRASE_ENV = "ORCHESTRATOR_STORE_PASSPHRASE"
NEW_PASSPHRASE_ENV = "ORCHESTRATOR_STORE_NEW_PASSPHRASE"
# scrypt's cost N for new passphrase seals (a power of two); only tests should lower it.
SCRYPT_N_ENV = "ORCHESTRATOR_STORE_SCRYPT_N"
MIN_PASSPHRASE = 8


def default_key_file(config_path: Path) -> Path:
    """`keys/secrets.key` beside policies.toml (`keys/NAME.secrets.key` beside NAME.toml):
    one key per configuration, so two configurations, even in one folder, never share,
    or rotate, each other's key; outside the default `state_dir`, and found by whoever
    finds the configuration."""
    stem = config_path.stem
    return (
        config_path.parent
        / "keys"
        / ("secrets.key" if stem == "policies" else f"{stem}.secrets.key")
    )


def earlier_default(euid: int, home: str | None, xdg_config_home: str | None) -> Path:
    """The default of versions before 2026-12: root's /etc/orchestrator/secrets.key,
    anyone else's XDG config directory."""
    if euid == 0:
        return Path("/etc/orchestrator/secrets.key")
    if xdg_config_home and Path(xdg_config_home).is_absolute():
        return Path(xdg_config_home) / "orchestrator" / "secrets.key"
    return Path(home or "~").expanduser() / ".config" / "orchestrator" / "secrets.key"


def key_file_for(config_path: Path, store: Path, earlier: Path | None = None) -> Path:
    """The default key file of this configuration. A store sealed by an earlier version
    under its default key keeps that key (an upgrade must not lose the secrets): when
    the store exists, this configuration's key file does not, and the earlier one does."""
    new = default_key_file(config_path)
    rotating = new.with_name(new.name + ".new")  # a rotation onto it a crash interrupted
    if new.exists() or rotating.exists() or not store.exists():
        return new
    if earlier is None:
        env = os.environ
        earlier = earlier_default(os.geteuid(), env.get("HOME"), env.get("XDG_CONFIG_HOME"))
    return earlier if earlier.is_file() else new


def shared_earlier_default(key_file: Path, config_path: Path) -> Path | None:
    """The configuration's own key file when `key_file` is the earlier versions' default,
    which every configuration of the user shared: rotating must move off it, never
    overwrite it under the other stores still sealed with it."""
    env = os.environ
    earlier = earlier_default(os.geteuid(), env.get("HOME"), env.get("XDG_CONFIG_HOME"))
    own = default_key_file(config_path)
    return own if key_file == earlier and own != earlier else None


def credential_file(environ: Mapping[str, str]) -> Path | None:
    directory = environ.get("CREDENTIALS_DIRECTORY")
    return Path(directory) / CREDENTIAL_NAME if directory else None


def parse_key(data: bytes) -> bytes | None:
    """A 256-bit key given as 32 raw bytes, 64 hex digits or base64 (what we write)."""
    if len(data) == 32:
        return data
    text = data.strip()
    for decode in (bytes.fromhex, lambda t: base64.b64decode(t, validate=True)):
        try:
            key = decode(text.decode("ascii"))  # type: ignore[operator]
        except (ValueError, UnicodeDecodeError, binascii.Error):
            continue
        if len(key) == 32:
            return key
    return None


def encode_key(key: bytes) -> bytes:
    return base64.b64encode(key) + b"\n"


def read_key(path: Path, private: bool = True) -> bytes:
    """The key in `path`; a key file others could read is refused (a credential is not
    checked: systemd owns its mode)."""
    try:
        mode = path.stat().st_mode
        if private and mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SecretError(
                f"key file {path} is readable by others (mode {stat.S_IMODE(mode):o}); "
                "run 'chmod 600' on it"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise SecretError(f"cannot read the key in {path}: {exc.strerror or exc}") from None
    key = parse_key(data)
    if key is None:
        raise SecretError(
            f"{path} does not hold a 256-bit key (32 raw bytes, 64 hex digits or base64)"
        )
    return key


def passphrase(env_name: str, what: str, new: bool = False) -> str:
    """From `env_name`, else a hidden prompt on a terminal; never from argv. A `new` one is
    asked twice and must be long enough."""
    value = os.environ.get(env_name)
    if value is None:
        if not sys.stdin.isatty():
            raise SecretError(f"{what}: set {env_name} or run this from a terminal")
        value = getpass.getpass(f"{what}: ")
        if new and getpass.getpass(f"{what} (again): ") != value:
            raise UsageError(f"{what}: the two entries differ")
    if not value or (new and len(value) < MIN_PASSPHRASE):
        raise UsageError(f"{what}: at least {MIN_PASSPHRASE} characters, please")
    return value


def scrypt_n(default: int) -> int:
    text = os.environ.get(SCRYPT_N_ENV)
    if not text:
        return default
    n = int(text) if text.isdigit() else 0
    if n < 2 or n & (n - 1) or n > 2**20:
        raise UsageError(f"{SCRYPT_N_ENV}={text}: a power of two from 2 to 1048576")
    return n
