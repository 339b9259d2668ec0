"""Stage 1, local engine: a layered compositor that renders the campaign's "blueprint" at 1K.

Layers, bottom to top: palette background with seeded texture, key-light falloff and colour
temperature (in linear light), soft contact shadows cast away from the key light, subject cutouts
and flat shapes placed per layout, and the exact headline text in the brand font.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import colour
import cv2
import numpy as np
from PIL import Image, ImageFont

from media_routes.lib import text
from media_routes.lib.imaging import hex_to_rgb, linear_to_srgb, load_user_image, srgb_to_linear, to_uint8
from media_routes.spec import Campaign, CampaignSpec, ImageLayer, ShapeLayer

FONTS_DIR = text.FONTS_DIR


@dataclass
class BaseResult:
    image: np.ndarray  # uint8 (H, W, 3)
    # uint8 (H, W): foreground = layers marked `subject` plus the headline. Later stages keep it in
    # register: outpaint never mirrors it into the fill, parallax motion moves it as the subject.
    subject_mask: np.ndarray
    metrics: dict[str, object] = field(default_factory=dict)
    headline_alpha: np.ndarray | None = None  # uint8 glyph coverage of the headline (exact brand colour)


def kelvin_rgb_gain(kelvin: float, reference_k: float = 6504.0) -> np.ndarray:
    """Linear-RGB gains that tint a D65-balanced scene as if lit by a ``kelvin`` source.

    The blackbody chromaticity (CIE 1960 UCS Planckian locus via colour-science) is converted to
    linear sRGB and normalised so the reference temperature maps to (1, 1, 1).
    """

    def rgb(k: float) -> np.ndarray:
        xy = colour.temperature.CCT_to_xy_Kang2002(k)  # valid 1667-25000 K; the spec allows 2000-12000
        xyz = colour.xy_to_XYZ(xy)
        lin = colour.XYZ_to_RGB(xyz, "sRGB", apply_cctf_encoding=False)
        return np.asarray(lin, dtype=np.float64)

    gain = rgb(kelvin) / rgb(reference_k)
    return (gain / gain[1]).astype(np.float32)


def _color(spec: CampaignSpec, ref: str) -> np.ndarray:
    return np.array(hex_to_rgb(spec.color(ref)), dtype=np.float32) / 255.0


def _smooth_noise(rng: np.random.Generator, size: tuple[int, int], scale: float) -> np.ndarray:
    """Band-limited noise in [-1, 1]: random grid upsampled with bicubic interpolation."""
    w, h = size
    gw, gh = max(2, int(w / (scale * 16)) + 2), max(2, int(h / (scale * 16)) + 2)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    out = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(out / 2.5, -1, 1)


def _background(spec: CampaignSpec, rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    bg = spec.scene.background
    cols = [_color(spec, c) for c in bg.colors]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if bg.style == "studio":
        # radial falloff from a point slightly above centre: a seamless studio sweep
        r = np.sqrt(((xx - w * 0.5) / w) ** 2 + ((yy - h * 0.42) / h) ** 2) / 0.75
        t = np.clip(r, 0, 1)
    else:
        t = yy / max(h - 1, 1)
        if bg.style == "sky":
            t = np.clip(t / 0.7, 0, 1) ** 0.8
    stops = np.linspace(0, 1, len(cols)) if len(cols) > 1 else np.array([0.0])
    out = np.empty((h, w, 3), dtype=np.float32)
    for ch in range(3):
        out[..., ch] = np.interp(t, stops, [c[ch] for c in cols]) if len(cols) > 1 else cols[0][ch]
    tex = bg.texture
    if tex.kind != "none" and tex.strength > 0:
        if tex.kind == "grain":
            n = rng.standard_normal((h, w)).astype(np.float32) * 0.5
        elif tex.kind == "concrete":
            n = 0.6 * _smooth_noise(rng, size, tex.scale) + 0.4 * rng.standard_normal((h, w)).astype(np.float32) * 0.35
        else:
            n = _smooth_noise(rng, size, tex.scale)
        out = out * (1.0 + tex.strength * n[..., None])
    return np.clip(out, 0, 1)


def _light_field(spec: CampaignSpec, size: tuple[int, int]) -> np.ndarray:
    """Scalar light per pixel: ambient + key light falling off across the frame from its direction."""
    w, h = size
    kl = spec.scene.key_light
    theta = np.deg2rad(kl.direction_deg)
    dx, dy = np.cos(theta), -np.sin(theta)  # image y grows downwards
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u = ((xx / w - 0.5) * dx + (yy / h - 0.5) * dy) + 0.5  # 1 near the light, 0 far from it
    u = np.clip(u, 0, 1)
    return (kl.ambient + kl.intensity * u).astype(np.float32)


def _shadow_offset(spec: CampaignSpec, distance: float, long_side: int) -> tuple[float, float]:
    theta = np.deg2rad(spec.scene.key_light.direction_deg)
    # cast away from the light
    return (-np.cos(theta) * distance * long_side, np.sin(theta) * distance * long_side)


def _place_alpha(alpha: np.ndarray, size: tuple[int, int], x0: int, y0: int) -> np.ndarray:
    """Paste a small float alpha onto a zero canvas of ``size`` at (x0, y0), clipping at the edges."""
    w, h = size
    out = np.zeros((h, w), dtype=np.float32)
    ah, aw = alpha.shape[:2]
    sx0, sy0 = max(0, -x0), max(0, -y0)
    dx0, dy0 = max(0, x0), max(0, y0)
    dx1, dy1 = min(w, x0 + aw), min(h, y0 + ah)
    if dx1 > dx0 and dy1 > dy0:
        out[dy0:dy1, dx0:dx1] = alpha[sy0 : sy0 + dy1 - dy0, sx0 : sx0 + dx1 - dx0]
    return out


def _image_layer(
    campaign: Campaign, layer: ImageLayer, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    w, h = size
    rgba = load_user_image(campaign.resolve(layer.source), mode="RGBA")
    target_h = max(1, round(layer.height * h))
    scale = target_h / rgba.shape[0]
    target_w = max(1, round(rgba.shape[1] * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LANCZOS4
    # resize premultiplied colour so transparent fringes do not bleed dark halos
    f = rgba.astype(np.float32) / 255.0
    premul = np.dstack([f[..., :3] * f[..., 3:4], f[..., 3:4]])
    premul = np.clip(cv2.resize(premul, (target_w, target_h), interpolation=interp), 0, 1)
    a = premul[..., 3]
    rgb = np.where(a[..., None] > 1e-4, premul[..., :3] / np.maximum(a[..., None], 1e-4), 0)
    x0 = round(layer.center[0] * w - target_w / 2)
    y0 = round(layer.center[1] * h - target_h / 2)
    full_a = _place_alpha(a, size, x0, y0)
    full_rgb = np.stack([_place_alpha(rgb[..., c], size, x0, y0) for c in range(3)], axis=-1)
    return srgb_to_linear(full_rgb), full_a, (x0, y0, target_w, target_h)


def _shape_layer(spec: CampaignSpec, layer: ShapeLayer, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    w, h = size
    ss = 4  # supersampled rasterisation for clean anti-aliased edges
    mask = np.zeros((h * ss, w * ss), dtype=np.uint8)
    pts = np.array([[p[0] * w * ss, p[1] * h * ss] for p in layer.points], dtype=np.float64)
    if layer.shape == "polygon":
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 255, lineType=cv2.LINE_8)
    elif layer.shape == "rect":
        (x0, y0), (x1, y1) = np.round(pts).astype(int)
        cv2.rectangle(mask, (min(x0, x1), min(y0, y1)), (max(x0, x1), max(y0, y1)), 255, thickness=-1)
    else:
        (x0, y0), (x1, y1) = pts
        center = (round((x0 + x1) / 2), round((y0 + y1) / 2))
        axes = (round(abs(x1 - x0) / 2), round(abs(y1 - y0) / 2))
        cv2.ellipse(mask, center, axes, 0, 0, 360, 255, thickness=-1)
    alpha = cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    base = srgb_to_linear(_color(spec, layer.color))
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    shade = 1.0 + layer.shade * (0.5 - yy)  # lighter at the top for positive shade
    rgb = np.broadcast_to(base, (h, w, 3)) * shade[..., None]
    return np.clip(rgb, 0, 1).astype(np.float32), alpha


def _font(campaign: Campaign, name: str, px: int) -> ImageFont.FreeTypeFont:
    if name.startswith("builtin:"):
        path = FONTS_DIR / f"{name.removeprefix('builtin:')}.ttf"
    else:
        path = campaign.resolve(name)
    return ImageFont.truetype(str(path), size=px)


def _headline(
    campaign: Campaign, size: tuple[int, int], *, scale: float = 1.0
) -> tuple[np.ndarray, dict[str, object]] | None:
    """The headline's glyph coverage (float 0..1) on a canvas of ``size`` (the authored canvas), and its layout
    figures. With ``scale`` the same layout is set again on a canvas ``scale`` times larger: the font size, fit and
    placement are decided at the authored size, then the glyphs are rasterised at the larger size from the font's
    outlines (never resampled), so later stages composite type as sharp as at the base."""
    hl = campaign.spec.scene.headline
    if hl is None:
        return None
    w, h = size
    ss = 2
    px = max(8, round(hl.size * h / 0.72 * ss))  # cap height is ~72% of the em size in DejaVu
    font = _font(campaign, hl.font, px)
    # measured on the ink that is drawn (media_routes/lib/text.py), so fitting and centring never clip a glyph
    ink, baseline, _ = text.draw_line(font, hl.text, hl.tracking * px)
    limit = hl.max_width * w * ss
    if ink.width > limit:  # shrink to fit the allowed width
        px = max(8, int(px * limit / ink.width))
        font = _font(campaign, hl.font, px)
        ink, baseline, _ = text.draw_line(font, hl.text, hl.tracking * px)
    fitted = px
    if scale != 1.0:
        px = max(8, round(fitted * scale))
        font = _font(campaign, hl.font, px)
        ink, baseline, _ = text.draw_line(font, hl.text, hl.tracking * px)
    cw, ch = round(w * scale), round(h * scale)
    canvas = Image.new("L", (cw * ss, ch * ss), 0)
    text.place_line(canvas, ink, baseline, (hl.center[0] * cw * ss, hl.center[1] * ch * ss))
    alpha = np.asarray(canvas.resize((cw, ch), Image.Resampling.BOX), dtype=np.float32) / 255.0
    info: dict[str, object] = {
        "headline_text": hl.text,
        "headline_font_px": round(fitted / ss),
        "headline_bbox": text.ink_box(alpha),
    }
    return alpha, info


def headline_alpha(campaign: Campaign, scale: float = 1.0) -> np.ndarray | None:
    """The headline's glyph coverage (uint8) set at ``scale`` times the authored canvas (None without a headline):
    the base composition's at 1, the same layout rasterised from the font at a larger size for later stages."""
    hl = _headline(campaign, campaign.spec.scene.canvas_size, scale=scale)
    return None if hl is None else to_uint8(hl[0])


