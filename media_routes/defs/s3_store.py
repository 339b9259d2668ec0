"""The media store on S3 (or any S3-compatible server) through dagster-aws's ``S3Resource`` (boto3).

Same layout and guarantees as :class:`LocalMediaStore`: keys ``<prefix>/<stage>/<campaign>[/<format>]/
<sha256>.<ext>``, content-addressed, never overwritten (an existing key is the same bytes and is left
alone). Work files (a video being encoded) go to a local scratch directory first, then up. Chosen by
configuration alone (``MEDIA_ROUTES_MEDIA_STORE=s3``, see :func:`media_store_from_env`).

With the media on S3 the stages' outputs (the small ``MediaRef`` each returns, which the next stage loads)
go to the same bucket through dagster-aws's ``S3PickleIOManager`` (:func:`io_manager_from_env`), under
``<prefix>/dagster-io/``: a run on another machine (an ECS task, a Kubernetes job) loads what an earlier
run materialized. Locally they stay in Dagster's default filesystem IO manager under ``$DAGSTER_HOME``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from dagster_aws.s3 import S3PickleIOManager, S3Resource

from media_routes.defs.resources import LocalMediaStore, MediaStore, file_sha256
from media_routes.lib.imaging import sha256_hex

ENV_STORE = "MEDIA_ROUTES_MEDIA_STORE"  # "local" (default) or "s3"
ENV_BUCKET = "MEDIA_ROUTES_S3_BUCKET"
ENV_PREFIX = "MEDIA_ROUTES_S3_PREFIX"
ENV_ENDPOINT = "MEDIA_ROUTES_S3_ENDPOINT_URL"  # an S3-compatible server (MinIO, moto, a proxy)
ENV_REGION = "AWS_REGION"


class S3MediaStore(MediaStore):
    """Content-addressed, write-once media in ``s3://bucket/prefix/...``."""

    s3: S3Resource
    bucket: str
    prefix: str = "media"
    scratch: str = ""  # local work directory; default: the system temp dir

    def _client(self) -> Any:
        return self.s3.get_client()

    def _key(self, prefix: str, sha: str, ext: str) -> str:
        parts = [p for p in prefix.split("/") if p]
        if any(p in (".", "..") for p in parts):
            raise ValueError(f"invalid media prefix {prefix!r}")
        return "/".join([p for p in self.prefix.split("/") if p] + parts + [f"{sha}.{ext}"])

    def _exists(self, client: Any, key: str) -> bool:
        try:
            client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def put_bytes(self, data: bytes, *, prefix: str, ext: str) -> str:
        key = self._key(prefix, sha256_hex(data), ext)
        client = self._client()
        if not self._exists(client, key):  # same key, same bytes: never rewritten
            client.put_object(Bucket=self.bucket, Key=key, Body=data)
        return f"s3://{self.bucket}/{key}"

    def put_file(self, path: Path, *, prefix: str, ext: str, sha256: str | None = None) -> str:
        key = self._key(prefix, sha256 or file_sha256(path), ext)
        client = self._client()
        if not self._exists(client, key):
            client.upload_file(str(path), self.bucket, key)
        Path(path).unlink(missing_ok=True)
        return f"s3://{self.bucket}/{key}"

    def read_bytes(self, uri: str) -> bytes:
        bucket, key = split_s3_uri(uri)
        return self._client().get_object(Bucket=bucket, Key=key)["Body"].read()

    def scratch_dir(self) -> Path:
        d = Path(self.scratch) if self.scratch else Path(tempfile.gettempdir()) / "media-routes-scratch"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def local_path(self, uri: str) -> Path | None:
        return None


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"{uri!r} is not an s3://bucket/key URI")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


def _store_kind() -> str:
    kind = os.environ.get(ENV_STORE, "local").strip().lower() or "local"
    if kind not in ("local", "s3"):
        raise ValueError(f"{ENV_STORE}={kind!r}: choose 'local' or 's3'")
    if kind == "s3" and not os.environ.get(ENV_BUCKET):
        raise ValueError(f"{ENV_STORE}=s3 needs {ENV_BUCKET}")
    return kind


# boto3's standard retry mode with 10 attempts backs off for up to about a minute (capped exponential, full
# jitter): a stage rides out a blip of the object store (the rehearsal's 8 s outage) instead of failing.
S3_MAX_ATTEMPTS = 10


def _s3_resource() -> S3Resource:
    return S3Resource(
        region_name=os.environ.get(ENV_REGION) or None,
        endpoint_url=os.environ.get(ENV_ENDPOINT) or None,
        max_attempts=S3_MAX_ATTEMPTS,
    )


def media_store_from_env(media_root: str) -> MediaStore:
    """The media store the environment asks for: local files (default) or S3 (``MEDIA_ROUTES_MEDIA_STORE=s3``)."""
    if _store_kind() == "local":
        return LocalMediaStore(root=media_root)
    return S3MediaStore(
        s3=_s3_resource(),
        bucket=os.environ[ENV_BUCKET],
        prefix=os.environ.get(ENV_PREFIX, "media"),
        scratch=str(Path(media_root) / ".scratch"),
    )


def io_manager_from_env() -> S3PickleIOManager | None:
    """The IO manager for stage outputs: on S3 beside the media when the media are on S3, else None (Dagster's)."""
    if _store_kind() == "local":
        return None
    prefix = os.environ.get(ENV_PREFIX, "media").strip("/")
    return S3PickleIOManager(
        s3_resource=_s3_resource(), s3_bucket=os.environ[ENV_BUCKET], s3_prefix=f"{prefix}/dagster-io"
    )
