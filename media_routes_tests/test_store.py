"""The local media store: content-addressed, write-once, atomic; PNGs carry an sRGB ICC profile."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from media_routes.defs.resources import LocalMediaStore
from media_routes.lib.imaging import decode_png, encode_png, sha256_hex


def test_png_is_srgb_tagged_and_byte_reproducible() -> None:
    img = np.random.default_rng(0).integers(0, 256, (64, 48, 3), dtype=np.uint8)
    data = encode_png(img)
    assert data == encode_png(img)  # no timestamps anywhere: content hash depends on pixels only
    with Image.open(io.BytesIO(data)) as im:
        icc = im.info.get("icc_profile")
        assert icc
        assert "sRGB" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    assert np.array_equal(decode_png(data), img)


def test_put_bytes_is_content_addressed_and_never_overwrites(tmp_path: Path) -> None:
    store = LocalMediaStore(root=str(tmp_path))
    a, b = b"first version", b"second version"
    uri_a = store.put_bytes(a, prefix="inpaint_fix/c1", ext="png")
    uri_b = store.put_bytes(b, prefix="inpaint_fix/c1", ext="png")
    assert uri_a != uri_b
    pa, pb = store.local_path(uri_a), store.local_path(uri_b)
    assert pa is not None and pb is not None
    assert pa.name == f"{sha256_hex(a)}.png" and pa.parent == tmp_path / "inpaint_fix" / "c1"
    assert store.read_bytes(uri_a) == a and store.read_bytes(uri_b) == b  # the earlier output is intact
    mtime = pa.stat().st_mtime_ns
    assert store.put_bytes(a, prefix="inpaint_fix/c1", ext="png") == uri_a
    assert pa.stat().st_mtime_ns == mtime  # identical content: not rewritten
    assert sorted(p.name for p in pa.parent.iterdir()) == sorted([pa.name, pb.name])  # no temporary files left


def test_put_file_moves_a_finished_file_in(tmp_path: Path) -> None:
    store = LocalMediaStore(root=str(tmp_path / "media"))
    work = store.scratch_dir() / "clip.mp4"
    work.write_bytes(b"\x00\x00\x00 ftypisom fake")
    uri = store.put_file(work, prefix="motion/c1/9x16", ext="mp4")
    assert not work.exists()
    assert store.read_bytes(uri) == b"\x00\x00\x00 ftypisom fake"


@pytest.mark.parametrize("prefix", ["../escape", "a/../../b", "./x/.."])
def test_prefix_cannot_escape_the_root(tmp_path: Path, prefix: str) -> None:
    with pytest.raises(ValueError, match="invalid media prefix"):
        LocalMediaStore(root=str(tmp_path)).put_bytes(b"x", prefix=prefix, ext="png")
