"""Aspect-ratio outpainting: grow the canvas to a target aspect and fill the new area classically.

Method (classical image processing, no learned model):

1. **Canvas.** The canvas only grows: exactly one dimension is enlarged so ``width / height`` matches the
   target (to the nearest pixel), and the original is placed at ``anchor`` (fractions of the free space).
2. **Low-resolution fill.** The canvas, with zeros in the new area, is reduced with ``INTER_AREA`` to a
   long side of ``FILL_LONG_SIDE`` px together with the exact per-pixel coverage of the original
   (area-averaged rectangle mask), so pixels straddling the seam blend known colour and fill by area.
   The fill of the new area blends

   * an **edge stretch**: the mean colour profile of a thin strip along each seam (``PROFILE_DEPTH``;
     subject pixels excluded when a subject mask is given, gaps bridged along the profile) is extended
     outward line by line and blurred *along* the seam with a sigma growing linearly with the distance
     from it. Horizons, floors and gradients crossing the seam continue, while anything with detail
     dissolves within a short distance: no structure of the subject is copied out, although without a
     mask a subject touching the edge leaves a soft colour smear;
   * a **reflection** of the original across the seam (mildly blurred), weighted by
     ``exp(-(d / d0)^2)`` of the distance ``d`` to the seam (and by the reflected non-subject weight
     when a mask is given), which carries texture across the seam for a short distance.

3. **Upsample + grain.** The low-resolution fill is resampled (bilinear, float32) straight into the new
   bands of the full canvas; monochrome Gaussian grain (``numpy`` Generator seeded from ``seed``) is
   added with a sigma matched to the original's luminance noise, estimated robustly near the seams
   (Immerkaer's Laplacian difference kernel with a median absolute deviation), floored at
   ``GRAIN_FLOOR`` levels so the smooth upsampled fill is dithered rather than banded.
4. **Exact paste.** The bands never overlap the original, whose pixels are copied untouched.

``seam_delta_e`` is the mean CIEDE2000 difference between the mean colours of the 4-px strips on either
side of each seam, computed over ``SEAM_SEGMENTS`` equal segments along every seam.
"""

from __future__ import annotations

from dataclasses import dataclass

import colour
import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d

from media_routes.formats import canvas_size
from media_routes.lib.imaging import srgb_to_lab

FILL_LONG_SIDE = 640
REFLECT_DECAY = 0.03  # reflection weight falls to exp(-1) at this fraction of the small canvas long side
REFLECT_BLUR = 1.5  # sigma of the reflected band, small-canvas pixels
PROFILE_DEPTH = 0.02  # edge strip averaged into the stretch profile, fraction of the small long side
STRETCH_SIGMA0 = 1.0  # blur along the seam at the seam, small-canvas pixels
STRETCH_SLOPE = 0.25  # blur grows by this many pixels per pixel of distance from the seam
GRAIN_FLOOR = 0.5  # minimum grain sigma (8-bit levels)
NOISE_BAND = 64  # px inside each seam used to estimate the original's noise
SEAM_STRIP = 4
SEAM_SEGMENTS = 8


@dataclass
class OutpaintResult:
    canvas: np.ndarray  # expanded canvas at the input's resolution; original pixels exact at placement
    placement: tuple[int, int, int, int]  # x, y, w, h of the original on the canvas
    delivery: np.ndarray  # canvas resized to delivery_size
    subject_mask: np.ndarray | None  # input subject mask placed on the canvas, resized to delivery size
    metrics: dict[str, float | str]  # figures; a hosted route adds "hosted_size" ("WxH")


def _bands(cw: int, ch: int, x: int, y: int, w: int, h: int) -> list[tuple[int, int, int, int]]:
    """New-area rectangles (x0, y0, x1, y1) around the placed original (one axis grows only)."""
    rects = []
    if x > 0:
        rects.append((0, 0, x, ch))
    if x + w < cw:
        rects.append((x + w, 0, cw, ch))
    if y > 0:
        rects.append((0, 0, cw, y))
    if y + h < ch:
        rects.append((0, y + h, cw, ch))
    return rects


