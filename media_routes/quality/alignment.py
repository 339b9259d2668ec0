"""Is the brand where the label map says, in a provider's own pixels? Verify before restoring (issue #14 item 5).

A hosted model's output is not the image the brand label map was made for: a still re-rendered by Nano Banana, a
frame of a Veo or Kling clip whose camera move is only estimated (ECC, still -> frame). Restoring brand colours
there on trust paints them wherever the map (or its warp) points, so on a hard cut or a whip pan the delivered
frames carried ghost headlines that the provider never made, and the brand check, measuring the regions it had
just painted, passed. So a provider's output is corrected only where the brand is verified in its own pixels:

- **Regions.** The label map is split into brand regions: the pixels of one palette colour that lie within
  ``link_px`` of each other (a headline's letters form one region, a logo another), :func:`brand_regions`.
- **Presence** (independent of the warp estimate): the share of a region's pixels whose colour in the provider's
  output, before any correction, is within :data:`PRESENCE_DELTA_E` CIEDE2000 (colour-science, via
  :func:`quality.delta_e.delta_e00`) of the region's brand colour. A region is *present* at
  :data:`PRESENCE_MIN_FRACTION` or more. A model that drifted the brand colour a little still passes (that drift is
  what the restoration is for); a map pointing at background, a cut or a mirrored frame does not.
- **Correlation** (video only): the ECC correlation coefficient of the frame's alignment to the still
  (``cv2.findTransformECC``'s return value; None when ECC did not converge). A frame is *aligned* at
  :data:`ECC_MIN_CORRELATION` or more, and when no more than :data:`STRAY_MAX_FRACTION` of the still's brand area
  shows up in brand colours *outside* the warped map (:func:`stray_fraction`: a wrap-around or a cut puts the brand
  where the map is not, which the presence test alone cannot see).

A region of a still is verified when it is present; in a video frame every region is verified only when the frame
is aligned and all its regions are present (one missing region makes the frame's warp suspect, so nothing in that
frame is restored). :func:`verify` keeps only the verified regions in the label map it returns;
:func:`restore_verified` corrects only those (``brand.correct``) and leaves every other pixel of the provider's output
as it was. Regions not verified are *lost*: named in the result, so the stage's brand check fails with where (and,
in a clip, at which frames) the brand was lost.

The thresholds and what they give on the stubs' clips of the example still (a push-in the warp follows; a hard cut,
a whip pan, a wrap-around scroll it cannot) are in docs/quality.md, "Hosted outputs".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from media_routes.lib.imaging import srgb_to_lab
from media_routes.quality.brand import MIN_REGION_PX, BrandLock, Palette, correct, measure
from media_routes.quality.delta_e import delta_e00
from media_routes.quality.gates import image_problems

PRESENCE_DELTA_E = 20.0  # a provider pixel this close to its region's brand colour counts as that colour (drifted)
PRESENCE_MIN_FRACTION = 0.7  # share of a region's pixels that must be present for the region to be there
ECC_MIN_CORRELATION = 0.8  # ECC correlation of a frame to the still below which its warp is not trusted
# brand-coloured pixels of a frame outside the warped map (beyond what the still has outside its own map), as a
# share of the still's brand area, above which the map misses where the brand is (a wrap-around, a cut)
STRAY_MAX_FRACTION = 0.25
STRAY_WIDTH = 320  # the stray test works on frames resized to this width (it counts pixels, it needs no detail)
LINK_FRACTION = 0.012  # pixels of one colour closer than this share of the long side belong to one region


@dataclass(frozen=True)
class RegionCheck:
    """One brand region of a label map, judged on the provider's pixels."""

    colour: str
    label: int  # palette index + 1, as in the label map
    box: tuple[int, int, int, int]  # x, y, w, h
    pixels: int
    present: float  # share of its pixels within PRESENCE_DELTA_E of the brand colour (provider's pixels)
    region_mean_delta_e: float  # CIEDE2000 of the provider's region mean to the brand colour (before correction)
    verified: bool

    def describe(self) -> str:
        x, y, w, h = self.box
        return (
            f"{self.colour} at ({x}, {y}) {w}x{h}: {self.present:.0%} of {self.pixels} px within "
            f"{PRESENCE_DELTA_E:g} CIEDE2000 of {self.colour}"
        )

    def as_json(self) -> dict[str, object]:
        return {
            "colour": self.colour,
            "box": list(self.box),
            "pixels": self.pixels,
            "present": round(self.present, 4),
            "provider_region_mean_delta_e": round(self.region_mean_delta_e, 3),
            "verified": self.verified,
        }


