"""Tests for camera-move rendering and MP4 encoding."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from media_routes.engine.motion import (
    CAMERA_MOVES,
    encode_mp4,
    frame_transforms,
    parallax_transforms,
    probe_mp4,
    render_frames,
)

OUT = (320, 180)
FPS = 12
DURATION = 1.0


def _still(w: int = 640, h: int = 360) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([30 + 190 * xx / w, 200 - 150 * yy / h, 90 + 60 * np.sin(xx / 40)], axis=-1)
    img = np.ascontiguousarray(img)
    cv2.circle(img, (w // 2, h // 2), h // 5, (230, 60, 60), -1)
    cv2.rectangle(img, (w // 10, h // 10), (w // 4, h // 3), (250, 250, 250), 4)
    return np.clip(img, 0, 255).astype(np.uint8)


def _mask(w: int = 640, h: int = 360) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    cv2.circle(m, (w // 2, h // 2), h // 5, 255, -1)
    return m


def _decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b) ** 2).mean())
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


@pytest.fixture(scope="module")
def push_in_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("clip") / "push_in.mp4"
    frames = render_frames(_still(), OUT, duration_s=DURATION, fps=FPS, camera="push_in", strength=0.25)
    stats = encode_mp4(frames, path, fps=FPS, size=OUT)
    return path, stats


def test_probe_reports_h264_yuv420p(push_in_clip: tuple[Path, dict]) -> None:
    path, stats = push_in_clip
    info = probe_mp4(path)
    assert info["codec"] == "h264"
    assert info["pix_fmt"] == "yuv420p"
    assert (info["width"], info["height"]) == OUT
    assert info["fps"] == pytest.approx(FPS)
    assert info["frames"] == round(DURATION * FPS) == stats["frames"]
    assert info["duration_s"] == pytest.approx(DURATION, abs=1.5 / FPS)
    assert stats["bytes"] == path.stat().st_size > 0
    assert stats["encode_s"] >= 0


def test_faststart_moov_before_mdat(push_in_clip: tuple[Path, dict]) -> None:
    data = push_in_clip[0].read_bytes()
    assert 0 <= data.find(b"moov") < data.find(b"mdat")


def test_no_temp_file_left(push_in_clip: tuple[Path, dict]) -> None:
    path = push_in_clip[0]
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_first_frame_matches_still_and_push_in_zooms(push_in_clip: tuple[Path, dict]) -> None:
    frames = _decode(push_in_clip[0])
    still = _still()
    ref = cv2.resize(still, OUT, interpolation=cv2.INTER_AREA)
    assert _psnr(frames[0], ref) > 30
    # The last frame is the centre crop of the still zoomed by 1 + strength.
    z = 1.25
    cw, ch = 640 / z, 360 / z
    x0, y0 = (640 - cw) / 2, (360 - ch) / 2
    crop = still[round(y0) : round(y0 + ch), round(x0) : round(x0 + cw)]
    zoomed = cv2.resize(crop, OUT, interpolation=cv2.INTER_AREA)
    assert _psnr(frames[-1], zoomed) > 28
    assert _psnr(frames[-1], zoomed) > _psnr(frames[-1], ref) + 3


def test_encode_is_reproducible(tmp_path: Path) -> None:
    frames = list(render_frames(_still(), OUT, duration_s=0.5, fps=FPS, camera="pan_left", strength=0.2))
    encode_mp4(frames, tmp_path / "a.mp4", fps=FPS, size=OUT)
    encode_mp4(frames, tmp_path / "b.mp4", fps=FPS, size=OUT)
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()


@pytest.mark.parametrize("size", [(321, 180), (320, 181)])
def test_odd_size_raises(tmp_path: Path, size: tuple[int, int]) -> None:
    frames = render_frames(_still(), size, duration_s=0.25, fps=FPS, camera="push_in", strength=0.1)
    with pytest.raises(ValueError, match="even"):
        encode_mp4(frames, tmp_path / "odd.mp4", fps=FPS, size=size)
    assert list(tmp_path.iterdir()) == []


def test_failed_encode_leaves_no_files(tmp_path: Path) -> None:
    def bad_frames():
        yield np.zeros((180, 320, 3), np.uint8)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        encode_mp4(bad_frames(), tmp_path / "x.mp4", fps=FPS, size=OUT)
    assert list(tmp_path.iterdir()) == []


def test_parallax_with_mask(tmp_path: Path) -> None:
    still = np.full((360, 640, 3), 110, np.uint8)
    still[::16] = 90  # some background texture
    cv2.circle(still, (320, 200), 60, (230, 40, 40), -1)  # subject: red disc
    cv2.rectangle(still, (150, 40), (220, 100), (250, 250, 250), -1)  # background marker: white box
    mask = np.zeros((360, 640), np.uint8)
    cv2.circle(mask, (320, 200), 60, 255, -1)
    frames = list(
        render_frames(still, OUT, duration_s=DURATION, fps=FPS, camera="parallax", strength=0.3, subject_mask=mask)
    )
    assert len(frames) == 12 and frames[0].shape == (180, 320, 3)

    def cx(f: np.ndarray, cond: np.ndarray) -> float:
        return float(np.nonzero(cond)[1].mean())

    # The subject travels further than the background, so it appears nearer.
    red = [cx(f, (f[..., 0] > 180) & (f[..., 1] < 90)) for f in (frames[0], frames[-1])]
    white = [cx(f, f.min(axis=2) > 220) for f in (frames[0], frames[-1])]
    assert abs(red[1] - red[0]) > 2 * abs(white[1] - white[0]) > 0
    # No ghost of the subject is left where it started: the clean plate shows background there.
    first_red = (frames[0][..., 0] > 180) & (frames[0][..., 1] < 90)
    last_red = (frames[-1][..., 0] > 180) & (frames[-1][..., 1] < 90)
    assert first_red.sum() == pytest.approx(last_red.sum(), rel=0.25)
    stats = encode_mp4(iter(frames), tmp_path / "p.mp4", fps=FPS, size=OUT)
    assert probe_mp4(tmp_path / "p.mp4")["frames"] == stats["frames"] == 12


def test_parallax_without_mask_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="media_routes.engine.motion"):
        frames = list(render_frames(_still(), OUT, duration_s=0.5, fps=FPS, camera="parallax", strength=0.2))
    assert "falling back to push_in" in caplog.text
    push = list(render_frames(_still(), OUT, duration_s=0.5, fps=FPS, camera="push_in", strength=0.2))
    assert all(np.array_equal(a, b) for a, b in zip(frames, push, strict=True))


@pytest.mark.parametrize("camera", CAMERA_MOVES)
def test_transforms_stay_inside_the_still(camera: str) -> None:
    src, out = (2160, 3840), (1080, 1920)
    mats = (
        parallax_transforms(48, 0.3, src, out)[0]
        if camera == "parallax"
        else frame_transforms(48, camera, 0.3, src, out)
    )
    assert len(mats) == 48
    corners = np.array([[0, 0], [out[0] - 1, 0], [0, out[1] - 1], [out[0] - 1, out[1] - 1]], np.float64)
    for m in mats:
        inv = cv2.invertAffineTransform(m)
        pts = corners @ inv[:, :2].T + inv[:, 2]
        assert (pts >= -0.5 - 1e-6).all() and (pts[:, 0] <= src[0] - 0.5 + 1e-6).all()
        assert (pts[:, 1] <= src[1] - 0.5 + 1e-6).all()


def test_pan_directions_and_ease() -> None:
    src, out = (640, 360), (320, 180)
    left = frame_transforms(25, "pan_left", 0.2, src, out)
    right = frame_transforms(25, "pan_right", 0.2, src, out)
    # Translation of the content: pan_left slides the content right, pan_right slides it left.
    assert left[-1][0, 2] > left[0][0, 2]
    assert right[-1][0, 2] < right[0][0, 2]
    steps = np.diff([m[0, 2] for m in left])
    assert steps[0] < steps[12] and steps[-1] < steps[12]  # ease-in-out


def test_cover_crop_on_aspect_mismatch() -> None:
    frames = list(render_frames(_still(640, 400), OUT, duration_s=0.25, fps=FPS, camera="push_in", strength=0.1))
    assert all(f.shape == (180, 320, 3) for f in frames)


def test_bad_camera_raises() -> None:
    with pytest.raises(ValueError, match="camera"):
        render_frames(_still(), OUT, duration_s=1, fps=FPS, camera="orbit", strength=0.1)
