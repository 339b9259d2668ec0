"""The media store on S3 (or any S3-compatible server) through dagster-aws's ``S3Resource`` (boto3).

Same layout and guarantees as :class:`LocalMediaStore`: keys ``<prefix>/<stage>/<campaign>[/<format>]/
<sha256>.<ext>``, content-addressed, never overwritten (an existing key is the same bytes and is left
alone). Work files (a video being encoded) go to a local scratch directory first, then up. Chosen by
configuration alone: ``MEDIA_ROUTES_ENV=rehearsal|production``, or ``MEDIA_ROUTES_MEDIA_STORE=s3`` in ``local``
(:mod:`media_routes.defs.environment`).

With the media on S3 the stages' outputs (the small ``MediaRef`` each returns, which the next stage loads)
go to the same bucket through dagster-aws's ``S3PickleIOManager`` (:func:`io_manager_from_env`), under
``<prefix>/dagster-io/``: a run on another machine (an ECS task, a Kubernetes job) loads what an earlier
run materialized. Locally they stay in Dagster's default filesystem IO manager under ``$DAGSTER_HOME``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from dagster_aws.s3 import S3PickleIOManager, S3Resource

from media_routes.defs.resources import LocalMediaStore, MediaStore
from media_routes.lib.object_store import S3_MAX_ATTEMPTS, S3ObjectStore, split_s3_uri

ENV_STORE = "MEDIA_ROUTES_MEDIA_STORE"  # "local" (default) or "s3"
ENV_BUCKET = "MEDIA_ROUTES_S3_BUCKET"
ENV_PREFIX = "MEDIA_ROUTES_S3_PREFIX"
ENV_ENDPOINT = "MEDIA_ROUTES_S3_ENDPOINT_URL"  # an S3-compatible server (MinIO, moto, a proxy)
ENV_REGION = "AWS_REGION"


class S3MediaStore(MediaStore):
    """Content-addressed, write-once media in ``s3://bucket/prefix/...``
    (:class:`~media_routes.lib.object_store.S3ObjectStore`: head before put, transient failures retried)."""

    s3: S3Resource
    bucket: str
    prefix: str = "media"
    scratch: str = ""  # local work directory; default: the system temp dir

    def objects(self) -> S3ObjectStore:
        return S3ObjectStore(self.bucket, self.prefix, client=self.s3.get_client())

    def read_bytes(self, uri: str) -> bytes:
        bucket, key = split_s3_uri(uri)
        return self.s3.get_client().get_object(Bucket=bucket, Key=key)["Body"].read()

    def scratch_dir(self) -> Path:
        d = Path(self.scratch) if self.scratch else Path(tempfile.gettempdir()) / "media-routes-scratch"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def local_path(self, uri: str) -> Path | None:
        return None


def store_kind(environ: Mapping[str, str] | None = None) -> str:
    """``MEDIA_ROUTES_MEDIA_STORE`` checked: ``local`` (default) or ``s3`` (which needs a bucket)."""
    environ = os.environ if environ is None else environ
    kind = environ.get(ENV_STORE, "local").strip().lower() or "local"
    if kind not in ("local", "s3"):
        raise ValueError(f"{ENV_STORE}={kind!r}: choose 'local' or 's3'")
    if kind == "s3" and not environ.get(ENV_BUCKET):
        raise ValueError(f"{ENV_STORE}=s3 needs {ENV_BUCKET}")
    return kind


def _s3_resource() -> S3Resource:
    return S3Resource(
        region_name=os.environ.get(ENV_REGION) or None,
        endpoint_url=os.environ.get(ENV_ENDPOINT) or None,
        max_attempts=S3_MAX_ATTEMPTS,
    )


def media_store_from_env(media_root: str, kind: str | None = None) -> MediaStore:
    """The media store for ``kind`` (``local`` or ``s3``; default: ``MEDIA_ROUTES_MEDIA_STORE``, else local; the
    named environment decides it in :func:`media_routes.definitions.build_resources`)."""
    if (kind or store_kind()) == "local":
        return LocalMediaStore(root=media_root)
    return S3MediaStore(
        s3=_s3_resource(),
        bucket=os.environ[ENV_BUCKET],
        prefix=os.environ.get(ENV_PREFIX, "media"),
        scratch=str(Path(media_root) / ".scratch"),
    )


def io_manager_from_env(kind: str | None = None) -> S3PickleIOManager | None:
    """The IO manager for stage outputs: on S3 beside the media when the media are on S3, else None (Dagster's)."""
    if (kind or store_kind()) == "local":
        return None
    prefix = os.environ.get(ENV_PREFIX, "media").strip("/")
    return S3PickleIOManager(
        s3_resource=_s3_resource(), s3_bucket=os.environ[ENV_BUCKET], s3_prefix=f"{prefix}/dagster-io"
    )
