"""The audit trail of one installation: the log, its signing key and its checkpoints.

`record()` appends (durably, under the log's lock) and, every `checkpoint_every` records
or when the newest checkpoint is a day old, signs a checkpoint and publishes it: into
`state_dir/audit/checkpoints/`, the export directory, and each repository through the
publishers the caller gives (a target's `publish_audit_checkpoint`). A publisher that
fails is logged and never fails the action being audited.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.audit import checkpoint as cpmod
from orchestrator.audit import merkle
from orchestrator.audit.identity import current_identity
from orchestrator.audit.log import AuditLog, AuditLogError, TreeState

if TYPE_CHECKING:
    from orchestrator.audit.signing import KeyVault, Signer
    from orchestrator.policies.model import AuditSettings, Config

log = logging.getLogger("orchestrator.audit")

CHECKPOINT = "checkpoint"  # the newest, in each place
HISTORY = "checkpoints"  # every one, named by its size
PUBLIC_KEY = "audit-key.pub"
DAY = timedelta(days=1)

# (checkpoint text, verifier key line, does the log extend a tree of (size, root)?)
Publisher = Callable[[str, str, cpmod.Extends], object]


class AuditTrail:
    def __init__(
        self,
        settings: AuditSettings,
        state_dir: Path,
        publishers: Sequence[tuple[str, Publisher, bool]] = (),
        identity: Callable[[], dict[str, str]] = current_identity,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        vault: Callable[[], KeyVault] | None = None,
    ) -> None:
        self.settings = settings
        self.vault = vault  # the secret store holding the signing key (opened on first use)
        self.log = AuditLog(state_dir / "audit")
        self.history_dir = state_dir / "audit" / HISTORY
        self.publishers = list(publishers)
        self.identity = identity
        self.now = now
        self._signer: Signer | None = None
        self.refused: list[str] = []  # places the last publish would not overwrite, and why
        self.export_failed: str | None = None  # why the last export did not happen
        self.checkpoint_failed: str | None = None  # why an automatic checkpoint was not signed
        self.key_made = False  # the signing key was made by this process
        # `audit init|checkpoint` asked for a checkpoint: the secret store (and its key
        # file) may be created for the key. Automatic checkpoints never create them.
        self.explicit = False
        self._no_key_yet = False  # an automatic checkpoint found no key and may make none
        # local repositories' copies (AUDIT_FOLDER): evidence this log had a key
        self.witnesses: list[Path] = []
        self._last_extends: cpmod.Extends | None = None  # of the last checkpoint signed

    # ------------------------------------------------------------------ records

    def record(self, *entries: Mapping[str, Any]) -> list[int]:
        """Append these records (who and when filled in); returns their numbers."""
        who = self.identity()
        stamp = self.now().isoformat(timespec="seconds")
        full = [
            {"time": stamp, **who, "host": socket.gethostname(), "pid": os.getpid(), **e}
            for e in entries
        ]
        signed = None
        with self.log.locked() as state:
            numbers = self.log.append(state, full)
            # no key yet: asked again once `audit init` (elsewhere) wrote the public key
            retry = not self._no_key_yet or self.public_key_file.exists()
            if retry and self._checkpoint_due(state):
                signed = self._checkpoint_or_say(state)
        if signed:  # outside the lock: a slow repository never holds up other appends
            self._publish(signed, remote=False)
        return numbers

    # ------------------------------------------------------------------ the key

    @property
    def public_key_file(self) -> Path:
        """The public half, beside the log (no secret: `audit verify` reads it)."""
        return self.history_dir.parent / PUBLIC_KEY

    def signer(self) -> Signer:
        """The signing key from the secret store; made and sealed there once (by `audit
        init` or the first checkpoint), its public half written beside the log. Refused:
        a stored key that does not match that public half, and a new key for a log that
        has a public key or checkpoints already (the store was lost or replaced: a new
        key would quietly take the place of the one the auditors hold)."""
        if self._signer is None:
            from orchestrator.audit import signing

            if self.vault is None:
                raise signing.SigningKeyError("the audit trail was opened without a secret store")
            vault = self.vault()
            name = self._key_name()
            legacy = (
                self.settings.legacy_key_file if self.settings.legacy_key_file != Path() else None
            )
            expected = _public_of(self.public_key_file)
            self._signer, created = signing.load_or_create(
                vault,
                name,
                legacy,
                expected,
                self._why_no_new_key(),
                # a store and its key file are made when asked, or to keep an earlier key
                new_key_file=self.explicit or (legacy is not None and legacy.is_file()),
            )
            self.key_made = created
            _say_created_key_file(vault)
            vkey = cpmod.verifier_key(name, self._signer.public).text()
            if expected not in (None, self._signer.public):
                self._signer = None
                raise signing.SigningKeyError(
                    f"the secret '{signing.SECRET_NAME}' is not the key of "
                    f"{self.public_key_file}: put the secret store (and its key) back as "
                    "they were, or set the log aside (README, 'Audit log') and start anew"
                )
            if expected is None:
                _write(self.public_key_file, vkey + "\n", 0o644)
                if created:
                    log.info(
                        "audit: made the signing key, sealed in the secret store as '%s' "
                        "(public: %s)",
                        signing.SECRET_NAME,
                        vkey,
                    )
                else:
                    log.warning("audit: wrote the public key %s again", self.public_key_file)
        return self._signer

    def _why_no_new_key(self) -> str | None:
        """None when this log may get its first key; else the reason it may not: a
        public key or a checkpoint of it here, or in a local repository's copy."""
        from orchestrator.targets.base import AUDIT_FILES

        pub = self.public_key_file
        signed = self.history_dir.is_dir() and any(self.history_dir.iterdir())
        copies = [d for d in self.witnesses if any((d / n).exists() for n in AUDIT_FILES)]
        if not pub.exists() and not signed and not copies:
            return None
        has = (
            f"its public key {pub}"
            if pub.exists()
            else f"checkpoints in {self.history_dir}"
            if signed
            else f"a checkpoint in the repository {copies[0]}"
        )
        return (
            f"the secret store holds no audit signing key, but this log has {has}: the "
            "store or its key file was lost or replaced; restore them from your copy (a "
            "new key would not be the one the auditors hold), or set the log aside "
            "(README, 'Audit log') and start a new one"
        )

    def _key_name(self) -> str:
        """The name is fixed when the key is made (kept in the .pub), so a renamed host or a
        changed setting does not orphan old checkpoints."""
        try:
            return cpmod.parse_verifier_key(self.public_key_file.read_text()).name
        except (OSError, cpmod.CheckpointError):
            return self.settings.origin or f"{socket.gethostname()}/orchestrator-audit"

    def verifier_key(self) -> cpmod.VerifierKey:
        signer = self.signer()
        return cpmod.verifier_key(signer.name, signer.public)

    # ------------------------------------------------------------------ checkpoints

    def checkpoint(self, remote: bool = True) -> tuple[str, int, list[str]]:
        """Sign and publish a checkpoint of the log as it is now, to every repository
        (`remote`: SFTP and S3 too); returns the text, its size and where it went."""
        with self.log.locked() as state:
            text, size = self._checkpoint(state), state.size
        return text, size, self._publish(text, remote)

    def latest_checkpoint(self) -> tuple[str, int, datetime] | None:
        path = self.history_dir.parent / CHECKPOINT
        try:
            text = path.read_text()
            when = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            cp, _, _ = cpmod.parse(text, str(path))
        except (OSError, cpmod.CheckpointError, UnicodeDecodeError):
            return None
        return text, cp.size, when

    def _checkpoint_due(self, state: TreeState) -> bool:
        latest = self.latest_checkpoint()
        if latest is None:
            return state.size > 0
        _, size, when = latest
        if state.size <= size:
            return False
        return state.size - size >= self.settings.checkpoint_every or self.now() - when >= DAY

    def _checkpoint_or_say(self, state: TreeState) -> str | None:
        """An automatic checkpoint; when it cannot be signed (the secret store's key is
        missing, say), the records are written all the same and the reason is logged:
        `audit verify` still checks them, against the last checkpoint and the log."""
        from orchestrator.errors import OrchestratorError
        from orchestrator.security.secrets import NoStoreYet

        try:
            return self._checkpoint(state)
        except NoStoreYet as exc:  # before `audit init`: expected, `status` says so
            self.checkpoint_failed = exc.message
            self._no_key_yet = not self.explicit  # not asked again by this trail's records
            log.debug("audit: records written, not signed yet: %s", exc)
            return None
        except OrchestratorError as exc:
            self.checkpoint_failed = exc.message
            log.error("audit: records written, checkpoint %d not signed: %s", state.size, exc)
            return None

    def _checkpoint(self, state: TreeState) -> str:
        signer = self.signer()
        self._last_extends = self._extends()  # the log read once, for this and the publish
        self._refuse_a_rewritten_log(state, self._last_extends)
        cp = cpmod.Checkpoint(signer.name, state.size, state.tree.root())
        text = cpmod.sign(cp, signer.name, signer.public, signer.sign)
        vkey = cpmod.verifier_key(signer.name, signer.public).text() + "\n"
        name = f"{state.size:012d}"
        self.export_failed = None
        _write(self.history_dir / name, text)
        _write(self.history_dir.parent / CHECKPOINT, text)
        try:
            export = self.settings.export_dir
            _write(export / HISTORY / name, text)
            _write(export / CHECKPOINT, text)
            _write(export / PUBLIC_KEY, vkey, 0o644)
        except AuditLogError as exc:  # said by `audit checkpoint|init` (exit 1), else logged
            self.export_failed = exc.message
            log.error("audit: checkpoint %d not exported: %s", state.size, exc.message)
        return text

    def _refuse_a_rewritten_log(self, state: TreeState, extends: cpmod.Extends) -> None:
        """Never sign a log that no longer starts with the records of its own newest
        checkpoint: the key would vouch for a rewritten history."""
        latest = self.latest_checkpoint()
        if latest is None:
            return
        cp, _, _ = cpmod.parse(latest[0], "the newest checkpoint")
        if cp.size <= state.size and not extends(cp.size, cp.root):
            raise AuditLogError(
                f"the audit log no longer starts with the {cp.size} records of its newest "
                f"checkpoint: it was rewritten; not signed (run 'orchestrator audit verify')"
            )

    def _extends(self) -> cpmod.Extends:
        """(size, root) -> whether the log's first `size` records hash to `root`, from the
        log's own bytes (not the index or the state file, which a rewriter may fit to
        it); the log is read once, on the first question."""
        leaves: list[bytes] = []

        def extends(size: int, root: bytes) -> bool:
            if not leaves:
                leaves.extend(self.leaf_hashes())
            return size <= len(leaves) and merkle.root_of(leaves[:size]) == root

        return extends

    def _publish(self, text: str, remote: bool) -> list[str]:
        """Into each repository; automatic checkpoints go to local ones only (no network
        wait inside an audited action); `audit checkpoint` reaches SFTP and S3 too."""
        signer = self.signer()
        vkey = cpmod.verifier_key(signer.name, signer.public).text() + "\n"
        done = []
        self.refused = []
        extends = self._last_extends or self._extends()  # the log as the checkpoint read it
        for label, publish, is_remote in self.publishers:
            if is_remote and not remote:
                continue
            try:
                if publish(text, vkey, extends):
                    done.append(label)
            except cpmod.CheckpointRefused as exc:  # evidence there: kept, and said
                self.refused.append(f"{label}: {exc.message}")
                log.error("audit: checkpoint not published to %s", self.refused[-1])
            except Exception as exc:  # a repository away must not fail the audited action
                log.error("audit: checkpoint not published to %s: %s", label, exc)
        return done

    def checkpoint_files(self) -> list[tuple[str, str]]:
        """Every checkpoint kept on this host: (where, text)."""
        found: list[tuple[str, str]] = []
        for latest in (self.history_dir.parent / CHECKPOINT, self.settings.export_dir / CHECKPOINT):
            if latest.is_file():
                found.append((str(latest), _read(latest)))
        for folder in (self.history_dir, self.settings.export_dir / HISTORY):
            if folder.is_dir():
                for path in sorted(folder.iterdir()):
                    if path.is_file() and not path.name.startswith("."):
                        found.append((str(path), _read(path)))
        return found

    def leaf_hashes(self) -> list[bytes]:
        return self.log.leaf_hashes()

    def root_at(self, size: int) -> bytes:
        return merkle.root_of(self.leaf_hashes()[:size])


