"""Resources: the media store (pluggable backend) and the campaign catalog.

The media store is abstract, with a local-filesystem implementation here; the S3 implementation
(dagster-aws, :mod:`media_routes.defs.s3_store`) plugs in by subclassing :class:`MediaStore` without touching
the stages. Both write through :mod:`media_routes.lib.object_store`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import dagster as dg

from media_routes.lib.imaging import sha256_hex
from media_routes.lib.object_store import LocalObjectStore, ObjectStore
from media_routes.spec import SLUG_RE, SPEC_FILENAME, Campaign, SpecError, load_campaign


class MediaStore(dg.ConfigurableResource, ABC):
    """Content-addressed, write-once media storage.

    Keys look like ``<stage>/<campaign>[/<format>]/<sha256>.<ext>``: a new materialization never
    overwrites an earlier one, so lineage can always open older outputs. The bytes live in an
    :class:`~media_routes.lib.object_store.ObjectStore` (local files or S3), the same write-once store
    the call cache keeps its results in.
    """

    @abstractmethod
    def objects(self) -> ObjectStore:
        """The object store the media are written to."""

    @staticmethod
    def media_name(prefix: str, sha: str, ext: str) -> str:
        parts = [p for p in prefix.split("/") if p]
        if any(p in (".", "..") for p in parts):
            raise ValueError(f"invalid media prefix {prefix!r}")
        return "/".join([*parts, f"{sha}.{ext}"])

    def put_bytes(self, data: bytes, *, prefix: str, ext: str) -> str:
        """Store ``data`` under ``prefix`` and return its URI (idempotent for identical content)."""
        store, name = self.objects(), self.media_name(prefix, sha256_hex(data), ext)
        store.put(name, data)  # same content, same name: an existing file is left alone
        return store.uri(name)

    def put_file(self, path: Path, *, prefix: str, ext: str, sha256: str | None = None) -> str:
        """Move a finished local file into the store and return its URI."""
        store, name = self.objects(), self.media_name(prefix, sha256 or file_sha256(path), ext)
        store.put_file(name, path)
        return store.uri(name)

    @abstractmethod
    def read_bytes(self, uri: str) -> bytes: ...

    @abstractmethod
    def scratch_dir(self) -> Path:
        """A local directory for work files (e.g. a video being encoded) before ``put_file``."""

    @abstractmethod
    def local_path(self, uri: str) -> Path | None:
        """A local filesystem path for ``uri`` if the backend has one (for metadata and exports)."""


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class LocalMediaStore(MediaStore):
    """Media on the local filesystem under ``root``: written to a temporary file, fsynced, hard-linked into
    place (never replacing a file), folder fsynced (:class:`~media_routes.lib.object_store.LocalObjectStore`)."""

    root: str

    def _root(self) -> Path:
        return Path(self.root).expanduser().resolve()

    def objects(self) -> LocalObjectStore:
        return LocalObjectStore(self._root())

    def read_bytes(self, uri: str) -> bytes:
        path = self.local_path(uri)
        if path is None:
            raise ValueError(f"{uri!r} is not a local media URI")
        return path.read_bytes()

    def scratch_dir(self) -> Path:
        d = self._root() / ".scratch"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def local_path(self, uri: str) -> Path | None:
        if not uri.startswith("file://"):
            return None
        from urllib.parse import unquote, urlparse

        return Path(unquote(urlparse(uri).path))


class CampaignCatalog(dg.ConfigurableResource):
    """Loads and validates campaign specs from ``campaigns_dir/<id>/campaign.yaml``."""

    campaigns_dir: str

    def spec_path(self, campaign_id: str) -> Path:
        if not SLUG_RE.fullmatch(campaign_id):
            raise dg.Failure(description=f"{campaign_id!r} is not a valid campaign id (a slug)", allow_retries=False)
        return Path(self.campaigns_dir) / campaign_id / SPEC_FILENAME

    def load(self, campaign_id: str) -> Campaign:
        """The validated campaign, or a dg.Failure naming the file, the field and the reason."""
        path = self.spec_path(campaign_id)
        if not path.is_file():
            raise dg.Failure(
                description=f"campaign {campaign_id!r}: no spec at {path}",
                metadata={"spec_path": dg.MetadataValue.path(str(path))},
                allow_retries=False,
            )
        try:
            return load_campaign(path)
        except SpecError as exc:
            raise dg.Failure(
                description=f"campaign {campaign_id!r} has an invalid spec:\n{exc}",
                metadata={"spec_path": dg.MetadataValue.path(str(path)), "problems": len(exc.problems)},
                allow_retries=False,
            ) from None
