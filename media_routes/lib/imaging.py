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


@lru_cache(maxsize=1)
def _srgb_decoding_lut() -> np.ndarray:
    """The sRGB decoding of all 256 code values, computed once by colour-science."""
    return np.asarray(colour.models.eotf_sRGB(np.arange(256, dtype=np.float64) / 255.0), dtype=np.float32)


@lru_cache(maxsize=1)
def _srgb_to_xyz_matrix() -> np.ndarray:
    return np.asarray(colour.RGB_COLOURSPACES["sRGB"].matrix_RGB_to_XYZ, dtype=np.float32)


def srgb_to_lab(image_u8: np.ndarray) -> np.ndarray:
    """sRGB -> CIE L*a*b* (D65), float32, via colour-science.

    8-bit input goes through a 256-entry table of colour-science's sRGB decoding and the sRGB
    colourspace matrix (the same conversion as ``colour.RGB_to_XYZ(..., "sRGB")``, without
    re-evaluating the transfer function per pixel); anything else takes the general path.
    """
    rgb = np.asarray(image_u8)[..., :3]
    if rgb.dtype == np.uint8:
        xyz = _srgb_decoding_lut()[rgb] @ _srgb_to_xyz_matrix().T
    else:
        xyz = colour.RGB_to_XYZ(to_float(rgb), "sRGB", apply_cctf_decoding=True)
    return np.asarray(colour.XYZ_to_Lab(xyz), dtype=np.float32)


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """CIE L*a*b* (D65) -> uint8 sRGB via colour-science."""
    rgb = colour.XYZ_to_RGB(colour.Lab_to_XYZ(lab), "sRGB", apply_cctf_encoding=True)
    return to_uint8(np.asarray(rgb, dtype=np.float32))


def hex_to_rgb(value: str) -> tuple[int, int, int]:
    v = value.lstrip("#")
    return int(v[0:2], 16), int(v[2:4], 16), int(v[4:6], 16)
