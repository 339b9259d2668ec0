"""Stage 3, local engine: surgical fixes inside masks; nothing outside the (feathered) mask changes.

* ``remove``: OpenCV inpainting (Telea) inside the mask, plus seeded grain matched to the noise
  level of the surrounding ring so the repair does not read as a smooth smear.
* ``replace``: the patch image is resized to the mask's bounding box and blended with OpenCV's
  seamless cloning (Poisson blending, ``cv2.seamlessClone``), then limited to the mask.

Every fix is returned as a separate layer (its feathered alpha and the fixed pixels), so the result
can be inspected and undone: ``output = input * (1 - alpha) + fix_rgb * alpha``, and wherever
``alpha == 0`` the output bytes are exactly the input bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from media_routes.lib.imaging import load_user_image
from media_routes.spec import Campaign, Fix, MaskSpec


@dataclass
class FixLayer:
    name: str
    action: str
    alpha: np.ndarray  # uint8 (H, W) feathered mask actually applied
    rgba: np.ndarray  # uint8 (H, W, 4): the fixed pixels with `alpha` as the alpha channel
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class InpaintResult:
    image: np.ndarray
    layers: list[FixLayer] = field(default_factory=list)
    changed_mask: np.ndarray | None = None  # union of applied alphas (uint8)


def rasterize_mask(mask: MaskSpec, size: tuple[int, int], campaign: Campaign | None = None) -> np.ndarray:
    """The hard (unfeathered) mask as uint8 0/255 at ``size`` = (width, height)."""
    w, h = size
    out = np.zeros((h, w), dtype=np.uint8)
    if mask.rect is not None:
        x, y, rw, rh = mask.rect
        out[y : y + rh, x : x + rw] = 255
    elif mask.polygon is not None:
        cv2.fillPoly(out, [np.array(mask.polygon, dtype=np.int32)], 255)
    elif mask.png is not None:
        if campaign is None:
            raise ValueError("a PNG mask needs the campaign to resolve its path")
        m = load_user_image(campaign.resolve(mask.png), mode="L")
        out = np.where(m >= 128, 255, 0).astype(np.uint8)
    return out


def feather(hard: np.ndarray, radius: int) -> np.ndarray:
    """Grow the mask by ``radius`` px and ramp it down smoothly across that band (uint8)."""
    if radius <= 0:
        return hard.copy()
    k = 2 * radius + 1
    grown = cv2.dilate(hard, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    soft = cv2.GaussianBlur(grown.astype(np.float32), (0, 0), radius / 2.0)
    soft = np.maximum(soft, hard.astype(np.float32))  # fully opaque inside the hard mask
    soft[grown == 0] = 0.0  # the band ends exactly at the grown edge
    return np.clip(np.rint(soft), 0, 255).astype(np.uint8)


def _ring_noise_sigma(image: np.ndarray, hard: np.ndarray, width: int = 12) -> float:
    """Std-dev of the high-pass residual in a ring around the mask: the local grain level."""
    k = 2 * width + 1
    ring = cv2.dilate(hard, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) > 0
    ring &= hard == 0
    if ring.sum() < 16:
        return 0.0
    g = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    hp = g - cv2.GaussianBlur(g, (0, 0), 1.5)
    return float(hp[ring].std())


def _remove(image: np.ndarray, hard: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, float]]:
    filled = cv2.inpaint(image, hard, inpaintRadius=5, flags=cv2.INPAINT_TELEA)
    sigma = _ring_noise_sigma(image, hard)
    if sigma > 0.05:
        noise = rng.standard_normal(hard.shape).astype(np.float32)
        noise = noise - cv2.GaussianBlur(noise, (0, 0), 1.5)  # same band as the measurement
        noise *= sigma / max(float(noise.std()), 1e-6)
        filled = np.clip(filled.astype(np.float32) + noise[..., None], 0, 255).astype(np.uint8)
    return filled, {"grain_sigma": round(sigma, 4)}


def _replace(image: np.ndarray, hard: np.ndarray, patch_rgba: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    """Clear the masked content, Poisson-blend the cleared plate into its surroundings, lay the patch.

    The patch is composited last with its own alpha, so a corrected logo keeps its exact colours.
    (Poisson-cloning the patch itself would integrate its strong edges and shift the colours it
    encloses, e.g. the inside of a logo frame, away from the brand palette.)
    """
    ys, xs = np.nonzero(hard)
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    bw, bh = x1 - x0, y1 - y0
    # fit the patch inside the box, keeping its aspect, centred
    ph, pw = patch_rgba.shape[:2]
    s = min(bw / pw, bh / ph)
    tw, th = max(1, round(pw * s)), max(1, round(ph * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LANCZOS4
    patch = cv2.resize(patch_rgba, (tw, th), interpolation=interp)
    ox, oy = (bw - tw) // 2, (bh - th) // 2
    pa = patch[..., 3:4].astype(np.float32) / 255.0

    def lay_patch(target: np.ndarray) -> np.ndarray:
        box = target[y0:y1, x0:x1].astype(np.float32)
        region = box[oy : oy + th, ox : ox + tw]
        box[oy : oy + th, ox : ox + tw] = region * (1 - pa) + patch[..., :3].astype(np.float32) * pa
        return np.clip(np.rint(box), 0, 255).astype(np.uint8)

    cleared = cv2.inpaint(image, hard, inpaintRadius=5, flags=cv2.INPAINT_TELEA)
    src = cleared[y0:y1, x0:x1]
    clone_mask = hard[y0:y1, x0:x1].copy()
    clone_mask[0, :] = clone_mask[-1, :] = 0  # seamlessClone needs the mask off the source border
    clone_mask[:, 0] = clone_mask[:, -1] = 0
    out = cleared.copy()
    if bw >= 3 and bh >= 3 and clone_mask.max() > 0:
        out = cv2.seamlessClone(src, image, clone_mask, (x0 + bw // 2, y0 + bh // 2), cv2.NORMAL_CLONE)
    out[y0:y1, x0:x1] = np.where(hard[y0:y1, x0:x1, None] > 0, lay_patch(out), out[y0:y1, x0:x1])
    return out, {"poisson": 1.0, "patch_scale": round(s, 4)}


def apply_fixes(image: np.ndarray, campaign: Campaign, *, seed: int) -> InpaintResult:
    """Apply the spec's fixes in order. Pixels outside every feathered mask are byte-identical."""
    h, w = image.shape[:2]
    current = image.copy()
    layers: list[FixLayer] = []
    union = np.zeros((h, w), dtype=np.uint8)
    for i, fix in enumerate(campaign.spec.fixes):
        rng = np.random.default_rng([seed, i])
        layer = apply_fix(current, fix, campaign, rng)
        current = blend_layer(current, layer)
        union = np.maximum(union, layer.alpha)
        layers.append(layer)
    return InpaintResult(image=current, layers=layers, changed_mask=union)