def _profile(strip: np.ndarray, weight: np.ndarray, axis: int) -> np.ndarray:
    """Weighted mean of an edge strip across ``axis`` (length-N x 3); gaps filled along the profile."""
    wsum = weight.sum(axis=axis)
    prof = (strip * np.expand_dims(weight, -1)).sum(axis=axis) / np.maximum(wsum, 1e-6)[:, None]
    depth = weight.shape[axis]
    good = (wsum >= 0.25 * depth).astype(np.float32)
    if good.all():
        return prof
    if not good.any():  # the subject covers the whole edge: fall back to the unweighted mean
        return strip.mean(axis=axis)
    sigma = max(2.0, 0.05 * len(prof))
    num = gaussian_filter1d(prof * good[:, None], sigma, axis=0, mode="nearest")
    den = gaussian_filter1d(good, sigma, mode="nearest")
    filled = num / np.maximum(den, 1e-6)[:, None]
    return np.where(good[:, None] > 0, prof, filled)


def _stretch_fill(
    small_orig: np.ndarray, weight: np.ndarray, sw: int, lo: float, hi: float
) -> tuple[np.ndarray, np.ndarray]:
    """Fill for a canvas grown along x: edge profiles stretched outward, blurred along the seam.

    ``small_orig`` (sh x ow x 3) spans the full canvas height; ``lo``/``hi`` are the seam x positions on
    the small canvas (``sw`` wide). Returns the (sh, sw, 3) fill and the per-column distance to the seam.
    """
    sh = small_orig.shape[0]
    depth = max(2, min(small_orig.shape[1], round(PROFILE_DEPTH * max(sw, sh))))
    centres = np.arange(sw, dtype=np.float32) + 0.5
    dist = np.maximum(np.maximum(lo - centres, centres - hi), 0.0)
    fill = np.zeros((sh, sw, 3), np.float32)
    sides = (
        (centres < lo, _profile(small_orig[:, :depth], weight[:, :depth], axis=1)),
        (centres > hi, _profile(small_orig[:, -depth:], weight[:, -depth:], axis=1)),
    )
    for columns, prof in sides:
        for c in np.nonzero(columns)[0]:
            sigma = STRETCH_SIGMA0 + STRETCH_SLOPE * float(dist[c])
            fill[:, c] = gaussian_filter1d(prof, sigma, axis=0, mode="nearest")
    return fill, dist


def _reflect(small_orig: np.ndarray, sx: int, sy: int, sw: int, sh: int) -> np.ndarray:
    """Reflect the small original across its borders to cover the small canvas (sw x sh)."""
    oh, ow = small_orig.shape[:2]
    top, left = sy, sx
    bottom, right = sh - sy - oh, sw - sx - ow
    # Reflect at most one image size; beyond that replicate (the reflection weight is ~0 there anyway).
    rt, rb = min(top, oh - 1), min(bottom, oh - 1)
    rl, rr = min(left, ow - 1), min(right, ow - 1)
    out = cv2.copyMakeBorder(small_orig, rt, rb, rl, rr, cv2.BORDER_REFLECT_101)
    out = cv2.copyMakeBorder(out, top - rt, bottom - rb, left - rl, right - rr, cv2.BORDER_REPLICATE)
    return cv2.GaussianBlur(out, (0, 0), REFLECT_BLUR)


def estimate_noise_sigma(gray: np.ndarray) -> float:
    """Robust noise sigma (levels) of a float32 grey image via Immerkaer's kernel and the MAD."""
    if min(gray.shape) < 3:
        return 0.0
    k = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    r = cv2.filter2D(gray, cv2.CV_32F, k)[1:-1, 1:-1]
    # |r| of iid noise is half-normal with sigma 6*s (kernel energy 36); median(|r|) = 0.6745 * 6 s.
    return float(np.median(np.abs(r)) / (0.6745 * 6.0))


