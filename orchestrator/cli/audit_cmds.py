"""`audit init|verify|prove|consistency|check-proof|show|checkpoint`: the auditor's commands.

`check-proof` needs no policies file and no log: only the public key and the proof."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from orchestrator.cli.common import Obj, parse_time
from orchestrator.errors import DamageError, UsageError

_FILE = click.Path(path_type=Path, dir_okay=False)


@click.group("audit")
def audit_group() -> None:
    """The tamper-evident audit log: verify it, prove records, read it."""


def _trail(obj: Obj) -> Any:
    from orchestrator.audit.trail import open_trail

    return open_trail(obj.config)


def _read_key(path: Path) -> Any:
    from orchestrator.audit.checkpoint import CheckpointError, parse_verifier_key

    try:
        return parse_verifier_key(path.read_text(), str(path))
    except FileNotFoundError:
        raise UsageError(
            f"no audit public key at {path}: run 'orchestrator audit init', or pass --key FILE"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the public key {path}: {exc}") from None
    except CheckpointError as exc:
        raise UsageError(str(exc)) from None


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {what} {path}: {getattr(exc, 'strerror', exc)}") from None


@audit_group.command("init")
@click.pass_obj
def audit_init(obj: Obj) -> None:
    """Make the signing key (once: its private half sealed in the secret store), sign a
    checkpoint, and print the public key for the auditors."""
    from orchestrator.audit.signing import SECRET_NAME
    from orchestrator.audit.sink import record_action

    trail = obj.context().audit.trail  # with the repositories to publish to
    trail.explicit = True  # asked for: may make the key (and the secret store)
    key = trail.verifier_key().text()
    had_key = not trail.key_made  # made now (by this command's first record, or just above)
    _text, size, _ = trail.checkpoint(remote=False)
    refused = list(trail.refused)
    store = obj.config.settings.state_dir / "secrets.sealed"
    record_action(
        obj.config,
        "audit.init",
        "failed" if trail.export_failed else "refused" if refused else "success",
        public_key=key,
        key_made=not had_key,
        tree_size=size,
        refused=refused,
        error=trail.export_failed,
    )
    _export_failed(trail)
    _refused(refused, size, [])
    made = "exists (made earlier)" if had_key else "made now"
    obj.emit(
        "audit.init",
        {"public_key": key, "key_made": not had_key, "secret": SECRET_NAME, "tree_size": size},
        f"audit signing key {made}: sealed in the secret store {store} as '{SECRET_NAME}'\n"
        f"public key (give it to your auditors): {key}\n"
        f"also in {trail.public_key_file} and beside every published checkpoint\n"
        f"checkpoints: {trail.settings.export_dir} (size {size} signed)",
    )


def _refused(refused: list[str], size: int, places: list[str]) -> None:
    """A repository kept the checkpoint it held (evidence against this log): exit 4."""
    if refused:
        raise DamageError(
            f"checkpoint {size} not published to {'; '.join(refused)}"
            + (f" (published to {', '.join(places)})" if places else "")
        )


def _export_failed(trail: Any) -> None:
    from orchestrator.errors import OrchestratorError

    if trail.export_failed:
        raise OrchestratorError(
            f"checkpoint not exported to {trail.settings.export_dir}: {trail.export_failed}"
        )


@audit_group.command("checkpoint")
@click.pass_obj
def audit_checkpoint(obj: Obj) -> None:
    """Sign a checkpoint now and publish it to the export directory and every repository."""
    from orchestrator.audit.sink import record_action

    ctx = obj.context()
    trail = ctx.audit.trail  # makes no key: `audit init` does
    text, size, places = trail.checkpoint(remote=True)
    refused = list(trail.refused)
    record_action(
        obj.config,
        "audit.checkpoint",
        "failed" if trail.export_failed else "refused" if refused else "success",
        tree_size=size,
        published=places,
        refused=refused,
        error=trail.export_failed,
    )
    _export_failed(trail)
    _refused(refused, size, places)
    obj.emit(
        "audit.checkpoint",
        {"tree_size": size, "checkpoint": text, "published": places},
        text + f"published to: {', '.join(places) or 'no repository (none initialised)'}",
    )


@audit_group.command("verify")
@click.option(
    "--checkpoint", "checkpoints", type=_FILE, multiple=True, help="A checkpoint kept elsewhere."
)
@click.option("--key", "key_file", type=_FILE, help="The public key (default: the log's own).")
@click.pass_obj
def audit_verify(obj: Obj, checkpoints: tuple[Path, ...], key_file: Path | None) -> None:
    """Replay the log against every checkpoint; exit 4 naming the first broken place."""
    from orchestrator.audit import signing
    from orchestrator.audit.verify import verify_log
    from orchestrator.targets.base import AUDIT_FOLDER

    trail = _trail(obj)
    found = trail.checkpoint_files()
    for spec in obj.config.targets.values():  # the copies next to local repositories
        path = getattr(spec, "path", None)
        copy = Path(path) / AUDIT_FOLDER / "checkpoint" if spec.kind == "local" else None
        if copy and copy.is_file():
            found.append((str(copy), _read_text(copy, "checkpoint")))
    found += [(str(p), _given_checkpoint(p)) for p in checkpoints]
    pub = key_file or _public_key_here_or_in_a_repository(trail)
    unsigned = not found and pub is None
    if unsigned:  # before `audit init`: the records can only be checked against each other
        from orchestrator.audit.checkpoint import verifier_key

        _refuse_signed_before(trail)
        key = verifier_key("unsigned", bytes(32))  # never used: there is no checkpoint
    else:
        key = _read_key(pub or trail.public_key_file)
    committed = trail.log.committed()
    report = verify_log(
        trail.log.lines, found, key, signing.verify, committed[:2] if committed else None
    )
    if not report.ok:
        more = len(report.problems) - 1
        raise DamageError(
            f"audit log damaged: {report.problems[0]}"
            + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")
        )
    payload = {
        "records": report.size,
        "checkpoints": report.checkpoints,
        "covered": report.covered,
        "notes": report.notes,
        "signed": not unsigned,
    }
    uncovered = report.size - report.covered
    text = (
        f"audit log intact: {report.size} records, {report.checkpoints} signed checkpoints "
        f"verified, the newest covers {report.covered}"
        + (f" ({uncovered} newer records not yet in a checkpoint)" if uncovered else "")
    )
    if unsigned:
        report.notes.append(
            "not signed yet: no signing key and no checkpoint, so the records were checked "
            "against each other only; run 'orchestrator audit init'"
        )
    obj.emit("audit.verify", payload, "\n".join([text, *report.notes]))


def _public_key_here_or_in_a_repository(trail: Any) -> Path | None:
    """The log's public key; when it is gone from state_dir, a local repository's copy
    (the evidence a rewriter removed here still verifies against it)."""
    from orchestrator.targets.base import AUDIT_FILES

    for place in (trail.public_key_file, *(d / AUDIT_FILES[1] for d in trail.witnesses)):
        if place.is_file():
            return place
    return None


def _refuse_signed_before(trail: Any) -> None:
    """A log with no key and no checkpoint anywhere, whose records say checkpoints were
    signed (`audit init`, `audit checkpoint`): they were removed, which is damage."""
    for index, (line, complete) in enumerate(trail.log.lines()):
        if complete and (b'"what":"audit.init"' in line or b'"what":"audit.checkpoint"' in line):
            raise DamageError(
                f"audit log damaged: record {index} says a checkpoint was signed, but no "
                "public key or checkpoint of this log is left here: they were removed; "
                "check the log with a checkpoint and key kept elsewhere (--checkpoint FILE "
                "--key PUB)"
            )


def _given_checkpoint(path: Path) -> str:
    """A file the auditor names must be a checkpoint: garbage there is their mistake
    (exit 2), not damage to the log; a well-formed one that fails is damage (exit 4)."""
    from orchestrator.audit import checkpoint as cpmod

    text = _read_text(path, "checkpoint")
    try:
        cpmod.parse(text, str(path))
    except cpmod.CheckpointError as exc:
        raise UsageError(f"--checkpoint {path} is not a checkpoint: {exc}") from None
    return text


def _newest(trail: Any) -> tuple[str, int]:
    latest = trail.latest_checkpoint()
    if latest is None:
        raise UsageError(
            "no checkpoint yet: run 'orchestrator audit init' (the first time) or "
            "'orchestrator audit checkpoint'"
        )
    return latest[0], latest[1]


def _checkpoint_arg(trail: Any, value: str) -> tuple[str, int]:
    """A checkpoint file, or a tree size found in the checkpoint history."""
    from orchestrator.audit import checkpoint as cpmod
    from orchestrator.audit.trail import HISTORY

    path = Path(value)
    if value.isdigit() and not path.exists():
        path = trail.history_dir.parent / HISTORY / f"{int(value):012d}"
        if not path.exists():
            raise UsageError(f"no checkpoint of size {value} in {path.parent}")
    text = _read_text(path, "checkpoint")
    try:
        return text, cpmod.parse(text, str(path))[0].size
    except cpmod.CheckpointError as exc:
        raise UsageError(str(exc)) from None


@audit_group.command("prove")
@click.argument("number", type=int)
@click.option("--checkpoint", "cp_file", type=_FILE, help="Prove against this checkpoint.")
@click.pass_obj
def audit_prove(obj: Obj, number: int, cp_file: Path | None) -> None:
    """Print an inclusion proof of record NUMBER against the newest checkpoint (JSON)."""
    from orchestrator.audit import proofs

    trail = _trail(obj)
    text, size = _checkpoint_arg(trail, str(cp_file)) if cp_file else _newest(trail)
    if number < 0:
        raise UsageError(f"record numbers start at 0, not {number}")
    if number >= size and number >= trail.log.index.size():
        raise UsageError(f"there is no record {number}: the log has {trail.log.index.size()}")
    if number >= size:
        raise UsageError(
            f"record {number} is not covered by the checkpoint (size {size}, records "
            f"0..{size - 1}): run 'orchestrator audit checkpoint' first"
        )
    index = trail.log.index
    doc = None
    if index.size() >= size:  # the levels on disk: a few hundred reads, not the whole log
        try:
            doc = proofs.inclusion(
                index.range_root, trail.log.record_at(number), number, text, size
            )
        except (IndexError, OSError):
            doc = None
    if doc is None or not proofs.holds(doc):  # no index, or a stale one: read the log
        lines = [line for line, complete in trail.log.lines() if complete]
        if size > len(lines):
            raise DamageError(
                f"the log has {len(lines)} records but the checkpoint covers {size}: "
                "run 'orchestrator audit verify'"
            )
        doc = proofs.inclusion(
            [_leaf(line) for line in lines[:size]], lines[number], number, text, size
        )
        if not proofs.holds(doc):
            raise DamageError(
                f"record {number} does not match the checkpoint of size {size}: "
                "run 'orchestrator audit verify'"
            )
    click.echo(json.dumps(doc, indent=2))


def _leaf(line: bytes) -> bytes:
    from orchestrator.audit.merkle import leaf_hash

    return leaf_hash(line)


@audit_group.command("consistency")
@click.argument("old")
@click.argument("new")
@click.pass_obj
def audit_consistency(obj: Obj, old: str, new: str) -> None:
    """Print a proof that checkpoint NEW extends OLD (files, or tree sizes in the history)."""
    from orchestrator.audit import proofs

    trail = _trail(obj)
    first, second = _checkpoint_arg(trail, old), _checkpoint_arg(trail, new)
    if first[1] > second[1]:
        raise UsageError(f"OLD (size {first[1]}) is larger than NEW (size {second[1]})")
    index = trail.log.index
    doc = None
    if index.size() >= second[1]:
        try:
            doc = proofs.consistency(index.range_root, first, second)
        except (IndexError, OSError):
            doc = None
    if doc is None or not proofs.holds(doc):
        hashes = trail.leaf_hashes()
        if second[1] > len(hashes):
            raise DamageError(f"the log has {len(hashes)} records but NEW covers {second[1]}")
        doc = proofs.consistency(hashes, first, second)
        if not proofs.holds(doc):
            raise DamageError(
                f"the log does not match checkpoint OLD (size {first[1]}) or NEW (size "
                f"{second[1]}): run 'orchestrator audit verify'"
            )
    click.echo(json.dumps(doc, indent=2))


@audit_group.command("check-proof")
@click.argument("proof", type=_FILE)
@click.option("--key", "key_file", type=_FILE, required=True, help="The auditor's public key.")
@click.option("--record", "record_file", type=_FILE, help="The record (one line) to prove.")
@click.option("--checkpoint", "cp_file", type=_FILE, help="The signed checkpoint to prove against.")
@click.pass_obj
def audit_check_proof(
    obj: Obj, proof: Path, key_file: Path, record_file: Path | None, cp_file: Path | None
) -> None:
    """Check a proof with only the public key: no log, no policies file. Exit 4 if it fails."""
    from orchestrator.audit import proofs, signing
    from orchestrator.audit.checkpoint import CheckpointError

    key = _read_key(key_file)
    try:
        doc = json.loads(_read_text(proof, "proof"))
    except json.JSONDecodeError as exc:
        raise UsageError(f"proof {proof}: not JSON (line {exc.lineno})") from None
    if not isinstance(doc, dict):
        raise UsageError(f"proof {proof}: not a proof document")
    record = record_file.read_bytes() if record_file else None
    cp_text = _read_text(cp_file, "checkpoint") if cp_file else None
    try:
        sentence = proofs.check(doc, key, signing.verify, record, cp_text)
    except (proofs.ProofCheckError, CheckpointError) as exc:
        raise DamageError(f"proof fails: {exc}") from None
    obj.emit("audit.check-proof", {"holds": True, "what": sentence}, f"proof holds: {sentence}")


@audit_group.command("show")
@click.option("--policy", help="Only records of this policy.")
@click.option("--since", help="Only records at or after this time (ISO 8601).")
@click.option("--who", help="Only records of this person (or Unix user).")
@click.option("--what", help="Only records of this kind (prefix: 'restore', 'run.failed').")
@click.pass_obj
def audit_show(
    obj: Obj, policy: str | None, since: str | None, who: str | None, what: str | None
) -> None:
    """The log, filtered, for an auditor's questions."""
    from orchestrator.audit.record import RecordError, parse
    from orchestrator.render import table

    trail = _trail(obj)
    start = parse_time(since, obj.config.settings.timezone, "--since")
    chosen: list[dict[str, Any]] = []
    for index, (line, complete) in enumerate(trail.log.lines()):
        if not complete:
            continue
        try:
            rec = parse(line, index)
        except RecordError as exc:
            raise DamageError(f"{exc}: run 'orchestrator audit verify'") from None
        if policy and rec.get("policy") != policy:
            continue
        if who and who not in (rec.get("who"), rec.get("unix_user")):
            continue
        if what and not str(rec.get("what", "")).startswith(what):
            continue
        if start and _when(rec) < start:
            continue
        chosen.append(rec)
    rows = [
        (
            r["n"],
            r["time"],
            r["who"],
            r["what"],
            r.get("policy"),
            r.get("target"),
            r["outcome"],
            r.get("summary") or r.get("secret") or r.get("config"),
        )
        for r in chosen
    ]
    headers = ("n", "time", "who", "what", "policy", "target", "outcome", "about")
    text = table(headers, rows) if rows else "no audit records match"
    obj.emit("audit.show", {"records": chosen}, text)


def _when(rec: dict[str, Any]) -> datetime:
    from datetime import UTC

    try:
        when = datetime.fromisoformat(str(rec.get("event_time") or rec["time"]))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return when if when.tzinfo else when.replace(tzinfo=UTC)