@dataclass(frozen=True)
class Verification:
    """What :func:`verify` found: the regions, the correlation (video) and the label map of the verified regions."""

    regions: tuple[RegionCheck, ...]
    correlation: float | None = None  # None: not a video frame, or ECC did not converge (see ``aligned``)
    aligned: bool = True  # a still, or a frame whose warp is trusted: correlation and stray test passed
    stray: float | None = None  # video: brand colour outside the warped map, as a share of the still's brand area
    labels: np.ndarray | None = field(default=None, repr=False, compare=False)  # verified regions only

    @property
    def lost(self) -> tuple[RegionCheck, ...]:
        return tuple(r for r in self.regions if not r.verified)

    @property
    def verified(self) -> bool:
        """Every brand region in the map was found in the provider's pixels (and the frame is aligned)."""
        return self.aligned and not self.lost

    def reason(self) -> str:
        """Why the brand could not be verified here ('' when it was)."""
        if self.verified:
            return ""
        parts = []
        if not self.aligned:
            if self.correlation is None:
                parts.append("ECC alignment did not converge")
            elif self.correlation < ECC_MIN_CORRELATION:
                parts.append(f"ECC correlation {self.correlation:.2f} < {ECC_MIN_CORRELATION:g}")
            if self.stray is not None and self.stray > STRAY_MAX_FRACTION:
                parts.append(
                    f"brand colour outside the warped map: {self.stray:.0%} of the still's brand area "
                    f"(> {STRAY_MAX_FRACTION:.0%})"
                )
        missing = [r for r in self.regions if r.present < PRESENCE_MIN_FRACTION]
        if missing:
            parts.append("not in the provider's pixels: " + "; ".join(r.describe() for r in missing))
        return "; ".join(parts) or "not verified"

    def summary(self) -> dict[str, object]:
        return {
            "verified": self.verified,
            "correlation": None if self.correlation is None else round(self.correlation, 4),
            "stray": None if self.stray is None else round(self.stray, 4),
            "regions": [r.as_json() for r in self.regions],
        }


@dataclass(frozen=True)
class Region:
    """One brand region of a label map: the pixels of ``label`` in ``piece``, a mask placed at ``(x0, y0)``."""

    label: int
    x0: int
    y0: int
    piece: np.ndarray = field(repr=False)

    @property
    def box(self) -> tuple[int, int, int, int]:
        x, y, w, h = cv2.boundingRect(self.piece.astype(np.uint8))
        return int(self.x0 + x), int(self.y0 + y), int(w), int(h)

    def window(self) -> tuple[slice, slice]:
        h, w = self.piece.shape
        return slice(self.y0, self.y0 + h), slice(self.x0, self.x0 + w)

    def pixels_of(self, image: np.ndarray) -> np.ndarray:
        return image[self.window()][self.piece]

    def paint(self, labels: np.ndarray) -> None:
        labels[self.window()][self.piece] = self.label


def brand_regions(labels: np.ndarray, *, link_px: int | None = None) -> list[Region]:
    """The brand regions of a label map: the pixels of one label within ``link_px`` of each other.

    Deterministic (the same map gives the same regions in the same order), so a region can be found again.
    """
    if link_px is None:
        link_px = max(1, round(LINK_FRACTION * max(labels.shape[:2])))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * link_px + 1, 2 * link_px + 1))
    out: list[Region] = []
    h, w = labels.shape[:2]
    x, y, bw, bh = cv2.boundingRect((labels > 0).astype(np.uint8))
    if bw == 0 or bh == 0:
        return out
    x0, y0 = max(0, x - link_px), max(0, y - link_px)
    window = labels[y0 : min(h, y + bh + link_px), x0 : min(w, x + bw + link_px)]  # work around the brand only
    wh, ww = window.shape
    for value in (int(v) for v in np.flatnonzero(np.bincount(window.ravel())) if v > 0):
        # each label's own box (plus the link distance) is all its dilation can reach: the same components in the
        # same (raster) order as over the whole window, for a fraction of the work when the labels lie apart
        lx, ly, lw, lh = cv2.boundingRect((window == value).astype(np.uint8))
        bx0, by0 = max(0, lx - link_px), max(0, ly - link_px)
        mask = window[by0 : min(wh, ly + lh + link_px), bx0 : min(ww, lx + lw + link_px)] == value
        n, comp, stats, _ = cv2.connectedComponentsWithStats(cv2.dilate(mask.astype(np.uint8), kernel), connectivity=8)
        for c in range(1, n):
            cx, cy, cw, ch = (int(v) for v in stats[c, :4])
            piece = mask[cy : cy + ch, cx : cx + cw] & (comp[cy : cy + ch, cx : cx + cw] == c)
            if piece.any():
                out.append(Region(value, x0 + bx0 + cx, y0 + by0 + cy, piece))
    return out


