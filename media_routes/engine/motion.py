"""Camera moves over a still, rendered lazily and encoded to H.264 MP4 with PyAV.

Method (classical image processing, no learned model):

* **Transforms.** Every frame is one 2x3 affine from the still (full resolution) straight to the output
  size. The base transform cover-fits the still to the output (uniform scale, centred, cropping any
  small aspect mismatch). A move then changes zoom ``z`` and the view centre with ease-in-out timing
  ``e(t) = (1 - cos(pi t)) / 2``:

  * ``push_in``: ``z`` 1 -> 1 + strength; ``pull_out``: 1 + strength -> 1 (both centred);
  * ``pan_left`` / ``pan_right``: ``z = 1 + strength`` throughout, which leaves exactly ``strength`` view
    widths of travel, and the view window travels across it (``pan_left``: the view moves toward the
    left of the still, so the content slides right);
  * ``parallax``: a lateral dolly with a slight push-in. The background layer travels
    ``PARALLAX_BG_RATIO`` of the subject layer's distance and zooms less, so the subject appears
    nearer. The background is a *clean plate*: the dilated subject region is filled once with
    ``cv2.inpaint`` (Telea) at low resolution and upsampled, so whatever the subject uncovers while it
    moves is plausible background rather than a ghost of the subject. The subject is composited over it
    with its (warped, soft) mask. Without a subject mask, parallax falls back to ``push_in`` and logs a
    warning.

* **Sampling.** ``cv2.warpAffine`` with bilinear interpolation (sub-pixel, so slow moves do not judder).
  When the still is scaled down by more than ~25 % it is low-pass filtered once beforehand (Gaussian,
  sigma from the smallest scale) so the bilinear sampling does not alias.
* **Laziness.** ``render_frames`` is a generator: only the still (and for parallax the clean plate and
  mask) stay in memory, never the clip.
* **Encoding.** ``encode_mp4`` uses libx264 / yuv420p with BT.709 matrix and limited range (tagged in the
  stream), fixed thread count for reproducible bytes, ``+faststart`` so the ``moov`` atom precedes
  ``mdat``, and writes to a temporary file in the target directory that is atomically renamed.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import TypedDict

import av
import cv2
import numpy as np

from media_routes.lib.video_decode import reference_rgb

log = logging.getLogger(__name__)

CAMERA_MOVES = ("push_in", "pull_out", "pan_left", "pan_right", "parallax")
PARALLAX_BG_RATIO = 0.35  # background travel / subject travel
PARALLAX_TRAVEL = 0.5  # subject travel in view widths per unit strength
PLATE_LONG_SIDE = 512  # clean plate is inpainted at this long side
ENCODE_THREADS = 2


def ease_in_out(t: float) -> float:
    return 0.5 - 0.5 * math.cos(math.pi * min(max(t, 0.0), 1.0))


def _affine(scale: float, cx: float, cy: float, out_size: tuple[int, int]) -> np.ndarray:
    """Map the still point (cx, cy) to the output centre with uniform ``scale`` (pixel-centre coords)."""
    ow, oh = out_size
    return np.array([[scale, 0.0, (ow - 1) / 2 - scale * cx], [0.0, scale, (oh - 1) / 2 - scale * cy]], np.float64)


def _check(camera: str, strength: float, src_size: tuple[int, int], out_size: tuple[int, int]) -> None:
    if camera not in CAMERA_MOVES:
        raise ValueError(f"unknown camera move {camera!r}; expected one of {', '.join(CAMERA_MOVES)}")
    if not 0.0 <= strength <= 2.0:
        raise ValueError(f"strength must be in [0, 2], got {strength}")
    if min(src_size) <= 0 or min(out_size) <= 0:
        raise ValueError(f"sizes must be positive, got src {src_size} out {out_size}")


def _times(n_frames: int) -> list[float]:
    if n_frames <= 0:
        raise ValueError(f"n_frames must be positive, got {n_frames}")
    return [ease_in_out(i / (n_frames - 1)) if n_frames > 1 else 0.0 for i in range(n_frames)]


def parallax_transforms(
    n_frames: int, strength: float, src_size: tuple[int, int], out_size: tuple[int, int]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(background, subject) affines per frame for the parallax move."""
    _check("parallax", strength, src_size, out_size)
    sw, sh = src_size
    s0 = max(out_size[0] / sw, out_size[1] / sh)
    cx, cy = (sw - 1) / 2, (sh - 1) / 2
    z_start = 1.0 + strength * PARALLAX_TRAVEL  # margin for the subject's travel
    bg, fg = [], []
    for e in _times(n_frames):
        view_w = out_size[0] / (s0 * z_start)  # view width in still pixels
        travel = strength * PARALLAX_TRAVEL * view_w
        z_fg = z_start * (1.0 + 0.10 * strength * e)
        z_bg = z_start * (1.0 + 0.04 * strength * e)
        fg.append(_affine(s0 * z_fg, cx + (e - 0.5) * travel, cy, out_size))
        bg.append(_affine(s0 * z_bg, cx + (e - 0.5) * travel * PARALLAX_BG_RATIO, cy, out_size))
    return bg, fg


