"""Image and video encoding helpers shared by every stage.

Images travel between stages as ``numpy`` arrays: ``uint8``, shape ``(H, W, 3)``, sRGB.
Masks are ``uint8`` ``(H, W)`` with 0 = untouched and 255 = fully inside.
"""

from __future__ import annotations

import base64
import hashlib
import io
import warnings
from functools import lru_cache
from pathlib import Path

import colour
import cv2
import numpy as np
from PIL import Image, ImageCms

# Decompression-bomb guard: anything larger than this many pixels is refused when loading
# user-supplied files (a 4K 9:16 master is 4096 x 7282 = 29.8 MP, well under it).
MAX_INPUT_PIXELS = 24_000_000  # 6000 x 4000; checked from the header, before decoding
MAX_INPUT_BYTES = 64_000_000  # the file itself, checked before it is opened


class ImageLoadError(ValueError):
    """A user-supplied image could not be used (unreadable, too large, wrong mode)."""


@lru_cache(maxsize=1)
def srgb_icc_profile() -> bytes:
    """sRGB ICC profile bytes with a fixed creation date so PNG output is byte-reproducible."""
    raw = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    raw[24:36] = bytes(12)  # ICC header dateTimeNumber: zeroed for determinism
    return bytes(raw)


def encode_png(image: np.ndarray, *, compress_level: int = 3) -> bytes:
    """Encode an RGB/RGBA/L uint8 array as PNG with an embedded sRGB ICC profile.

    Output bytes depend only on the pixels (no timestamps), so they can be content-addressed.
    """
    if image.dtype != np.uint8:
        raise TypeError(f"expected uint8 image, got {image.dtype}")
    pil = Image.fromarray(image)
    buf = io.BytesIO()
    kwargs: dict[str, object] = {"compress_level": compress_level}
    if pil.mode in ("RGB", "RGBA"):
        kwargs["icc_profile"] = srgb_icc_profile()
    pil.save(buf, format="PNG", **kwargs)
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    im: Image.Image  # Image.open gives an ImageFile, convert() a plain Image
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        if im.mode not in ("RGB", "RGBA", "L"):
            im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
        return np.asarray(im).copy()


def load_user_image(path: Path, *, mode: str) -> np.ndarray:
    """Load an image supplied by a campaign (cutout, logo, mask) with a decompression-bomb guard.

    ``mode`` is a Pillow mode ("RGBA", "RGB" or "L"). Raises ImageLoadError with the reason.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            size = Path(path).stat().st_size
            if size > MAX_INPUT_BYTES:
                raise ImageLoadError(f"file is {size:,} bytes, over the {MAX_INPUT_BYTES:,} byte limit")
            with Image.open(path) as im:
                w, h = im.size
                if w * h > MAX_INPUT_PIXELS:
                    raise ImageLoadError(
                        f"image is {w}x{h} = {w * h / 1e6:.1f} MP, over the {MAX_INPUT_PIXELS / 1e6:.0f} MP "
                        "limit (possible decompression bomb)"
                    )
                im.load()
                return np.asarray(im.convert(mode)).copy()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageLoadError(f"refused as a possible decompression bomb: {exc}") from exc
        except FileNotFoundError as exc:
            raise ImageLoadError("file not found") from exc
        except (OSError, SyntaxError) as exc:
            raise ImageLoadError(f"not a readable image: {str(exc)[:300]}") from exc
        except ValueError as exc:  # Pillow: "Decompressed Data Too Large" (text chunks), bad palettes, ...
            raise ImageLoadError(f"refused: {str(exc)[:300]} (metadata or data over Pillow's safety limits)") from exc


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def array_digest(image: np.ndarray) -> str:
    """Content hash of raw pixels (shape and dtype included)."""
    h = hashlib.sha256()
    h.update(f"{image.shape}|{image.dtype}".encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


# The Dagster UI (1.13) renders markdown metadata inline only when it is shorter than 1000 characters;
# longer markdown sits behind a "[Show Markdown]" link. WebP keeps a useful thumbnail under that.
INLINE_MARKDOWN_LIMIT = 1000


def _webp_markdown(image: np.ndarray, max_side: int, quality: int, title: str) -> str:
    pil = Image.fromarray(image[..., :3] if image.ndim == 3 else image).convert("RGB")
    pil.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    pil.save(buf, format="WEBP", quality=quality, method=6)
    return f"![{title}](data:image/webp;base64,{base64.b64encode(buf.getvalue()).decode()})"


def thumbnail_markdown(image: np.ndarray, *, max_side: int = 320, title: str = "preview") -> str:
    """A WebP thumbnail as a markdown data URI (metadata lives in the event log: keep it small)."""
    return _webp_markdown(image, max_side, 70, title)


def inline_thumbnail_markdown(image: np.ndarray, *, title: str = "preview") -> str:
    """The largest WebP thumbnail whose markdown stays under the UI's inline-rendering limit."""
    md = ""
    for side in (160, 128, 112, 96, 80, 64, 48, 32):
        md = _webp_markdown(image, side, 45, title)
        if len(md) < INLINE_MARKDOWN_LIMIT:
            return md
    return md


