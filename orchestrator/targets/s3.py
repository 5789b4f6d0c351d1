"""A repository in an S3 bucket (AWS or a compatible server: MinIO, Ceph, Wasabi).

restic does the storage work through its own `s3:` backend; boto3 (imported only in this
module, and only when a request is made) does the preflight, the media listings and the
streaming of single objects.

Credentials: `credentials = "secret:NAME"` names a secret whose value is
`ACCESS_KEY_ID:SECRET_ACCESS_KEY` (or `ACCESS_KEY_ID:SECRET_ACCESS_KEY:SESSION_TOKEN`).
They reach restic as AWS_* variables of its environment, never its argv. With no
`credentials`, both restic and boto3 use the standard AWS chain (environment variables,
~/.aws/credentials and config, instance roles).

Buckets are never created here: a missing bucket is an error (restic would silently
create one, in whatever region and with whatever policy the endpoint defaults to).
"""

from __future__ import annotations

import contextlib
import io
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from orchestrator.audit.checkpoint import Extends, refuse_replacing
from orchestrator.errors import SecretError, TargetError
from orchestrator.policies.model import S3TargetSpec
from orchestrator.restic import features
from orchestrator.restic.runner import Repository
from orchestrator.targets.base import (
    AUDIT_FILES,
    AUDIT_FOLDER,
    CONTENT_ADDRESSED,
    Probe,
    RepoFile,
)

AUTH = "auth"
NO_BUCKET = "no_bucket"
AWS_ENDPOINT = "s3.amazonaws.com"

_AUTH_CODES = frozenset(
    {
        "403",
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "InvalidClientTokenId",
    }
)