def _noise_near_seams(image: np.ndarray, x: int, y: int, cw: int, ch: int) -> float:
    h, w = image.shape[:2]
    b = min(NOISE_BAND, h, w)
    regions = []
    if x > 0:
        regions.append(image[:, :b])
    if x + w < cw:
        regions.append(image[:, w - b :])
    if y > 0:
        regions.append(image[:b])
    if y + h < ch:
        regions.append(image[h - b :])
    sigmas = [estimate_noise_sigma(cv2.cvtColor(r, cv2.COLOR_RGB2GRAY).astype(np.float32)) for r in regions]
    return float(np.mean(sigmas)) if sigmas else 0.0


def _seam_delta_e(canvas: np.ndarray, x: int, y: int, w: int, h: int) -> float:
    """Mean CIEDE2000 between strip means either side of each seam, per segment along the seam."""
    ch, cw = canvas.shape[:2]
    s = SEAM_STRIP
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    if x > 0:
        pairs.append((canvas[y : y + h, x : x + s], canvas[y : y + h, max(0, x - s) : x]))
    if x + w < cw:
        pairs.append((canvas[y : y + h, x + w - s : x + w], canvas[y : y + h, x + w : x + w + s]))
    if y > 0:
        pairs.append((canvas[y : y + s, x : x + w], canvas[max(0, y - s) : y, x : x + w]))
    if y + h < ch:
        pairs.append((canvas[y + h - s : y + h, x : x + w], canvas[y + h : y + h + s, x : x + w]))
    inside, outside = [], []
    for a, b in pairs:
        axis = 0 if a.shape[0] > a.shape[1] else 1  # along the seam
        n = min(SEAM_SEGMENTS, a.shape[axis])
        for sa, sb in zip(np.array_split(a, n, axis=axis), np.array_split(b, n, axis=axis), strict=True):
            inside.append(sa.reshape(-1, 3).mean(axis=0))
            outside.append(sb.reshape(-1, 3).mean(axis=0))
    if not inside:
        return 0.0
    lab_in = srgb_to_lab(np.asarray(inside, np.float32)[None])
    lab_out = srgb_to_lab(np.asarray(outside, np.float32)[None])
    return float(np.mean(colour.delta_E(lab_in, lab_out, method="CIE 2000")))


def seam_gradient_ratio(canvas: np.ndarray, x: int, y: int, w: int, h: int, depth: int = 8) -> float:
    """How much sharper the step across a seam is than the original's own texture next to it.

    For each seam, the mean absolute luma step across the seam line is divided by the mean step
    between neighbouring columns (rows) in a band of ``depth`` px just inside the original. About 1
    means the seam reads like the surrounding texture; a hard edge gives a large ratio. The largest
    ratio over the seams is returned (1.0 when the canvas did not grow).
    """
    ch, cw = canvas.shape[:2]
    luma = canvas[..., :3].astype(np.float32) @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    ratios = []

    def ratio(step: np.ndarray, ref: np.ndarray) -> float:
        return float(np.abs(step).mean() / max(float(np.abs(ref).mean()), 0.5))

    rows, cols = slice(y, y + h), slice(x, x + w)
    if x > 0:
        ratios.append(ratio(luma[rows, x] - luma[rows, x - 1], np.diff(luma[rows, x : x + depth], axis=1)))
    if x + w < cw:
        e = x + w
        ratios.append(ratio(luma[rows, e] - luma[rows, e - 1], np.diff(luma[rows, e - depth : e], axis=1)))
    if y > 0:
        ratios.append(ratio(luma[y, cols] - luma[y - 1, cols], np.diff(luma[y : y + depth, cols], axis=0)))
    if y + h < ch:
        e = y + h
        ratios.append(ratio(luma[e, cols] - luma[e - 1, cols], np.diff(luma[e - depth : e, cols], axis=0)))
    return max(ratios, default=1.0)


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = image.shape[:2]
    if (w, h) == size:
        return image.copy()
    shrinking = size[0] <= w and size[1] <= h
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4)