@dataclass(frozen=True)
class StrayBaseline:
    """The still's brand-coloured pixels (at :data:`STRAY_WIDTH`): inside its (dilated) map and outside it."""

    labels: tuple[int, ...]  # the palette entries the map uses
    inside: int
    outside: int


def _near_brand(image: np.ndarray, labels: np.ndarray, palette: Palette, values: Sequence[int]) -> tuple[Any, Any]:
    """(pixels within PRESENCE_DELTA_E of any of the map's colours, the map dilated), both at STRAY_WIDTH."""
    h, w = image.shape[:2]
    size = (STRAY_WIDTH, max(1, round(h * STRAY_WIDTH / w)))
    lab = srgb_to_lab(cv2.resize(image, size, interpolation=cv2.INTER_AREA)).astype(np.float64)
    near = np.zeros(lab.shape[:2], bool)
    for value in values:
        target = palette.lab()[value - 1]
        # CIEDE2000 >= |dL| / S_L and S_L <= 1.75 over L* in [0, 100]: only pixels within 1.75 x the tolerance in
        # L* can be near, so CIEDE2000 is computed for those only (the same answer, a fraction of the work)
        candidates = np.abs(lab[..., 0] - target[0]) <= PRESENCE_DELTA_E * 1.75
        if candidates.any():
            near[candidates] |= delta_e00(lab[candidates], target[None, :]) <= PRESENCE_DELTA_E
    small = cv2.resize((labels > 0).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    return near, cv2.dilate(small, np.ones((7, 7), np.uint8)) > 0


def stray_baseline(still: np.ndarray, labels: np.ndarray, palette: Palette) -> StrayBaseline:
    """What the still itself has: brand-coloured pixels inside its map (the brand area) and outside it (other
    things that happen to be brand-coloured, which a frame may show too without the map missing anything)."""
    values = tuple(int(v) for v in np.flatnonzero(np.bincount(labels.ravel())) if v > 0)
    near, inside = _near_brand(still, labels, palette, values)
    return StrayBaseline(values, int((near & inside).sum()), int((near & ~inside).sum()))


def stray_fraction(
    frame: np.ndarray, labels: np.ndarray, palette: Palette, baseline: StrayBaseline, *, area_scale: float = 1.0
) -> float | None:
    """Brand-coloured pixels of ``frame`` outside its warped map ``labels``, beyond the still's own, as a share of
    the still's brand area (None when the still has none). ``area_scale``: how much the warp enlarges the still in
    the frame (1 / det of the frame -> still warp), so a push-in that enlarges the still's other brand-coloured
    things is expected to show that many more. A warp that follows the camera keeps this near 0; a wrap-around
    scroll, a cut or a mirrored shot puts the brand where the map is not."""
    if baseline.inside == 0 or not baseline.labels:
        return None
    near, inside = _near_brand(frame, labels, palette, baseline.labels)
    scale = max(area_scale, 1e-6)
    return max(0.0, (int((near & ~inside).sum()) - baseline.outside * scale) / (baseline.inside * scale))


def verify(
    image: np.ndarray,
    labels: np.ndarray,
    palette: Palette,
    *,
    correlation: float | None = None,
    video: bool = False,
    stray: float | None = None,
    tolerance: float = PRESENCE_DELTA_E,
    min_fraction: float = PRESENCE_MIN_FRACTION,
    min_correlation: float = ECC_MIN_CORRELATION,
) -> Verification:
    """Judge every brand region of ``labels`` on the provider's ``image`` (before any correction).

    ``video``: ``image`` is a frame whose ``labels`` were warped by an ECC estimate with ``correlation``; the frame
    is aligned when the correlation is at least ``min_correlation`` and ``stray`` (:func:`stray_fraction`, if
    given) at most :data:`STRAY_MAX_FRACTION`. The returned ``labels`` keep only the verified regions (all zero in a
    frame that is not aligned). Regions smaller than ``brand.MIN_REGION_PX`` are too small to judge or to correct:
    dropped from the map, not counted as lost.
    """
    if labels.shape != image.shape[:2]:
        raise ValueError(f"label map {labels.shape} does not match image {image.shape[:2]}")
    aligned = not video or (
        correlation is not None and correlation >= min_correlation and (stray is None or stray <= STRAY_MAX_FRACTION)
    )
    targets = palette.lab()
    judged: list[tuple[Region, RegionCheck]] = []
    for region in brand_regions(labels):
        pixels = int(region.piece.sum())
        if pixels < MIN_REGION_PX:
            continue
        lab = srgb_to_lab(region.pixels_of(image)[None, ...])[0].astype(np.float64)
        target = targets[region.label - 1]
        present = float((delta_e00(lab, target[None, :]) <= tolerance).mean())
        check = RegionCheck(
            colour=palette.names[region.label - 1],
            label=region.label,
            box=region.box,
            pixels=pixels,
            present=present,
            region_mean_delta_e=float(delta_e00(lab.mean(axis=0), target)),
            verified=aligned and present >= min_fraction,
        )
        judged.append((region, check))
    if video and not all(check.verified for _, check in judged):
        # one region missing in a frame makes its warp suspect: nothing in that frame is trusted (or restored)
        judged = [(region, dataclasses.replace(check, verified=False)) for region, check in judged]
    kept = np.zeros_like(labels)
    for region, check in judged:
        if check.verified:
            region.paint(kept)
    regions = tuple(check for _, check in judged)
    return Verification(regions=regions, correlation=correlation, aligned=aligned, stray=stray, labels=kept)


def keep_verified(labels: np.ndarray, verification: Verification) -> np.ndarray:
    """``labels`` (the same map :func:`verify` judged) reduced to the regions it verified.

    For a second pass over the same frame (e.g. measuring the decoded video) without the provider's pixels: the
    regions are found again deterministically and matched by label and box.
    """
    kept = np.zeros_like(labels)
    if not verification.aligned:
        return kept
    ok = {(r.label, r.box) for r in verification.regions if r.verified}
    for region in brand_regions(labels):
        if (region.label, region.box) in ok:
            region.paint(kept)
    return kept


def restore_verified(
    image: np.ndarray,
    labels: np.ndarray,
    palette: Palette,
    *,
    correlation: float | None = None,
    video: bool = False,
    passes: int = 3,
    tolerance: float = 0.05,
) -> tuple[np.ndarray, Verification]:
    """Verify, then restore brand colours (``brand.correct``) in the verified regions only.

    Pixels outside the verified regions (and their one-pixel feather) are returned exactly as the provider made
    them; a frame that is not aligned is returned unchanged.
    """
    verification = verify(image, labels, palette, correlation=correlation, video=video)
    kept = verification.labels
    if kept is None or not kept.any():
        return image, verification
    return correct(image, kept, palette, passes=passes, tolerance=tolerance), verification


def lock_verified(image: np.ndarray, labels: np.ndarray | None, palette: Palette, *, aa_px: int = 1) -> BrandLock:
    """``brand.lock`` for a provider's output: restore only the brand regions found in its own pixels.

    ``before`` measures the provider's pixels in every region of the map, ``after`` the corrected image in the
    verified regions; ``verification`` says which regions were lost (not painted). A black, blank or uniform output is
    left as it is (as ``brand.lock`` does).
    """
    problems = image_problems(image)
    if labels is None:
        return BrandLock(image, {}, {}, problems)
    before = measure(image, labels, palette, aa_px=aa_px)
    if problems:
        return BrandLock(image, before, before, problems, verification=verify(image, labels, palette))
    corrected, verification = restore_verified(image, labels, palette)
    kept = verification.labels if verification.labels is not None else np.zeros_like(labels)
    after = measure(corrected, kept, palette, aa_px=aa_px)
    return BrandLock(corrected, before, after, problems, verification=verification)


def describe_lost_regions(verification: Verification | None) -> str:
    """The check's line for a still whose brand regions were not all found in the provider's output ('' if none)."""
    if verification is None or not verification.lost:
        return ""
    return (
        f"{len(verification.lost)} brand region(s) not found in the provider's own pixels (left as the provider made "
        f"them, not painted): " + "; ".join(r.describe() for r in verification.lost)
    )


def frame_ranges(frames: Iterable[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``"3-5, 9"`` (frame numbers as the check names them, 1-based)."""
    ordered = sorted(set(frames))
    if not ordered:
        return ""
    parts, start, prev = [], ordered[0], ordered[0]
    for f in ordered[1:]:
        if f != prev + 1:
            parts.append(f"{start}-{prev}" if prev > start else str(start))
            start = f
        prev = f
    parts.append(f"{start}-{prev}" if prev > start else str(start))
    return ", ".join(parts)


@dataclass(frozen=True)
class ClipAlignment:
    """Per-frame verifications of a hosted clip (frame ``i`` is ``frames[i - 1]``)."""

    frames: tuple[Verification, ...]

    @property
    def lost_frames(self) -> list[int]:
        return [i for i, v in enumerate(self.frames, start=1) if not v.verified]

    def summary(self, *, per_frame: bool = True) -> dict[str, object]:
        """Counts, the lost frames, the thresholds, the first lost frame in detail, and (``per_frame``) the
        correlation, stray share, lowest presence and the provider's worst region-mean CIEDE2000 of every frame."""
        corr = [v.correlation for v in self.frames]
        stray = [v.stray for v in self.frames]
        present = [min((r.present for r in v.regions), default=1.0) for v in self.frames]
        provider = [max((r.region_mean_delta_e for r in v.regions), default=0.0) for v in self.frames]
        lost = self.lost_frames
        out: dict[str, object] = {
            "frames": len(self.frames),
            "frames_verified": len(self.frames) - len(lost),
            "frames_lost": frame_ranges(lost),
            "thresholds": {
                "ecc_min_correlation": ECC_MIN_CORRELATION,
                "presence_delta_e": PRESENCE_DELTA_E,
                "presence_min_fraction": PRESENCE_MIN_FRACTION,
                "stray_max_fraction": STRAY_MAX_FRACTION,
            },
            "correlation_per_frame": [None if c is None else round(c, 3) for c in corr],
            "stray_per_frame": [None if v is None else round(v, 3) for v in stray],
            "presence_min_per_frame": [round(p, 3) for p in present],
            "provider_worst_region_mean_delta_e_per_frame": [round(p, 2) for p in provider],
            "first_lost": None if not lost else {"frame": lost[0], **self.frames[lost[0] - 1].summary()},
        }
        return out if per_frame else {k: v for k, v in out.items() if not k.endswith("_per_frame")}

    def describe_lost(self) -> str:
        """One line naming the frames where the brand was not verified and why (the first of them in detail)."""
        lost = self.lost_frames
        if not lost:
            return ""
        return (
            f"brand region not found in the provider's own pixels at frame(s) {frame_ranges(lost)} of "
            f"{len(self.frames)} (left as the provider made them, not painted); frame {lost[0]}: "
            f"{self.frames[lost[0] - 1].reason()}"
        )


def area_scale(warp: np.ndarray) -> float:
    """How much a frame -> still affine warp (2x3) enlarges the still in the frame: 1 / |det| of its linear part."""
    det = abs(float(np.linalg.det(np.asarray(warp, np.float64)[:, :2])))
    return 1.0 / det if det > 1e-9 else 1.0


def verify_frame(
    frame: np.ndarray,
    labels: np.ndarray,
    palette: Palette,
    correlation: float | None,
    baseline: StrayBaseline | None,
    warp: np.ndarray | None = None,
) -> Verification:
    """:func:`verify` for one frame of a hosted clip: ``labels`` is the still's map warped to it by ``warp`` (frame ->
    still, 2x3), whose ECC ``correlation`` it had; ``baseline`` the still's :func:`stray_baseline`. The label array is
    not kept (a clip has many frames): :func:`keep_verified` finds the verified regions again."""
    scale = area_scale(warp) if warp is not None else 1.0
    stray = stray_fraction(frame, labels, palette, baseline, area_scale=scale) if baseline is not None else None
    v = verify(frame, labels, palette, correlation=correlation, video=True, stray=stray)
    return Verification(v.regions, v.correlation, v.aligned, v.stray)