def frame_transforms(
    n_frames: int, camera: str, strength: float, src_size: tuple[int, int], out_size: tuple[int, int]
) -> list[np.ndarray]:
    """2x3 affine (still -> output pixel coordinates) for each frame.

    ``src_size`` and ``out_size`` are (width, height). For ``parallax`` these are the background
    (camera) transforms; the subject layer's come from :func:`parallax_transforms`.
    """
    _check(camera, strength, src_size, out_size)
    if camera == "parallax":
        return parallax_transforms(n_frames, strength, src_size, out_size)[0]
    sw, sh = src_size
    s0 = max(out_size[0] / sw, out_size[1] / sh)  # cover fit
    cx, cy = (sw - 1) / 2, (sh - 1) / 2
    out = []
    for e in _times(n_frames):
        if camera == "push_in":
            out.append(_affine(s0 * (1.0 + strength * e), cx, cy, out_size))
        elif camera == "pull_out":
            out.append(_affine(s0 * (1.0 + strength * (1.0 - e)), cx, cy, out_size))
        else:
            z = 1.0 + strength
            view_w = out_size[0] / (s0 * z)
            half_range = (sw - view_w) / 2  # centre may move this far either way and stay inside
            sign = -1.0 if camera == "pan_left" else 1.0
            out.append(_affine(s0 * z, cx + sign * (2.0 * e - 1.0) * half_range, cy, out_size))
    return out


def _prefilter(image: np.ndarray, min_scale: float) -> np.ndarray:
    """Gaussian low-pass before bilinear downsampling by ``min_scale`` (identity when mild)."""
    if min_scale >= 0.75:
        return image
    sigma = 0.5 * math.sqrt(1.0 / (min_scale * min_scale) - 1.0)
    return cv2.GaussianBlur(image, (0, 0), sigma)


