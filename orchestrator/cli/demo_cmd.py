"""`demo`: the whole idea in under a minute."""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.cli.common import Obj


@click.command()
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Keep the demo's files here (default: a temporary directory, removed after).",
)
@click.pass_obj
def demo(obj: Obj, workdir: Path | None) -> None:
    """The whole idea in under a minute: a fast-forwarded month of backups, a restore, status."""
    from orchestrator.demo import run_demo

    lines: list[str] = []
    run_demo(workdir, echo=lines.append if obj.as_json else click.echo)
    if obj.as_json:
        text = "\n".join(lines)
        obj.emit("demo", {"workdir": workdir, "kept": workdir is not None, "output": text}, text)