def to_float(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / 255.0


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """sRGB decoding (IEC 61966-2-1) via colour-science, returned as float32."""
    return np.asarray(colour.models.eotf_sRGB(np.asarray(x, dtype=np.float32)), dtype=np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """sRGB encoding (inverse EOTF) via colour-science, clipped to [0, 1], float32."""
    y = colour.models.eotf_inverse_sRGB(np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0))
    return np.asarray(y, dtype=np.float32)


_F = np.float32


@lru_cache(maxsize=1)
def _srgb_decoding_lut() -> np.ndarray:
    """The sRGB decoding of all 256 code values, computed once by colour-science."""
    return np.asarray(colour.models.eotf_sRGB(np.arange(256, dtype=np.float64) / 255.0), dtype=np.float32)


@lru_cache(maxsize=1)
def _srgb_code_bounds() -> np.ndarray:
    """The linear values at which the 8-bit sRGB code steps up, by colour-science's sRGB decoding: code ``k`` holds
    the linear values from ``bounds[k] = eotf((k - 0.5) / 255)`` up to ``bounds[k + 1]`` (-inf and +inf at the
    ends, so out-of-gamut values clip). A linear value's rounded 8-bit code is the ``k`` whose interval holds it."""
    inner = colour.models.eotf_sRGB((np.arange(255, dtype=np.float64) + 0.5) / 255.0)
    return np.concatenate([[-np.inf], np.asarray(inner, np.float64), [np.inf]])


def linear_to_srgb_u8(linear: np.ndarray) -> np.ndarray:
    """Linear sRGB -> 8-bit sRGB codes, rounded and clipped: the sRGB encoding (IEC 61966-2-1) in float32 gives a
    code within one of the right one, and the code intervals of :func:`_srgb_code_bounds` settle it, so the result
    is the code whose interval holds the value, as colour-science's encoding followed by rounding gives."""
    lin = np.asarray(linear, _F)
    enc = np.where(
        lin <= _F(0.0031308),
        lin * _F(12.92),
        _F(1.055) * np.power(np.maximum(lin, _F(0.0031308)), _F(1 / 2.4)) - _F(0.055),
    )
    code = np.clip(np.rint(enc * _F(255.0)), 0, 255).astype(np.int16)
    bounds = _srgb_code_bounds()
    code += (lin >= bounds[code + 1]).astype(np.int16) - (lin < bounds[code]).astype(np.int16)
    return code.astype(np.uint8)


@lru_cache(maxsize=1)
def _srgb_to_xyz_matrix() -> np.ndarray:
    return np.asarray(colour.RGB_COLOURSPACES["sRGB"].matrix_RGB_to_XYZ, dtype=np.float32)


@lru_cache(maxsize=1)
def _xyz_to_srgb_matrix() -> np.ndarray:
    return np.asarray(colour.RGB_COLOURSPACES["sRGB"].matrix_XYZ_to_RGB, dtype=np.float32)


@lru_cache(maxsize=1)
def _d65_white() -> np.ndarray:
    """The reference white of colour-science's ``XYZ_to_Lab`` / ``Lab_to_XYZ`` defaults (CIE 1931 2 degree D65)."""
    xy = colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["D65"]
    return np.asarray(colour.xyY_to_XYZ(colour.xy_to_xyY(xy)), dtype=np.float32)


_LAB_EPSILON = _F((24 / 116) ** 3)  # colour-science's CIE 1976 lightness function: cube root above, linear below
_LAB_SLOPE = _F(841 / 108)
_LAB_OFFSET = _F(16 / 116)


def _affine(values: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``values @ matrix[:, :3].T + matrix[:, 3]`` over the last axis (3 channels), float32, through
    ``cv2.transform`` (one pass over the pixels instead of numpy's product, sum and broadcasts)."""
    v = np.ascontiguousarray(values, _F)
    if v.size == 0:
        return np.empty(v.shape, _F)
    return cv2.transform(v.reshape(-1, 1, 3), np.ascontiguousarray(matrix, _F)).reshape(v.shape)


# f(X/Xn), f(Y/Yn), f(Z/Zn) -> L*, a*, b* and back (CIE 1976), with their offsets in the fourth column
_F_TO_LAB = np.array([[0, 116, 0, -16], [500, -500, 0, 0], [0, 200, -200, 0]], _F)
_LAB_TO_F = np.array([[1 / 116, 1 / 500, 0, 16 / 116], [1 / 116, 0, 0, 16 / 116], [1 / 116, 0, -1 / 200, 16 / 116]], _F)


def _lightness_f(t: np.ndarray) -> np.ndarray:
    """colour-science's CIE 1976 lightness function f(t) (``intermediate_lightness_function_CIE1976``) in float32:
    cube root above ``(24/116)^3``, linear below."""
    low = t <= _LAB_EPSILON
    f = np.power(t, _F(1 / 3))
    if low.any():
        f[low] = t[low] * _LAB_SLOPE + _LAB_OFFSET
    return f


def _lightness_f_inverse(f: np.ndarray) -> np.ndarray:
    """The inverse of :func:`_lightness_f` (colour-science's ``intermediate_luminance_function_CIE1976``)."""
    low = f <= _F(24 / 116)
    t = f * f * f
    if low.any():
        t[low] = (f[low] - _LAB_OFFSET) / _LAB_SLOPE
    return t


@lru_cache(maxsize=1)
def _linear_srgb_to_t() -> np.ndarray:
    """Linear sRGB -> XYZ / white (the sRGB matrix with the D65 white divided out)."""
    return _srgb_to_xyz_matrix() / _d65_white()[:, None]


@lru_cache(maxsize=1)
def _t_to_linear_srgb() -> np.ndarray:
    return _xyz_to_srgb_matrix() * _d65_white()[None, :]


def srgb_to_lab(image_u8: np.ndarray) -> np.ndarray:
    """sRGB -> CIE L*a*b* (D65), float32.

    8-bit input goes through a 256-entry table of colour-science's sRGB decoding, the sRGB colourspace matrix
    with the D65 white divided out, the CIE 1976 lightness function and its L*a*b* combination: the same
    conversion as ``colour.XYZ_to_Lab(colour.RGB_to_XYZ(..., "sRGB"))`` in float32 (within 1e-3 of it,
    ``test_colour_paths.py``). Anything else takes colour-science's general path.
    """
    rgb = np.asarray(image_u8)[..., :3]
    if rgb.dtype == np.uint8:
        return _affine(_lightness_f(_affine(_srgb_decoding_lut()[rgb], _linear_srgb_to_t())), _F_TO_LAB)
    xyz = colour.RGB_to_XYZ(to_float(rgb), "sRGB", apply_cctf_decoding=True)
    return np.asarray(colour.XYZ_to_Lab(xyz), dtype=np.float32)


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """CIE L*a*b* (D65) -> uint8 sRGB: the inverse lightness function (colour-science's ``Lab_to_XYZ``), the sRGB
    colourspace matrix with the D65 white multiplied in, then each linear value's 8-bit code
    (:func:`linear_to_srgb_u8`). Out-of-gamut values clip to 0 and 255."""
    return linear_to_srgb_u8(_affine(_lightness_f_inverse(_affine(lab, _LAB_TO_F)), _t_to_linear_srgb()))


def hex_to_rgb(value: str) -> tuple[int, int, int]:
    v = value.lstrip("#")
    return int(v[0:2], 16), int(v[2:4], 16), int(v[4:6], 16)