def placement_on_canvas(
    w: int, h: int, aspect: float, anchor: tuple[float, float]
) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """((canvas w, h), (x, y, w, h) of the original on it): the geometry every outpaint route shares."""
    cw, ch = canvas_size(w, h, aspect)
    return (cw, ch), (round((cw - w) * anchor[0]), round((ch - h) * anchor[1]), w, h)


def place_on_fill(
    image: np.ndarray,
    fill: np.ndarray,
    aspect: float,
    delivery_size: tuple[int, int],
    *,
    anchor: tuple[float, float] = (0.5, 0.5),
    subject_mask: np.ndarray | None = None,
) -> OutpaintResult:
    """Outpaint with a fill made elsewhere (a hosted model): ``fill`` covers the whole canvas at any
    resolution; the original is put back pixel for pixel at its placement, as in :func:`outpaint`."""
    h, w = image.shape[:2]
    (cw, ch), (x, y, _, _) = placement_on_canvas(w, h, aspect, anchor)
    canvas = _resize(fill[..., :3], (cw, ch))
    canvas[y : y + h, x : x + w] = image
    mask_out = None
    if subject_mask is not None:
        placed = np.zeros((ch, cw), np.uint8)
        placed[y : y + h, x : x + w] = subject_mask
        mask_out = _resize(placed, delivery_size)
    metrics: dict[str, float | str] = {
        "canvas_w": cw,
        "canvas_h": ch,
        "expanded_px": cw * ch - w * h,
        "fill_fraction": (cw * ch - w * h) / (cw * ch),
        "seam_delta_e": _seam_delta_e(canvas, x, y, w, h),
        "seam_gradient_ratio": round(seam_gradient_ratio(canvas, x, y, w, h), 4),
    }
    return OutpaintResult(
        canvas=canvas,
        placement=(x, y, w, h),
        delivery=_resize(canvas, delivery_size),
        subject_mask=mask_out,
        metrics=metrics,
    )


