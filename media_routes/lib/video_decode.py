"""The reference decode: Y'CbCr video frames to R'G'B' as the standard defines it, as a viewer's screen shows them.

swscale's ``reformat(format="rgb24", src_colorspace="ITU709", src_color_range="MPEG")`` (its fast fixed-point
conversion) comes out 1-2 levels darker than an exact BT.709 decode (measured in test_video_decode.py). Every
video measurement of the project (brand colour, drift, frame gates) and the motion stage's chroma
pre-compensation read frames through :func:`reference_rgb` instead:

* the planes are read from the decoded frame as they are (no swscale),
* 4:2:0 chroma is upsampled bilinearly at the positions H.264 uses when the stream does not say otherwise
  (ITU-T H.264 Annex E, ``chroma_sample_loc_type`` 0, as MPEG-2: horizontally co-sited with the even luma
  columns, vertically halfway between two luma rows),
* the matrix and the range scaling come from colour-science (``colour.YCbCr_to_RGB``, Recommendation ITU-R
  BT.709 weights, legal/limited range unless the frame says full), evaluated once per (weights, range) and applied
  as the affine map it is,
* the result is R'G'B' in [0, 1], quantised once to 8 bits with rounding.

The weights follow the frame's ``colorspace`` tag: BT.601 (``smpte170m``, ``bt470bg``) when tagged so, BT.709 for
BT.709 and for untagged frames (what browsers assume for HD video).
"""

from __future__ import annotations

import functools
import warnings

import av
import cv2
import numpy as np

with warnings.catch_warnings():  # colour-science warns at import that matplotlib (plotting) is absent
    warnings.simplefilter("ignore")
    import colour

# AVColorSpace values (libavutil/pixfmt.h) whose matrix is BT.601; everything else, untagged included, is BT.709
_BT601_SPACES = {5, 6}  # AVCOL_SPC_BT470BG, AVCOL_SPC_SMPTE170M
_FULL_RANGE = 2  # AVCOL_RANGE_JPEG
_PLANAR_420 = {"yuv420p": False, "yuvj420p": True}  # pix_fmt -> full range implied by the format itself

WEIGHTS = {"BT.709": "ITU-R BT.709", "BT.601": "ITU-R BT.601"}


@functools.cache
def ycbcr_affine(weights: str = "BT.709", full_range: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(M, offset)`` with ``R'G'B' = Y'CbCr_codes @ M.T + offset`` (8-bit code values in, [0, 1] out), taken from
    ``colour.YCbCr_to_RGB``: the conversion is affine, so its value at zero and at the unit vectors gives it whole."""
    k = colour.WEIGHTS_YCBCR[WEIGHTS[weights]]

    def convert(ycbcr: np.ndarray) -> np.ndarray:
        return np.asarray(
            colour.YCbCr_to_RGB(
                ycbcr,
                K=k,
                in_bits=8,
                in_legal=not full_range,
                in_int=True,
                out_bits=8,
                out_legal=False,
                out_int=False,
            ),
            dtype=np.float64,
        )

    offset = convert(np.zeros(3))
    m = np.stack([convert(np.eye(3)[i]) - offset for i in range(3)], axis=1)
    return m, offset


# luma pixel (x, y) reads the 4:2:0 chroma plane at (x / 2, (y - 0.5) / 2): H.264's default siting (type 0)
_CHROMA_SITING = np.array([[0.5, 0.0, 0.0], [0.0, 0.5, -0.25]], dtype=np.float32)


def upsample_chroma_420(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear 4:2:0 -> 4:4:4 (float32) for chroma sited as H.264's default (type 0): sample ``(i, j)`` of the
    chroma plane sits at luma column ``2j`` and between luma rows ``2i`` and ``2i + 1``, so luma pixel ``(y, x)``
    reads the chroma plane at ``((y - 0.5) / 2, x / 2)``. Edges repeat. ``plane`` may carry channels. The
    fractions are 0, 1/4, 1/2 and 3/4, exact in OpenCV's 1/32 interpolation steps."""
    return cv2.warpAffine(
        plane.astype(np.float32),
        _CHROMA_SITING,
        (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )


def _plane(frame: av.VideoFrame, index: int) -> np.ndarray:
    plane = frame.planes[index]
    rows = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
    return rows[:, : plane.width]


def frame_matrix(frame: av.VideoFrame) -> tuple[str, bool]:
    """The weights and range a viewer applies to ``frame``: from its tags, BT.709 limited when untagged."""
    full = _PLANAR_420.get(frame.format.name, False) or int(frame.color_range or 0) == _FULL_RANGE
    weights = "BT.601" if int(frame.colorspace or 0) in _BT601_SPACES else "BT.709"
    return weights, full


@functools.cache
def _chroma_matrix(weights: str, full: bool, scale: float) -> tuple[float, np.ndarray]:
    """Y' enters R', G' and B' with one coefficient (every Y'CbCr matrix has that form), so the picture is
    ``k_y * Y' + upsample(C @ [Cb, Cr, 1])``: the chroma part and the offset are computed at chroma resolution."""
    m, offset = ycbcr_affine(weights, full)
    if not np.allclose(m[:, 0], m[0, 0], rtol=0, atol=1e-12):
        raise AssertionError(f"the {weights} matrix gives Y' different weights per channel: {m[:, 0]}")
    return float(m[0, 0] * scale), (np.hstack([m[:, 1:], offset[:, None]]) * scale).astype(np.float32)


def _decode(frame: av.VideoFrame, scale: float) -> np.ndarray:
    if frame.format.name not in _PLANAR_420:
        # other layouts (4:2:2, 4:4:4, 10-bit) are brought to 8-bit 4:2:0 planes first; no matrix is applied there
        frame = frame.reformat(format="yuv420p")
    k_y, chroma_matrix = _chroma_matrix(*frame_matrix(frame), scale)
    h, w = frame.height, frame.width
    chroma = cv2.transform(cv2.merge([_plane(frame, 1), _plane(frame, 2)]).astype(np.float32), chroma_matrix)
    luma = cv2.cvtColor(np.ascontiguousarray(_plane(frame, 0)[:h, :w]), cv2.COLOR_GRAY2RGB).astype(np.float32)
    return cv2.scaleAdd(luma, k_y, upsample_chroma_420(chroma, h, w))


def reference_float(frame: av.VideoFrame) -> np.ndarray:
    """R'G'B' float32 in [0, 1], shape (height, width, 3), decoded as the module docstring says."""
    rgb = _decode(frame, 1.0)
    return np.clip(rgb, 0.0, 1.0, out=rgb)


def reference_rgb(frame: av.VideoFrame) -> np.ndarray:
    """:func:`reference_float` quantised to uint8, rounded to nearest (the 8-bit picture a viewer gets)."""
    rgb = _decode(frame, 255.0)
    cv2.max(rgb, 0.0, dst=rgb)
    return cv2.convertScaleAbs(rgb)  # saturates at 255; values are >= 0, so the absolute value changes nothing


def swscale_rgb(frame: av.VideoFrame) -> np.ndarray:
    """swscale's conversion (what the project measured through before the reference decode), kept to compare."""
    rgb = frame.reformat(format="rgb24", src_colorspace="ITU709", src_color_range="MPEG", threads=1)
    return rgb.to_ndarray()
