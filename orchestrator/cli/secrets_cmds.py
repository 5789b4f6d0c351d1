"""`secrets set/list/remove/rotate/migrate`: the values behind secret:NAME, sealed at rest."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import click

from orchestrator.cli.common import Obj


def _store(obj: Obj) -> Any:
    from orchestrator.security.secrets import SecretStore

    return SecretStore.of(obj.config.settings)


@contextlib.contextmanager
def _audited(obj: Obj, what: str, **fields: Any) -> Iterator[dict[str, Any]]:
    """The action, then its audit record: 'success' (with what the body adds to the dict
    it is given) before the command reports, or 'failed' with the reason and re-raised."""
    from orchestrator.audit.sink import record_action
    from orchestrator.errors import OrchestratorError

    more: dict[str, Any] = {}
    try:
        yield more
    except OrchestratorError as exc:
        with contextlib.suppress(OrchestratorError):
            record_action(obj.config, what, "failed", **fields, error=exc.message)
        raise
    record_action(obj.config, what, "success", **fields, **more)


def _key_note(store: Any) -> None:
    """A new key file is the one thing the operator must copy off the machine."""
    if store.created_key is not None:
        click.echo(
            f"orchestrator: created the key file {store.created_key} (mode 0600): keep a copy "
            "off this machine; without it the secrets cannot be read",
            err=True,
        )


@click.group()
def secrets() -> None:
    """Repository passwords and credentials (referenced as secret:NAME)."""


@secrets.command("set")
@click.argument("name")
@click.option("--generate", is_flag=True, help="Store a new random value instead of reading one.")
@click.pass_obj
def secrets_set(obj: Obj, name: str, generate: bool) -> None:
    """Seal secret NAME, read from stdin (or a hidden prompt), never from argv."""
    from orchestrator.security.secrets import PREFIX, secret_name

    secret_name(PREFIX + name)  # a bad name is refused before the value is asked for
    store = _store(obj)
    if generate:
        with _audited(obj, "secret.set", secret=name, source="generated"):
            path = store.generate(name)
    else:
        value = (
            click.prompt(f"value of {name}", hide_input=True, confirmation_prompt=True)
            if sys.stdin.isatty()
            else sys.stdin.readline().rstrip("\n")
        )
        with _audited(obj, "secret.set", secret=name, source="stdin"):
            path = store.set(name, value)
    _key_note(store)
    obj.emit("secrets.set", {"name": name, "path": path}, f"secret '{name}' sealed in {path}")


@secrets.command("list")
@click.pass_obj
def secrets_list(obj: Obj) -> None:
    """Names of the stored secrets (never their values)."""
    names = _store(obj).names()
    obj.emit("secrets.list", {"names": names}, "\n".join(names) or "no secrets stored")


@secrets.command("remove")
@click.argument("name")
@click.pass_obj
def secrets_remove(obj: Obj, name: str) -> None:
    """Remove secret NAME from the store."""
    store = _store(obj)
    with _audited(obj, "secret.remove", secret=name):
        store.remove(name)
    obj.emit("secrets.remove", {"name": name}, f"secret '{name}' removed from {store.path}")


@secrets.command("rotate")
@click.option(
    "--passphrase",
    is_flag=True,
    help="Seal under a new passphrase ($ORCHESTRATOR_STORE_NEW_PASSPHRASE or a prompt) "
    "instead of a new key file.",
)
@click.pass_obj
def secrets_rotate(obj: Obj, passphrase: bool) -> None:
    """Re-seal every secret under a new key; the old key no longer opens the store."""
    from orchestrator.security.keys import shared_earlier_default

    store = _store(obj)
    to = shared_earlier_default(store.key_file, obj.config_path.resolve())
    new_key = "passphrase" if passphrase else f"key file {to or store.key_file}"
    with _audited(obj, "secrets.rotate", new_key=new_key, store=str(store.path)) as more:
        more["summary"] = done = store.rotate(passphrase, to)
    obj.emit("secrets.rotate", {"path": store.path, "done": done}, f"{store.path}: {done}")


@secrets.command("migrate")
@click.pass_obj
def secrets_migrate(obj: Obj) -> None:
    """Seal the plain files of state_dir/secrets/ (older versions), then remove them."""
    store = _store(obj)
    with _audited(obj, "secrets.migrate", store=str(store.path)) as more:
        more["secrets"] = names = store.migrate()
    _key_note(store)
    text = (
        f"sealed {len(names)} secret(s) in {store.path} and removed {store.plain_dir}: "
        + ", ".join(names)
        if names
        else f"nothing to migrate: no plain secret files in {store.plain_dir}"
    )
    obj.emit("secrets.migrate", {"names": names, "path": store.path}, text)