class S3Target:
    read_parallelism = 8  # concurrent GETs the media check may do (boto3 clients are thread-safe)

    def __init__(self, spec: S3TargetSpec, resolve: Callable[[str], str] | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self.timeout = spec.connect_timeout
        self._resolve = resolve
        self._lock = threading.Lock()
        self._s3: Any = None
        prefix = spec.prefix.strip("/")
        self.base = f"{prefix}/" if prefix else ""  # key prefix of the repository's objects

    # -- restic --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host = self.spec.endpoint.rstrip("/") if self.spec.endpoint else AWS_ENDPOINT
        return f"s3:{host}/{self.spec.bucket}" + (f"/{self.base.rstrip('/')}" if self.base else "")

    def repository(self, password: str) -> Repository:
        options = []
        if self.spec.endpoint:  # compatible servers rarely serve virtual-host-style buckets
            options.append("s3.bucket-lookup=path")
        if self.spec.region:
            options.append(f"s3.region={self.spec.region}")
        env = {}
        creds = self._credentials()
        if creds is not None:
            env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"] = creds[0], creds[1]
            if creds[2]:
                env["AWS_SESSION_TOKEN"] = creds[2]
        return Repository(
            url=self.url, password=password, label=self.name, options=tuple(options), env=env
        )

    def describe(self) -> str:
        return self.url

    def _credentials(self) -> tuple[str, str, str | None] | None:
        """The key pair from the named secret; None means the standard AWS chain."""
        ref = self.spec.credentials
        if ref is None:
            return None
        if self._resolve is None:
            raise SecretError(
                f"target '{self.name}': its credentials secret cannot be resolved here"
            )
        parts = self._resolve(ref).strip().split(":")
        if len(parts) not in (2, 3) or not all(parts[:2]):
            raise SecretError(
                f"target '{self.name}': secret '{ref.removeprefix('secret:')}' must hold "
                "ACCESS_KEY_ID:SECRET_ACCESS_KEY (optionally :SESSION_TOKEN)"
            )
        return parts[0], parts[1], parts[2] if len(parts) == 3 else None

    # -- preflight -----------------------------------------------------------------------

    def preflight(self) -> None:
        """One HEAD request: endpoint reachable, credentials accepted, bucket exists."""
        with self._translated("checking the bucket", bucket=True):
            self._client().head_bucket(Bucket=self.spec.bucket)

    def probe(self) -> Probe:
        """Preflight, then: is the repository there, and may we write (a tiny probe object,
        deleted again, beside the repository's folders)."""
        self.preflight()
        s3 = self._client()
        try:
            with self._translated("looking for the repository"):
                s3.head_object(Bucket=self.spec.bucket, Key=f"{self.base}config")
            initialised = True
        except FileNotFoundError:
            initialised = False
        key = f"{self.base}.orchestrator-probe-{uuid.uuid4().hex}"
        try:
            with self._translated("writing a probe object"):
                s3.put_object(Bucket=self.spec.bucket, Key=key, Body=b"probe")
                s3.delete_object(Bucket=self.spec.bucket, Key=key)
            writable = True
        except TargetError as exc:
            if exc.kind != AUTH:
                raise
            writable = False
        notes = ("credentials accepted", f"bucket '{self.spec.bucket}' exists")
        return Probe(initialised=initialised, writable=writable, free_bytes=None, notes=notes)

    def publish_audit_checkpoint(
        self, checkpoint: str, public_key: str, extends: Extends | None = None
    ) -> bool:
        """Audit log (issue 16): next to the snapshots; never creates a repository."""
        s3 = self._client()
        try:
            with self._translated("looking for the repository"):
                s3.head_object(Bucket=self.spec.bucket, Key=f"{self.base}config")
        except FileNotFoundError:
            return False
        there = f"{self.base}{AUDIT_FOLDER}/{AUDIT_FILES[0]}"
        try:
            with self._translated("reading the audit checkpoint"):
                body = s3.get_object(Bucket=self.spec.bucket, Key=there)["Body"].read()
            existing: str | None = body.decode("utf-8", "replace")
        except FileNotFoundError:
            existing = None
        refuse_replacing(existing, checkpoint, f"{self.describe()} ({there})", extends)
        with self._translated("publishing the audit checkpoint", bucket=True):
            for name, text in zip(AUDIT_FILES, (checkpoint, public_key), strict=True):
                key = f"{self.base}{AUDIT_FOLDER}/{name}"
                s3.put_object(Bucket=self.spec.bucket, Key=key, Body=text.encode())
        return True

    # -- listings (no repository password needed) -----------------------------------------

    def list_files(self, folders: tuple[str, ...] = CONTENT_ADDRESSED) -> Iterator[RepoFile]:
        pages = self._client().get_paginator("list_objects_v2")
        for folder in folders:
            with self._translated(f"listing {folder}", bucket=True):
                found = []
                for page in pages.paginate(Bucket=self.spec.bucket, Prefix=f"{self.base}{folder}/"):
                    found += [(o["Key"], o["Size"]) for o in page.get("Contents") or ()]
            # Yield outside the translation so a consumer's exception is not reworded.
            for key, size in sorted(found):
                yield RepoFile(key[len(self.base) :], int(size))

    @contextlib.contextmanager
    def open_file(self, path: str) -> Iterator[BinaryIO]:
        """Stream one object (botocore reads the HTTP body as it is consumed). A missing
        object raises FileNotFoundError; a failing endpoint raises TargetError."""
        with self._translated(f"opening {path}"):
            body = self._client().get_object(Bucket=self.spec.bucket, Key=self.base + path)["Body"]
        try:
            yield _Body(body, self)  # type: ignore[misc]
        finally:
            with contextlib.suppress(Exception):
                body.close()

    def close(self) -> None:
        with self._lock:
            if self._s3 is not None:
                self._s3.close()
                self._s3 = None

    # -- boto3 ---------------------------------------------------------------------------

    def _client(self) -> Any:
        with self._lock:
            if self._s3 is None:
                self._s3 = self._new_client()
            return self._s3

    def _new_client(self) -> Any:
        import boto3
        from botocore.config import Config

        creds = self._credentials()
        session = (
            boto3.session.Session(
                aws_access_key_id=creds[0],
                aws_secret_access_key=creds[1],
                aws_session_token=creds[2],
            )
            if creds
            else boto3.session.Session()
        )
        config = Config(
            connect_timeout=self.timeout,
            read_timeout=self.timeout,
            retries={"max_attempts": 2, "mode": "standard"},
            max_pool_connections=self.read_parallelism * 2,
            s3={"addressing_style": "path" if self.spec.endpoint else "auto"},
        )
        region = self.spec.region or ("us-east-1" if self.spec.endpoint else None)
        return session.client(
            "s3", endpoint_url=self.spec.endpoint, region_name=region, config=config
        )

    @contextlib.contextmanager
    def _translated(self, doing: str, bucket: bool = False) -> Iterator[None]:
        """botocore's exceptions become one TargetError sentence naming the target.
        A missing object becomes FileNotFoundError (callers decide what that means)."""
        from botocore import exceptions as bx

        where = f"target '{self.name}' ({self.url})"
        try:
            yield
        except (FileNotFoundError, TargetError, SecretError):
            raise
        except bx.ClientError as exc:
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchBucket" or (bucket and (code == "404" or status == 404)):
                raise TargetError(
                    f"{where}: bucket '{self.spec.bucket}' does not exist; create it first "
                    "(the orchestrator never creates buckets)",
                    NO_BUCKET,
                ) from None
            if code in ("NoSuchKey", "404") or status == 404:
                raise FileNotFoundError(doing) from None
            if code in _AUTH_CODES or status == 403:
                hint = (
                    f"check secret '{self.spec.credentials.removeprefix('secret:')}'"
                    if self.spec.credentials
                    else "check the AWS credentials in the environment or ~/.aws"
                )
                raise TargetError(
                    f"{where}: credentials rejected or access denied while {doing} "
                    f"({code or status}); {hint}",
                    AUTH,
                ) from None
            message = err.get("Message") or code
            raise TargetError(f"{where}: S3 refused {doing}: {message}", "s3") from None
        except bx.NoCredentialsError:
            raise TargetError(
                f"{where}: no S3 credentials: name a secret with credentials = 'secret:NAME' "
                "or provide AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                AUTH,
            ) from None
        except (bx.ConnectTimeoutError, bx.ReadTimeoutError):
            raise TargetError(
                f"{where}: no answer within {self.timeout} s while {doing}", features.TIMEOUT
            ) from None
        except bx.EndpointConnectionError:
            raise TargetError(
                f"{where}: cannot connect to the endpoint while {doing}", features.NETWORK
            ) from None
        except (bx.BotoCoreError, OSError) as exc:
            raise TargetError(
                f"{where}: S3 request failed while {doing}: {exc}", features.NETWORK
            ) from None


class _Body(io.RawIOBase):
    """botocore's streaming body with its failures translated (a dropped connection is the
    target's problem, not damage in the file)."""

    def __init__(self, body: Any, target: S3Target) -> None:
        super().__init__()
        self._body = body
        self._target = target

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        with self._target._translated("reading an object"):
            return bytes(self._body.read(None if size is None or size < 0 else size))

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