def outpaint(
    image: np.ndarray,
    aspect: float,
    delivery_size: tuple[int, int],
    *,
    anchor: tuple[float, float] = (0.5, 0.5),
    seed: int = 0,
    subject_mask: np.ndarray | None = None,
) -> OutpaintResult:
    """Grow ``image`` to ``aspect`` (width/height), fill the new area, and resize to ``delivery_size``."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    dw, dh = delivery_size
    if dw <= 0 or dh <= 0:
        raise ValueError(f"delivery_size must be positive, got {delivery_size}")
    ax, ay = anchor
    if not (0.0 <= ax <= 1.0 and 0.0 <= ay <= 1.0):
        raise ValueError(f"anchor components must be in [0, 1], got {anchor}")
    h, w = image.shape[:2]
    if subject_mask is not None and subject_mask.shape[:2] != (h, w):
        raise ValueError(f"subject_mask shape {subject_mask.shape} does not match image {(h, w)}")
    (cw, ch), (x, y, _, _) = placement_on_canvas(w, h, aspect, anchor)

    grain_sigma = 0.0
    if (cw, ch) == (w, h):
        canvas = image.copy()
    else:
        canvas = np.zeros((ch, cw, 3), np.uint8)
        canvas[y : y + h, x : x + w] = image
        scale = min(1.0, FILL_LONG_SIDE / max(cw, ch))
        sw, sh = max(1, round(cw * scale)), max(1, round(ch * scale))
        small = cv2.resize(canvas, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32)
        # Exact area coverage of the original, separable because the known region is a rectangle.
        col = np.zeros((ch, 1), np.float32)
        col[y : y + h] = 1.0
        row = np.zeros((1, cw), np.float32)
        row[:, x : x + w] = 1.0
        cover = (
            cv2.resize(col, (1, sh), interpolation=cv2.INTER_AREA)
            * cv2.resize(row, (sw, 1), interpolation=cv2.INTER_AREA)
        ).astype(np.float32)

        sx, sy = round(x * scale), round(y * scale)
        ow, oh = min(sw - sx, max(1, round(w * scale))), min(sh - sy, max(1, round(h * scale)))
        small_orig = cv2.resize(image, (ow, oh), interpolation=cv2.INTER_AREA).astype(np.float32)
        if subject_mask is not None:
            # Thin foreground (headline strokes) shrinks to partial coverage at fill resolution: count any
            # pixel a quarter covered as foreground and grow it by two pixels, so the blurred reflection
            # cannot carry a ghost of it across the seam.
            cov: np.ndarray = cv2.resize(subject_mask, (ow, oh), interpolation=cv2.INTER_AREA) / np.float32(255)
            cov = cv2.dilate(np.clip(cov * 4.0, 0.0, 1.0), np.ones((5, 5), np.uint8))
            weight = 1.0 - cov
        else:
            weight = np.ones((oh, ow), np.float32)
        reflected = _reflect(small_orig, sx, sy, sw, sh)
        # Only one axis grows: work as if it were x (transpose for top/bottom growth).
        horizontal = cw > w
        if horizontal:
            stretch, dist = _stretch_fill(small_orig, weight, sw, x * sw / cw, (x + w) * sw / cw)
            dist = np.broadcast_to(dist[None, :], (sh, sw))
        else:
            stretch, dist = _stretch_fill(small_orig.transpose(1, 0, 2), weight.T, sh, y * sh / ch, (y + h) * sh / ch)
            stretch, dist = stretch.transpose(1, 0, 2), np.broadcast_to(dist[:, None], (sh, sw))
        d0 = REFLECT_DECAY * max(sw, sh)
        wr = np.exp(-((dist / d0) ** 2))
        if subject_mask is not None:
            wr = wr * _reflect(weight, sx, sy, sw, sh)  # never mirror the subject into the fill
        wr = wr[..., None]
        outside = wr * reflected + (1.0 - wr) * stretch
        # Area-exact blend: premultiplied known colour plus the fill over the uncovered share.
        fill_small = (small + (1.0 - cover)[..., None] * outside).astype(np.float32)

        grain_sigma = max(GRAIN_FLOOR, _noise_near_seams(image, x, y, cw, ch))
        rng = np.random.default_rng(seed)
        sx_f, sy_f = sw / cw, sh / ch
        for x0, y0, x1, y1 in _bands(cw, ch, x, y, w, h):
            # dst pixel (u, v) of the band -> small-canvas position, same convention as cv2.resize.
            m = np.array([[sx_f, 0.0, (x0 + 0.5) * sx_f - 0.5], [0.0, sy_f, (y0 + 0.5) * sy_f - 0.5]], np.float64)
            band: np.ndarray = cv2.warpAffine(
                fill_small,
                m,
                (x1 - x0, y1 - y0),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_REPLICATE,
            )
            noise = rng.standard_normal((y1 - y0, x1 - x0), dtype=np.float32)
            noise *= grain_sigma
            band += noise[..., None]
            np.clip(band, 0.0, 255.0, out=band)
            canvas[y0:y1, x0:x1] = np.rint(band).astype(np.uint8)
        canvas[y : y + h, x : x + w] = image  # bands never overlap it; restated for clarity

    delivery = _resize(canvas, (dw, dh))
    mask_out = None
    if subject_mask is not None:
        placed = np.zeros((ch, cw), np.uint8)
        placed[y : y + h, x : x + w] = subject_mask
        mask_out = _resize(placed, (dw, dh))

    expanded = cw * ch - w * h
    metrics: dict[str, float | str] = {
        "canvas_w": cw,
        "canvas_h": ch,
        "expanded_px": expanded,
        "fill_fraction": expanded / (cw * ch),
        "grain_sigma": grain_sigma,
        "seam_delta_e": _seam_delta_e(canvas, x, y, w, h),
        "seam_gradient_ratio": round(seam_gradient_ratio(canvas, x, y, w, h), 4),
    }
    return OutpaintResult(
        canvas=canvas, placement=(x, y, w, h), delivery=delivery, subject_mask=mask_out, metrics=metrics
    )
