"""The S3 media store (dagster-aws S3Resource) against moto's S3 server on 127.0.0.1, and the whole
graph writing its media there, chosen by environment variables alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import dagster as dg
import pytest
from dagster_aws.s3 import S3Resource
from moto.server import ThreadedMotoServer

from media_routes.defs.s3_store import S3MediaStore, split_s3_uri
from media_routes.lib.imaging import sha256_hex
from media_routes.lineage import trace
from media_routes.pipeline import materialize_stages, plan_runs, register_campaigns

BUCKET = "media-routes-test"


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=url, region_name="us-east-1").create_bucket(Bucket=BUCKET)
    try:
        yield url
    finally:
        server.stop()


def _objects(url: str) -> dict[str, bytes]:
    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    return {k: client.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in keys}


@pytest.mark.deployment
def test_content_addressed_write_once_and_read_back(s3_endpoint: str, tmp_path: Path) -> None:
    store = S3MediaStore(
        s3=S3Resource(endpoint_url=s3_endpoint, region_name="us-east-1"), bucket=BUCKET, scratch=str(tmp_path)
    )
    uri = store.put_bytes(b"pixels", prefix="base_composition/shoe", ext="png")
    assert uri == f"s3://{BUCKET}/media/base_composition/shoe/{sha256_hex(b'pixels')}.png"
    assert store.put_bytes(b"pixels", prefix="base_composition/shoe", ext="png") == uri  # idempotent
    assert store.read_bytes(uri) == b"pixels"
    video = store.scratch_dir() / "clip.mp4"
    video.write_bytes(b"mp4 bytes")
    vuri = store.put_file(video, prefix="motion/shoe/9x16", ext="mp4")
    assert not video.exists() and store.read_bytes(vuri) == b"mp4 bytes"
    assert sorted(_objects(s3_endpoint)) == sorted(split_s3_uri(u)[1] for u in (uri, vuri))
    assert store.local_path(uri) is None
    with pytest.raises(ValueError, match="invalid media prefix"):
        store.put_bytes(b"x", prefix="../escape", ext="png")


@pytest.mark.deployment
def test_whole_graph_writes_its_media_to_s3_by_configuration(
    s3_endpoint: str, campaigns_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from media_routes.definitions import build_resources

    monkeypatch.setenv("MEDIA_ROUTES_MEDIA_STORE", "s3")
    monkeypatch.setenv("MEDIA_ROUTES_S3_BUCKET", BUCKET)
    monkeypatch.setenv("MEDIA_ROUTES_S3_PREFIX", "prod/media")
    monkeypatch.setenv("MEDIA_ROUTES_S3_ENDPOINT_URL", s3_endpoint)
    resources = build_resources(campaigns_dir=str(campaigns_dir), media_root=str(tmp_path / "media"))
    assert isinstance(resources["media_store"], S3MediaStore)
    with dg.instance_for_test() as instance:
        register_campaigns(instance, ["shoe"])
        for run in plan_runs("shoe", ["9x16"]):
            assert materialize_stages(instance, resources, run.stages, run.partition).success
        rows = trace(instance, "shoe")
    objects = _objects(s3_endpoint)
    assert len(rows) == 6
    for row in rows:
        bucket, key = split_s3_uri(row["uri"])
        assert bucket == BUCKET and key.startswith(f"prod/media/{row['stage']}/shoe")
        assert sha256_hex(objects[key]) == row["output_hash"]  # content-addressed, whole
        assert key.endswith(f"{row['output_hash']}.{'mp4' if row['stage'] == 'motion' else 'png'}")
    assert not (tmp_path / "media").exists() or not any(p.suffix == ".png" for p in (tmp_path / "media").rglob("*"))
    # the stages' outputs (what the next stage loads) are in the bucket too, so a run on another machine finds them
    io_keys = [k for k in objects if k.startswith("prod/media/dagster-io/")]
    for stage, partition in (("base_composition", "shoe"), ("k_upscale", "shoe"), ("motion", "shoe/9x16")):
        assert f"prod/media/dagster-io/{stage}/{partition}" in io_keys, (stage, io_keys)


def test_unknown_store_kind_or_missing_bucket_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from media_routes.defs.s3_store import media_store_from_env

    monkeypatch.setenv("MEDIA_ROUTES_MEDIA_STORE", "ftp")
    with pytest.raises(ValueError, match="MEDIA_ROUTES_MEDIA_STORE='ftp': choose 'local' or 's3'"):
        media_store_from_env(str(tmp_path))
    monkeypatch.setenv("MEDIA_ROUTES_MEDIA_STORE", "s3")
    monkeypatch.delenv("MEDIA_ROUTES_S3_BUCKET", raising=False)
    with pytest.raises(ValueError, match="needs MEDIA_ROUTES_S3_BUCKET"):
        media_store_from_env(str(tmp_path))