def clean_plate(still: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The still with the (dilated) subject removed by low-resolution Telea inpainting."""
    h, w = still.shape[:2]
    scale = min(1.0, PLATE_LONG_SIDE / max(h, w))
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    small = cv2.resize(still, (sw, sh), interpolation=cv2.INTER_AREA)
    small_mask = cv2.resize(mask, (sw, sh), interpolation=cv2.INTER_AREA)
    k = max(3, round(0.02 * max(sw, sh)) | 1)
    hole = cv2.dilate((small_mask > 16).astype(np.uint8) * 255, np.ones((k, k), np.uint8))
    filled = cv2.inpaint(small, hole, max(3, k), cv2.INPAINT_TELEA)
    plate_fill = cv2.resize(filled, (w, h), interpolation=cv2.INTER_CUBIC)
    # Feathered full-resolution hole: outside it the plate is the still itself.
    hole_full = cv2.resize(hole, (w, h), interpolation=cv2.INTER_LINEAR)
    a = cv2.GaussianBlur(hole_full, (0, 0), max(1.0, k / scale / 4)).astype(np.float32)[..., None] / 255.0
    return np.rint(still * (1.0 - a) + plate_fill * a).astype(np.uint8)


class CameraMove(TypedDict):
    """The camera keyword arguments of :func:`render_frames` and :func:`label_frames` (a spec's ``motion``)."""

    duration_s: float
    fps: int
    camera: str
    strength: float


def render_frames(
    still: np.ndarray,
    out_size: tuple[int, int],
    *,
    duration_s: float,
    fps: int,
    camera: str,
    strength: float,
    subject_mask: np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    """Lazily yield ``round(duration_s * fps)`` uint8 RGB frames of size ``out_size`` (width, height)."""
    if still.dtype != np.uint8 or still.ndim != 3 or still.shape[2] != 3:
        raise ValueError(f"expected uint8 (H, W, 3) still, got {still.dtype} {still.shape}")
    if fps <= 0 or duration_s <= 0:
        raise ValueError(f"duration_s and fps must be positive, got {duration_s}, {fps}")
    n = max(1, round(duration_s * fps))
    h, w = still.shape[:2]
    src_size = (w, h)
    _check(camera, strength, src_size, out_size)
    if subject_mask is not None and subject_mask.shape[:2] != (h, w):
        raise ValueError(f"subject_mask shape {subject_mask.shape} does not match still {(h, w)}")
    if camera == "parallax" and subject_mask is None:
        log.warning("parallax camera move needs a subject mask; falling back to push_in")
        camera = "push_in"
    return _frames(still, out_size, n, camera, strength, subject_mask)


def _frames(
    still: np.ndarray,
    out_size: tuple[int, int],
    n: int,
    camera: str,
    strength: float,
    subject_mask: np.ndarray | None,
) -> Iterator[np.ndarray]:
    h, w = still.shape[:2]
    flags = cv2.INTER_LINEAR
    border = cv2.BORDER_REPLICATE
    if camera != "parallax":
        mats = frame_transforms(n, camera, strength, (w, h), out_size)
        src = _prefilter(still, min(m[0, 0] for m in mats))
        for m in mats:
            yield cv2.warpAffine(src, m, out_size, flags=flags, borderMode=border)
        return

    assert subject_mask is not None
    bg_mats, fg_mats = parallax_transforms(n, strength, (w, h), out_size)
    min_scale = min(m[0, 0] for m in bg_mats + fg_mats)
    plate = _prefilter(clean_plate(still, subject_mask), min_scale)
    fg_src = _prefilter(still, min_scale)
    mask_src = _prefilter(subject_mask, min_scale)
    for mb, mf in zip(bg_mats, fg_mats, strict=True):
        bg = cv2.warpAffine(plate, mb, out_size, flags=flags, borderMode=border)
        fg = cv2.warpAffine(fg_src, mf, out_size, flags=flags, borderMode=border)
        a = cv2.warpAffine(mask_src, mf, out_size, flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        alpha = a.astype(np.float32)[..., None] * (1.0 / 255.0)
        frame = bg.astype(np.float32)
        frame += alpha * (fg.astype(np.float32) - frame)
        yield np.rint(frame).astype(np.uint8)


class _WarpFlags(TypedDict):
    """Keyword arguments of ``cv2.warpAffine`` for a nearest-neighbour warp (typed so ``**`` checks)."""

    flags: int
    borderMode: int
    borderValue: int


def label_frames(
    labels: np.ndarray,
    out_size: tuple[int, int],
    *,
    duration_s: float,
    fps: int,
    camera: str,
    strength: float,
    subject_mask: np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    """Carry a label map (e.g. brand colour regions) through the same camera move as the frames.

    Nearest-neighbour warps keep labels discrete. With parallax, labels inside the subject follow the
    subject's transform and the rest follow the background's, as the pixels do in :func:`render_frames`.
    """
    h, w = labels.shape[:2]
    n = max(1, round(duration_s * fps))
    if camera == "parallax" and subject_mask is None:
        camera = "push_in"
    nearest: _WarpFlags = {"flags": cv2.INTER_NEAREST, "borderMode": cv2.BORDER_CONSTANT, "borderValue": 0}
    if camera != "parallax":
        for m in frame_transforms(n, camera, strength, (w, h), out_size):
            yield cv2.warpAffine(labels, m, out_size, **nearest)
        return
    assert subject_mask is not None
    fg_labels = np.where(subject_mask >= 128, labels, 0).astype(np.uint8)
    bg_labels = np.where(subject_mask >= 128, 0, labels).astype(np.uint8)
    for mb, mf in zip(*parallax_transforms(n, strength, (w, h), out_size), strict=True):
        fg = cv2.warpAffine(fg_labels, mf, out_size, **nearest)
        cover = cv2.warpAffine(subject_mask, mf, out_size, **nearest) >= 128
        yield np.where(cover, fg, cv2.warpAffine(bg_labels, mb, out_size, **nearest)).astype(np.uint8)


def decode_frames(path: Path) -> Iterator[np.ndarray]:
    """Decode an MP4 back to RGB uint8 frames as a player honouring its tags shows them: the reference decode
    (``media_routes.lib.video_decode``: BT.709 from the standard via colour-science, chroma interpolated at
    H.264's sample positions), not swscale's fast conversion, which reads 1-2 levels dark."""
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield reference_rgb(frame)


def encode_mp4(
    frames: Iterable[np.ndarray],
    path: Path,
    *,
    fps: int,
    size: tuple[int, int],
    crf: int = 20,
    preset: str = "veryfast",
) -> dict[str, float]:
    """Encode RGB uint8 frames of ``size`` (width, height) to an H.264 MP4 at ``path`` (atomic).

    Returns {"frames", "bytes", "encode_s"}; ``encode_s`` includes time spent pulling frames from a lazy
    iterable.
    """
    width, height = size
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise ValueError(f"yuv420p needs a positive even width and height, got {width}x{height}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    t0 = time.perf_counter()
    count = 0
    try:
        with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height = width, height
            stream.pix_fmt = "yuv420p"
            stream.time_base = Fraction(1, fps)
            stream.options = {"crf": str(crf), "preset": preset}
            cc = stream.codec_context
            cc.thread_count = ENCODE_THREADS
            cc.colorspace = 1  # BT.709 matrix
            cc.color_primaries = 1
            cc.color_trc = 1
            cc.color_range = 1  # limited (MPEG)
            for arr in frames:
                if arr.shape != (height, width, 3) or arr.dtype != np.uint8:
                    raise ValueError(f"frame {count} is {arr.dtype} {arr.shape}, expected uint8 {(height, width, 3)}")
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
                frame = frame.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG", threads=1)
                frame.pts = count
                frame.time_base = Fraction(1, fps)
                for packet in stream.encode(frame):
                    container.mux(packet)
                count += 1
            for packet in stream.encode(None):
                container.mux(packet)
        if count == 0:
            raise ValueError("no frames to encode")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {"frames": count, "bytes": path.stat().st_size, "encode_s": time.perf_counter() - t0}


def probe_mp4(path: Path) -> dict:
    """Decode ``path`` fully: codec, width, height, fps, decoded frame count, pix_fmt, duration_s."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        cc = stream.codec_context
        info: dict = {
            "codec": cc.name,
            "width": cc.width,
            "height": cc.height,
            "fps": float(stream.average_rate) if stream.average_rate else 0.0,
            "pix_fmt": cc.pix_fmt,
        }
        frames = sum(1 for _ in container.decode(stream))
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        else:
            duration = frames / info["fps"] if info["fps"] else 0.0
    info["frames"] = frames
    info["duration_s"] = duration
    return info
