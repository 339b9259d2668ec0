"""The one write-once object store (media_routes/lib/object_store.py) under the media store and the call cache:
the same contract on local files and on S3 (moto's in-process mock: no server, no network)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from media_routes.credits.backends import LocalBlobStore, S3BlobStore
from media_routes.defs.resources import LocalMediaStore
from media_routes.lib.object_store import LocalObjectStore, ObjectStore, S3ObjectStore

BUCKET = "objects"


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "local":
        yield LocalObjectStore(tmp_path / "store")
        return
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield S3ObjectStore(BUCKET, "root/prefix", client=client)


def test_a_name_is_written_once_and_never_overwritten(store: ObjectStore) -> None:
    assert store.get("a/b.bin") is None and not store.exists("a/b.bin")
    assert store.put("a/b.bin", b"first") is True
    assert store.put("a/b.bin", b"second") is False  # the first bytes stored win
    assert store.get("a/b.bin") == b"first" and store.exists("a/b.bin")
    assert store.modified("a/b.bin").tzinfo is not None
    store.delete("a/b.bin")
    assert store.get("a/b.bin") is None
    store.delete("a/b.bin")  # deleting nothing is fine


def test_put_file_moves_the_file_in_and_leaves_no_work_file(store: ObjectStore, tmp_path: Path) -> None:
    work = tmp_path / "work.mp4"
    work.write_bytes(b"clip")
    assert store.put_file("v/clip.mp4", work) is True
    assert not work.exists() and store.get("v/clip.mp4") == b"clip"
    again = tmp_path / "again.mp4"
    again.write_bytes(b"other")
    assert store.put_file("v/clip.mp4", again) is False  # not replaced, and the work file is still removed
    assert not again.exists() and store.get("v/clip.mp4") == b"clip"


def test_under_is_the_same_store_seen_from_a_folder(store: ObjectStore) -> None:
    sub = store.under("kept")
    sub.put("x", b"1")
    assert store.get("kept/x") == b"1" and sub.uri("x") == store.uri("kept/x")


@pytest.mark.parametrize("name", ["../escape", "a/../../b", "./x/..", ""])
def test_a_name_cannot_leave_the_root(store: ObjectStore, name: str) -> None:
    with pytest.raises(ValueError, match="invalid object name"):
        store.put(name, b"x")


def test_local_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put("a/b", b"x")
    store.put("a/b", b"y")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b"]
    assert store.uri("a/b") == (tmp_path / "a" / "b").resolve().as_uri()


class _Flaky:
    """A client whose first ``fails`` puts answer 503 (then it stores), counting calls."""

    def __init__(self, inner: Any, fails: int) -> None:
        self.inner, self.fails, self.puts = inner, fails, 0

    def head_object(self, **kw: Any) -> Any:
        return self.inner.head_object(**kw)

    def get_object(self, **kw: Any) -> Any:
        return self.inner.get_object(**kw)

    def put_object(self, **kw: Any) -> Any:
        from botocore.exceptions import ClientError

        self.puts += 1
        if self.puts <= self.fails:
            raise ClientError({"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "PutObject")
        return self.inner.put_object(**kw)


def test_media_and_call_cache_share_the_store_and_its_retry_rule(tmp_path: Path) -> None:
    """The media store and the call cache write through the same classes: a transient 503 is retried for both."""
    media = LocalMediaStore(root=str(tmp_path / "media"))
    assert isinstance(media.objects(), LocalObjectStore)
    assert isinstance(LocalBlobStore(tmp_path / "cache").objects, LocalObjectStore)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        flaky = _Flaky(client, fails=2)
        blobs = S3BlobStore(BUCKET, client=flaky, write_budget_s=10)
        assert isinstance(blobs.objects, S3ObjectStore)
        blobs.write_once("ab" * 32, b"paid result")
        assert flaky.puts == 3 and blobs.read("ab" * 32) == b"paid result"
        refused = _Flaky(client, fails=100)
        with pytest.raises(Exception, match="SlowDown"):
            S3ObjectStore(BUCKET, client=refused, write_budget_s=0.2).put("m/x.png", b"x")
