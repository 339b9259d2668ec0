"""Write-once named bytes, on local disk or in S3: the one object store under the media store and the call cache.

A *name* is a relative ``a/b/c.ext`` path inside the store. Every backend keeps the same rule: a name is written
once and never overwritten (the first bytes stored win; writing the same name again is a no-op that returns
False). Both users rely on it: media names are content hashes (same name, same bytes), and a call cache result
is stored under its key lock, so a second write can only come from a writer that bypassed the lock.

* :class:`LocalObjectStore`: files under a root. A write goes to a temporary file in the target folder, is
  fsynced, hard-linked into place (``os.link`` fails on an existing name instead of replacing it) and the
  folder is fsynced, so a crash leaves either no file or the whole file, never a torn or replaced one.
* :class:`S3ObjectStore`: objects under ``s3://bucket/prefix/``. A write checks ``head_object`` first and only
  then puts (race-free under the callers' rules above). Transient failures (no connection, 5xx) are retried with
  capped exponential backoff for up to ``write_budget_s`` on top of the client's own retries: the bytes are
  often a result just paid for, and losing them to a blip of the object store would mean paying again.
  Refusals (403, a missing bucket) raise at once.

Neither knows about Dagster; :mod:`media_routes.defs.resources` / :mod:`media_routes.defs.s3_store` (media) and
:mod:`media_routes.credits.backends` (call cache) map their keys to names.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_MISSING_CODES = ("404", "NoSuchKey", "NotFound")
DEFAULT_WRITE_BUDGET_S = 120.0
# boto3's standard retry mode with 10 attempts backs off for up to about a minute (capped exponential, full
# jitter) inside one call; the write budget above comes on top of it for writes.
S3_MAX_ATTEMPTS = 10


def check_name(name: str) -> str:
    """``name`` as ``a/b/c``; raises ValueError for an empty name or a ``.``/``..`` part (no escaping the root)."""
    parts = [p for p in name.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise ValueError(f"invalid object name {name!r}")
    return "/".join(parts)


def join(*parts: str) -> str:
    """Non-empty parts joined with ``/`` (a prefix may be empty)."""
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


class ObjectStore(ABC):
    """Write-once bytes by name."""

    @abstractmethod
    def put(self, name: str, data: bytes) -> bool:
        """Store ``data`` durably under ``name``; False (and nothing written) when ``name`` exists."""

    @abstractmethod
    def put_file(self, name: str, path: Path) -> bool:
        """Move the finished local file ``path`` in under ``name`` (``path`` is gone afterwards either way)."""

    @abstractmethod
    def get(self, name: str) -> bytes | None:
        """The stored bytes, or None when nothing is stored under ``name``."""

    @abstractmethod
    def exists(self, name: str) -> bool: ...

    @abstractmethod
    def modified(self, name: str) -> datetime:
        """When ``name`` was written (UTC); FileNotFoundError when it is not stored."""

    @abstractmethod
    def uri(self, name: str) -> str:
        """``file:///...`` or ``s3://bucket/...`` of ``name``."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove ``name`` if it is stored (only for objects no longer needed)."""

    @abstractmethod
    def under(self, prefix: str) -> ObjectStore:
        """The same store seen from the sub-folder ``prefix``."""

    def local_path(self, name: str) -> Path | None:
        """A local filesystem path of ``name`` when the backend has one."""
        return None