def blend_layer(current: np.ndarray, layer: FixLayer) -> np.ndarray:
    """``current`` with the layer's fixed pixels blended in by its feathered alpha; untouched where alpha is 0."""
    a = layer.alpha.astype(np.float32)[..., None] / 255.0
    blended = current.astype(np.float32) * (1 - a) + layer.rgba[..., :3].astype(np.float32) * a
    return np.where(layer.alpha[..., None] > 0, np.clip(np.rint(blended), 0, 255), current).astype(np.uint8)


def apply_fix(image: np.ndarray, fix: Fix, campaign: Campaign, rng: np.random.Generator) -> FixLayer:
    h, w = image.shape[:2]
    hard = rasterize_mask(fix.mask, (w, h), campaign)
    if fix.action == "remove":
        fixed, metrics = _remove(image, hard, rng)
    elif fix.action == "replace":
        assert fix.patch is not None
        fixed, metrics = _replace(image, hard, load_user_image(campaign.resolve(fix.patch), mode="RGBA"))
    else:
        raise ValueError(f"fix {fix.name!r}: action {fix.action!r} needs a hosted provider (not the local engine)")
    alpha = feather(hard, fix.feather)
    rgba = np.dstack([np.where(alpha[..., None] > 0, fixed, 0).astype(np.uint8), alpha])
    metrics.update({"mask_px": int((hard > 0).sum()), "feathered_px": int((alpha > 0).sum())})
    return FixLayer(name=fix.name, action=fix.action, alpha=alpha, rgba=rgba, metrics=metrics)