def headline_rgb(spec: CampaignSpec) -> tuple[int, int, int] | None:
    """The headline's exact sRGB colour (None without a headline)."""
    hl = spec.scene.headline
    return None if hl is None else hex_to_rgb(spec.color(hl.color))


def protected_sources(campaign: Campaign) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For each layer marked ``protect`` (a product): its colours as the source has them, placed on the canvas
    (uint8 sRGB: the cutout resampled into place, or the shape's flat colour), and its visible coverage (uint8: the
    layer's alpha, less every layer and the headline set over it). No light, tint or shadow is applied: this is
    the reference the stages hold the product to."""
    spec = campaign.spec
    size = spec.scene.canvas_size
    w, h = size
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for layer in spec.scene.layers:
        if isinstance(layer, ImageLayer):
            rgb_lin, alpha, _ = _image_layer(campaign, layer, size) if layer.protect or out else (None, None, None)
        else:
            rgb_lin, alpha = _shape_layer(spec, layer, size) if layer.protect or out else (None, None)
        if alpha is None or rgb_lin is None:
            continue
        for name, (rgb, cover) in out.items():  # a later layer hides what it covers
            out[name] = (rgb, cover * (1.0 - alpha))
        if layer.protect:
            if isinstance(layer, ShapeLayer):  # the authored colour, without the shape's shading
                rgb_lin = np.broadcast_to(srgb_to_linear(_color(spec, layer.color)), (h, w, 3))
            out[layer.name] = (to_uint8(linear_to_srgb(rgb_lin)), alpha)
    hl = _headline(campaign, size)
    return {
        name: (rgb, to_uint8(cover * (1.0 - hl[0]) if hl is not None else cover)) for name, (rgb, cover) in out.items()
    }


def compose(campaign: Campaign, *, seed: int) -> BaseResult:
    """Render the base composition for a campaign. Deterministic for (spec, seed)."""
    spec = campaign.spec
    size = spec.scene.canvas_size
    w, h = size
    rng = np.random.default_rng(seed)
    long_side = max(w, h)

    bg = _background(spec, rng, size)
    lin = srgb_to_linear(bg)
    light = _light_field(spec, size)
    subject = np.zeros((h, w), dtype=np.float32)
    placed: list[dict[str, object]] = []

    for layer in spec.scene.layers:
        if isinstance(layer, ImageLayer):
            rgb, alpha, box = _image_layer(campaign, layer, size)
            placed.append({"name": layer.name, "kind": "image", "box": list(box)})
        else:
            rgb, alpha = _shape_layer(spec, layer, size)
            placed.append({"name": layer.name, "kind": "shape", "shape": layer.shape})
        if layer.shadow is not None and layer.shadow.opacity > 0:
            dx, dy = _shadow_offset(spec, layer.shadow.distance, long_side)
            # np.float32 of a nested list is a float32 array at run time; the stubs type it as a scalar
            m = cast(np.ndarray, np.float32([[1, 0, dx], [0, 1, dy]]))  # type: ignore[arg-type]
            sh = cv2.warpAffine(alpha, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
            sigma = max(0.5, layer.shadow.blur * long_side)
            sh = cv2.GaussianBlur(sh, (0, 0), sigma)
            lin = lin * (1.0 - layer.shadow.opacity * sh[..., None])
        lin = lin * (1.0 - alpha[..., None]) + rgb * alpha[..., None]
        if layer.subject:
            subject = np.maximum(subject, alpha)

    tint = kelvin_rgb_gain(spec.scene.key_light.kelvin)
    lin = lin * light[..., None] * tint[None, None, :]

    image = to_uint8(linear_to_srgb(lin))
    metrics: dict[str, object] = {
        "canvas": [w, h],
        "layers": placed,
        "key_light_k": spec.scene.key_light.kelvin,
    }

    hl = _headline(campaign, size)
    if hl is not None:
        alpha, info = hl
        assert spec.scene.headline is not None  # _headline returns None without one
        subject = np.maximum(subject, alpha)
        color = np.array(hex_to_rgb(spec.color(spec.scene.headline.color)), dtype=np.float32)
        # text is set after lighting: brand type keeps its exact colour
        out = image.astype(np.float32) * (1 - alpha[..., None]) + color * alpha[..., None]
        image = np.clip(np.rint(out), 0, 255).astype(np.uint8)
        metrics.update(info)

    return BaseResult(
        image=image,
        subject_mask=to_uint8(subject),
        metrics=metrics,
        headline_alpha=to_uint8(hl[0]) if hl is not None else None,
    )