class LocalObjectStore(ObjectStore):
    """Files under ``root`` (created on first write)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().resolve()

    def local_path(self, name: str) -> Path:
        return self.root.joinpath(*check_name(name).split("/"))

    def put(self, name: str, data: bytes) -> bool:
        path = self.local_path(name)
        if path.exists():
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            return self._link(Path(tmp), path)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def put_file(self, name: str, path: Path) -> bool:
        target = self.local_path(name)
        source = Path(path)
        try:
            if target.exists():
                return False
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(source, "rb") as fh:  # a work file (an encoder's output) may not be on disk yet
                os.fsync(fh.fileno())
            try:
                return self._link(source, target)  # an existing name is caught inside: False
            except OSError:  # another filesystem (EXDEV) or one without hard links: copy, then link
                return self.put(name, source.read_bytes())
        finally:
            source.unlink(missing_ok=True)

    @staticmethod
    def _link(source: Path, target: Path) -> bool:
        try:
            os.link(source, target)  # never replaces an existing name
        except FileExistsError:
            return False
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return True

    def get(self, name: str) -> bytes | None:
        try:
            return self.local_path(name).read_bytes()
        except FileNotFoundError:
            return None

    def exists(self, name: str) -> bool:
        return self.local_path(name).exists()

    def modified(self, name: str) -> datetime:
        return datetime.fromtimestamp(self.local_path(name).stat().st_mtime, UTC)

    def uri(self, name: str) -> str:
        return self.local_path(name).as_uri()

    def delete(self, name: str) -> None:
        self.local_path(name).unlink(missing_ok=True)

    def under(self, prefix: str) -> LocalObjectStore:
        return LocalObjectStore(self.root / check_name(prefix)) if prefix.strip("/") else self

    def __repr__(self) -> str:
        return f"LocalObjectStore({str(self.root)!r})"


def s3_client(endpoint_url: str | None = None, region: str | None = None) -> Any:
    """A boto3 S3 client with the standard retry mode (:data:`S3_MAX_ATTEMPTS` attempts)."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url or None,
        region_name=region or None,
        config=Config(retries={"max_attempts": S3_MAX_ATTEMPTS, "mode": "standard"}),
    )


class S3ObjectStore(ObjectStore):
    """Objects ``s3://bucket/<prefix>/<name>``. The boto3 client is ``client``, or made on first use by
    ``make_client`` (default :func:`s3_client`): making a client is not thread-safe, using one is."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Any = None,
        make_client: Callable[[], Any] | None = None,
        write_budget_s: float = DEFAULT_WRITE_BUDGET_S,
    ) -> None:
        if not bucket:
            raise ValueError("S3ObjectStore needs a bucket")
        self.bucket = bucket
        self.prefix = check_name(prefix) if prefix.strip("/") else ""
        self.write_budget_s = write_budget_s
        self._client = client
        self._make_client = make_client or s3_client
        self._client_lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def key(self, name: str) -> str:
        return join(self.prefix, check_name(name))

    def _head(self, name: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=self.key(name))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING_CODES:
                return None
            raise

    def _write(self, name: str, send: Callable[[], object]) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        deadline = time.monotonic() + self.write_budget_s
        delay = 0.5
        while True:
            try:
                if self._head(name) is not None:  # an existing object is never overwritten
                    return False
                send()
                return True
            except (BotoCoreError, ClientError) as exc:
                status = (
                    exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                    if isinstance(exc, ClientError)
                    else 0
                )
                transient = isinstance(exc, BotoCoreError) or status >= 500
                if not transient or time.monotonic() + delay > deadline:
                    raise
                log.warning("object store: storing %s failed (%s); retrying in %.1f s", self.uri(name), exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    def put(self, name: str, data: bytes) -> bool:
        return self._write(name, lambda: self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=data))

    def put_file(self, name: str, path: Path) -> bool:
        try:
            return self._write(name, lambda: self.client.upload_file(str(path), self.bucket, self.key(name)))
        finally:
            Path(path).unlink(missing_ok=True)

    def get(self, name: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key(name))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING_CODES:
                return None
            raise

    def exists(self, name: str) -> bool:
        return self._head(name) is not None

    def modified(self, name: str) -> datetime:
        head = self._head(name)
        if head is None:
            raise FileNotFoundError(self.uri(name))
        return head["LastModified"].astimezone(UTC)

    def uri(self, name: str) -> str:
        return f"s3://{self.bucket}/{self.key(name)}"

    def delete(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(name))  # deleting nothing succeeds on S3

    def under(self, prefix: str) -> S3ObjectStore:
        if not prefix.strip("/"):
            return self
        return S3ObjectStore(
            self.bucket,
            join(self.prefix, check_name(prefix)),
            make_client=lambda: self.client,  # one client, made when first needed by either
            write_budget_s=self.write_budget_s,
        )

    def __repr__(self) -> str:
        return f"S3ObjectStore('s3://{self.bucket}/{self.prefix}')"


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` as ``(bucket, key)``."""
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"{uri!r} is not an s3://bucket/key URI")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key
