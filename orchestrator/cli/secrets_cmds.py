"""`secrets set` and `secrets list`: the values behind secret:NAME."""

from __future__ import annotations

import sys

import click

from orchestrator.cli.common import Obj


@click.group()
def secrets() -> None:
    """Repository passwords and credentials (referenced as secret:NAME)."""


@secrets.command("set")
@click.argument("name")
@click.option("--generate", is_flag=True, help="Store a new random value instead of reading one.")
@click.pass_obj
def secrets_set(obj: Obj, name: str, generate: bool) -> None:
    """Store secret NAME, read from stdin (or a hidden prompt), never from argv."""
    from orchestrator.security.secrets import PREFIX, SecretStore, secret_name

    secret_name(PREFIX + name)  # a bad name is refused before the value is asked for
    store = SecretStore(obj.config.settings.state_dir)
    if generate:
        path = store.generate(name)
    else:
        value = (
            click.prompt(f"value of {name}", hide_input=True, confirmation_prompt=True)
            if sys.stdin.isatty()
            else sys.stdin.readline().rstrip("\n")
        )
        path = store.set(name, value)
    obj.emit(
        "secrets.set", {"name": name, "path": path}, f"secret '{name}' stored in {path} (mode 0600)"
    )


@secrets.command("list")
@click.pass_obj
def secrets_list(obj: Obj) -> None:
    """Names of the stored secrets (never their values)."""
    from orchestrator.security.secrets import SecretStore

    names = SecretStore(obj.config.settings.state_dir).names()
    obj.emit("secrets.list", {"names": names}, "\n".join(names) or "no secrets stored")