def open_trail(
    config: Config,
    publishers: Sequence[tuple[str, Publisher, bool]] = (),
    vault: Callable[[], KeyVault] | None = None,
    **kw: Any,
) -> AuditTrail:
    """The trail of this configuration, its signing key in this configuration's store."""
    settings = config.settings
    opened: list[KeyVault] = []

    def store() -> KeyVault:
        if not opened:
            from orchestrator.security.secrets import SecretStore

            opened.append(SecretStore.of(settings))
        return opened[0]

    trail = AuditTrail(config.audit, settings.state_dir, publishers, vault=vault or store, **kw)
    trail.witnesses = witness_dirs(config)
    return trail


def witness_dirs(config: Config) -> list[Path]:
    """Where local repositories keep this log's checkpoint and public key."""
    from orchestrator.targets.base import AUDIT_FOLDER

    return [
        Path(spec.path) / AUDIT_FOLDER
        for spec in config.targets.values()
        if spec.kind == "local" and getattr(spec, "path", None)
    ]


def _say_created_key_file(vault: Any) -> None:
    """The secret store's key file made for the signing key: the one file to copy off
    the machine, said whichever command made it."""
    made = getattr(vault, "created_key", None)
    if made is not None:
        log.warning(
            "audit: created the secret store's key file %s (mode 0600) for the signing key: "
            "keep a copy off this machine; without it the secrets cannot be read",
            made,
        )


def _public_of(path: Path) -> bytes | None:
    try:
        return cpmod.parse_verifier_key(path.read_text(), str(path)).public
    except (OSError, UnicodeDecodeError, cpmod.CheckpointError):
        return None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        return f"unreadable: {exc}"


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    """Atomically (a reader never sees half a checkpoint)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise AuditLogError(f"cannot write {path}: {exc.strerror or exc}") from None
