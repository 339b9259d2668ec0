"""K-level upscaling: Lanczos resampling plus guarded, edge-aware detail enhancement.

Method (classical image processing, no learned model):

1. **Resample.** Each output tile is produced by ``cv2.resize(..., INTER_LANCZOS4)`` of the matching
   input region grown by a margin. For an integer factor ``f`` output pixel ``X`` samples input position
   ``(X + 0.5) / f - 0.5`` wherever the input crop starts, so as long as the margin covers the 8-tap
   Lanczos support (4 input pixels) plus the support of the filters below, cropping the margin off
   gives exactly the whole-image result: the tiled output is seamless.
2. **Enhance.** On the luminance ``Y`` of the Lanczos reference an unsharp band ``Y - G_sigma * Y`` is
   added back, gated by an edge mask (gradient magnitude of the blurred luminance passed through a
   ramp) so flat areas and their noise are left alone. ``detail`` scales the gain; ``detail = 0`` is
   pure Lanczos. The luminance delta is added equally to R, G and B, which changes luminance by exactly
   that delta and leaves the chroma differences untouched.
3. **Guard against over-sharpening** (``skin_guard``):

   * *Halo limiter*: the enhanced luminance may overshoot the local min/max of the Lanczos reference
     (a (2r+1)^2 window) by at most ``HALO_TOLERANCE`` levels; any excess is compressed to 25 %.
   * *Skin softening*: skin-like pixels are found on the input with the classical YCrCb rule
     (Cr 135..180, Cb 85..135, Y > 40), cleaned by a morphological open and close, feathered, and
     resized per tile. Local high-frequency energy (box-filtered squared unsharp band) of the enhanced
     output is compared with that of the Lanczos reference; where the ratio exceeds
     ``SKIN_HF_RATIO_MAX`` the enhancement is scaled back, on skin only, by the amount that brings the
     ratio down to the threshold (an unsharp gain ``a`` multiplies the band by ``1 + a``, so energy grows
     as ``(1 + a)^2``).

The output is allocated once; each tile's working set is a few float32 planes of
``(tile + 2 * margin)^2`` pixels, so peak memory is the input + output + a constant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from media_routes.lib import overlay
from media_routes.lib.skin import skin_mask

# Local HF energy ratio (enhanced / Lanczos) above which skin is blended back toward Lanczos.
SKIN_HF_RATIO_MAX = 1.25
# Overshoot beyond the local min/max of the Lanczos reference tolerated before compression (levels).
HALO_TOLERANCE = 2.0
HALO_EXCESS_KEEP = 0.25
# Edge gate ramp on gradient magnitude of the blurred luminance, in levels per *input* pixel so the
# gate selects the same structures whatever the factor.
EDGE_LO = 4.0
EDGE_HI = 16.0
# Unsharp gain at detail = 1.
DETAIL_GAIN = 1.0
LANCZOS_SUPPORT = 4  # input pixels on each side used by INTER_LANCZOS4

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass
class UpscaleResult:
    image: np.ndarray  # uint8 (H*f, W*f, 3)
    subject_mask: np.ndarray | None  # input subject mask resized to the output size (or None)
    metrics: dict[str, float | str]  # figures; a hosted route adds "hosted_size" ("WxH")


@dataclass(frozen=True)
class TypeLayer:
    """An exactly authored flat-colour layer (the headline) that is set again at the output size instead of being
    resampled and sharpened with the picture (media_routes/lib/overlay.py)."""

    alpha_in: np.ndarray  # uint8 coverage on the input
    alpha_out: np.ndarray  # uint8 coverage on the output, rasterised from its source at that size
    rgb: tuple[int, int, int]


@dataclass
class _Params:
    factor: int
    sigma: float  # unsharp / HF band sigma, output pixels
    halo_r: int  # local min/max window radius, output pixels
    box_r: int  # local energy window radius, output pixels
    margin_in: int  # tile margin, input pixels


def _params(factor: int) -> _Params:
    sigma = 0.5 * factor + 0.5
    halo_r = max(1, math.ceil(1.5 * sigma))
    box_r = 2 * factor + 1
    # Filter chain on the output grid: blur (3 sigma) -> Sobel (1) -> dilate/erode (halo_r)
    # -> blur of the enhanced result (3 sigma) -> box filter (box_r); plus slack.
    chain_out = 2 * math.ceil(3 * sigma) + 1 + halo_r + box_r + 4
    margin_in = LANCZOS_SUPPORT + math.ceil(chain_out / factor) + 1
    return _Params(factor, sigma, halo_r, box_r, margin_in)


def integer_factor(shape: tuple[int, ...], target_long_side: int) -> int:
    """The integer scale factor from an image shape to ``target_long_side``; ValueError otherwise."""
    long_side = max(shape[0], shape[1])
    if target_long_side <= 0 or long_side <= 0:
        raise ValueError(f"invalid sizes: input long side {long_side}, target {target_long_side}")
    if target_long_side % long_side:
        raise ValueError(
            f"target long side {target_long_side} is not an integer multiple of the input long side "
            f"{long_side} (factor {target_long_side / long_side:.4g}); K-level upscaling needs an "
            "integer factor"
        )
    return target_long_side // long_side


def _luma(rgb: np.ndarray) -> np.ndarray:
    return (rgb @ _LUMA).astype(np.float32, copy=False)


def _hf(y: np.ndarray, sigma: float) -> np.ndarray:
    return y - cv2.GaussianBlur(y, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def _local_energy(hf: np.ndarray, r: int) -> np.ndarray:
    return cv2.boxFilter(hf * hf, -1, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REFLECT)


def _overshoot(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.maximum(np.maximum(y - hi, lo - y), 0.0)


class _Stats:
    """Accumulates per-tile sums (tile interiors only) into image-level metrics."""

    def __init__(self) -> None:
        self.skin_w = 0.0
        self.e_ref = 0.0
        self.e_before = 0.0
        self.e_after = 0.0
        self.edge_n = 0.0
        self.halo_before = 0.0
        self.halo_after = 0.0
        self.softened = 0
        self.pixels = 0


def _enhance_tile(
    ref_u8: np.ndarray, skin: np.ndarray, p: _Params, detail: float, guard: bool, inner: tuple[slice, slice]
) -> tuple[np.ndarray, _Stats]:
    """Enhance one Lanczos tile (with margin). Returns the uint8 tile and its interior statistics."""
    st = _Stats()
    ref = ref_u8.astype(np.float32)
    y_ref = _luma(ref)
    blur = cv2.GaussianBlur(y_ref, (0, 0), p.sigma, borderType=cv2.BORDER_REFLECT)
    hf_ref = y_ref - blur
    gx = cv2.Sobel(blur, cv2.CV_32F, 1, 0, ksize=3, scale=0.125, borderType=cv2.BORDER_REFLECT)
    gy = cv2.Sobel(blur, cv2.CV_32F, 0, 1, ksize=3, scale=0.125, borderType=cv2.BORDER_REFLECT)
    grad = cv2.magnitude(gx, gy) * p.factor
    gate = np.clip((grad - EDGE_LO) / (EDGE_HI - EDGE_LO), 0.0, 1.0)
    y_enh = y_ref + (detail * DETAIL_GAIN) * gate * hf_ref

    k = 2 * p.halo_r + 1
    kernel = np.ones((k, k), np.uint8)
    lo = cv2.erode(y_ref, kernel, borderType=cv2.BORDER_REFLECT)
    hi = cv2.dilate(y_ref, kernel, borderType=cv2.BORDER_REFLECT)
    edges = gate[inner] > 0.5
    over_before = _overshoot(y_enh, lo, hi)[inner][edges]

    e_ref_local = _local_energy(hf_ref, p.box_r)
    hf_before = _hf(y_enh, p.sigma)
    skin_in = skin[inner]
    if guard:
        clipped = np.clip(y_enh, lo - HALO_TOLERANCE, hi + HALO_TOLERANCE)
        y_lim = clipped + HALO_EXCESS_KEEP * (y_enh - clipped)
        e_lim_local = _local_energy(_hf(y_lim, p.sigma), p.box_r)
        eps = 1.0  # levels^2: keeps flat areas from producing huge ratios
        ratio = (e_lim_local + eps) / (e_ref_local + eps)
        target = math.sqrt(SKIN_HF_RATIO_MAX) - 1.0
        excess = np.maximum(np.sqrt(ratio) - 1.0, 1e-6)
        keep = np.where(ratio > SKIN_HF_RATIO_MAX, np.minimum(target / excess, 1.0), 1.0)
        keep = 1.0 - skin * (1.0 - keep)
        delta = keep * (y_lim - y_ref)
        y_out = y_ref + delta
        st.softened = int(np.count_nonzero(keep[inner] < 0.95))
        over_after = _overshoot(y_out, lo, hi)[inner][edges]
        hf_after = _hf(y_out, p.sigma)
    else:
        delta = y_enh - y_ref
        over_after = over_before
        hf_after = hf_before

    out = np.clip(np.rint(ref + delta[..., None]), 0, 255).astype(np.uint8)

    st.pixels = skin_in.size
    st.skin_w = float(skin_in.sum(dtype=np.float64))
    st.e_ref = float((skin_in * hf_ref[inner] ** 2).sum(dtype=np.float64))
    st.e_before = float((skin_in * hf_before[inner] ** 2).sum(dtype=np.float64))
    st.e_after = float((skin_in * hf_after[inner] ** 2).sum(dtype=np.float64))
    st.edge_n = float(over_before.size)
    st.halo_before = float(over_before.sum(dtype=np.float64))
    st.halo_after = float(over_after.sum(dtype=np.float64))
    return out, st


def upscale(
    image: np.ndarray,
    target_long_side: int,
    *,
    detail: float = 0.6,
    skin_guard: bool = True,
    subject_mask: np.ndarray | None = None,
    tile: int = 512,
    protect: np.ndarray | None = None,
    type_layer: TypeLayer | None = None,
) -> UpscaleResult:
    """Upscale ``image`` by an integer factor so its long side becomes ``target_long_side``.

    ``tile`` is the output tile size in pixels (rounded down to a multiple of the factor).
    ``detail`` scales the edge-gated unsharp enhancement (0 = plain Lanczos).
    ``protect`` (uint8 on the input, 0..255) scales the enhancement down to nothing where it is 255: brand
    regions keep the plain resample, without the sharpening's halo and undershoot.
    ``type_layer`` is lifted off the input before the resample and set again on the output from its own coverage at
    that size, so type is never resampled.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    if detail < 0:
        raise ValueError(f"detail must be >= 0, got {detail}")
    if tile <= 0:
        raise ValueError(f"tile must be positive, got {tile}")
    factor = integer_factor(image.shape, target_long_side)
    h, w = image.shape[:2]
    if subject_mask is not None and subject_mask.shape[:2] != (h, w):
        raise ValueError(f"subject_mask shape {subject_mask.shape} does not match image {(h, w)}")
    if protect is not None and protect.shape[:2] != (h, w):
        raise ValueError(f"protect shape {protect.shape} does not match image {(h, w)}")
    if type_layer is not None:
        if type_layer.alpha_out.shape[:2] != (h * factor, w * factor):
            raise ValueError(
                f"type layer {type_layer.alpha_out.shape} does not match the output {(h * factor, w * factor)}"
            )
        image = overlay.lift(image, type_layer.alpha_in)
    guard = None if protect is None else protect.astype(np.float32) / 255.0
    p = _params(factor)
    enhance = detail > 0
    skin = skin_mask(image) if enhance or skin_guard else np.zeros((h, w), np.float32)
    skin_fraction = float((skin > 0.5).mean())

    out = np.empty((h * factor, w * factor, 3), np.uint8)
    tile_in = max(1, tile // factor)
    m = p.margin_in if enhance else LANCZOS_SUPPORT + 1  # plain Lanczos only needs its own support
    totals = _Stats()
    n_tiles = 0
    for y0 in range(0, h, tile_in):
        y1 = min(h, y0 + tile_in)
        for x0 in range(0, w, tile_in):
            x1 = min(w, x0 + tile_in)
            n_tiles += 1
            cy0, cy1, cx0, cx1 = max(0, y0 - m), min(h, y1 + m), max(0, x0 - m), min(w, x1 + m)
            size = ((cx1 - cx0) * factor, (cy1 - cy0) * factor)
            crop = np.ascontiguousarray(image[cy0:cy1, cx0:cx1])
            ref = cv2.resize(crop, size, interpolation=cv2.INTER_LANCZOS4)
            oy, ox = (y0 - cy0) * factor, (x0 - cx0) * factor
            inner = (slice(oy, oy + (y1 - y0) * factor), slice(ox, ox + (x1 - x0) * factor))
            dst = out[y0 * factor : y1 * factor, x0 * factor : x1 * factor]
            if not enhance:
                dst[...] = ref[inner]
                continue
            skin_t = cv2.resize(skin[cy0:cy1, cx0:cx1], size, interpolation=cv2.INTER_LINEAR)
            tile_out, st = _enhance_tile(ref, skin_t, p, detail, skin_guard, inner)
            if guard is not None and guard[cy0:cy1, cx0:cx1].any():
                keep = 1.0 - cv2.resize(guard[cy0:cy1, cx0:cx1], size, interpolation=cv2.INTER_LINEAR)[..., None]
                ref_f = ref.astype(np.float32)
                tile_out = np.clip(np.rint(ref_f + keep * (tile_out.astype(np.float32) - ref_f)), 0, 255).astype(
                    np.uint8
                )
            dst[...] = tile_out[inner]
            for name in vars(totals):
                setattr(totals, name, getattr(totals, name) + getattr(st, name))

    def ratio(num: float, den: float, empty: float) -> float:
        return float(num / den) if den > 1e-9 else empty

    has_skin = totals.skin_w > 1e-6
    metrics: dict[str, float | str] = {
        "factor": factor,
        "tiles": n_tiles,
        "detail": float(detail),
        "skin_fraction": skin_fraction,
        # 1.0 = no change in HF energy (also reported when there is no skin or no enhancement).
        "skin_hf_ratio_before": ratio(totals.e_before, totals.e_ref, 1.0) if has_skin else 1.0,
        "skin_hf_ratio_after": ratio(totals.e_after, totals.e_ref, 1.0) if has_skin else 1.0,
        # Mean overshoot (8-bit levels) beyond the local min/max of the Lanczos reference on edge pixels.
        "halo_overshoot_before": ratio(totals.halo_before, totals.edge_n, 0.0),
        "halo_overshoot_after": ratio(totals.halo_after, totals.edge_n, 0.0),
        "softened_fraction": ratio(float(totals.softened), float(out.shape[0] * out.shape[1]), 0.0),
    }
    if protect is not None:
        metrics["protected_fraction"] = float((protect > 0).mean())
    if type_layer is not None:
        out = overlay.composite(out, type_layer.alpha_out, type_layer.rgb)
        metrics["type_set_at_output"] = "headline"
    up_mask = None
    if subject_mask is not None:
        up_mask = cv2.resize(
            np.ascontiguousarray(subject_mask, dtype=np.uint8),
            (w * factor, h * factor),
            interpolation=cv2.INTER_LINEAR,
        )
    return UpscaleResult(image=out, subject_mask=up_mask, metrics=metrics)
