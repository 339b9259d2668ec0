"""Brand colour lock: locate the palette's colours, measure them at every stage and frame, restore them.

**Where brand colours are.** A *label map* (uint8, 0 = no brand colour, ``i + 1`` = palette entry
``i``) is made where a colour is authored exactly: in the base composition (headline interiors and
any pixel within ``LOCATE_DELTA_E`` CIEDE2000 of a palette colour) and, for replaced patches, in
``inpaint_fix``. Later stages carry the map with the same geometry as the pixels (resize, canvas
placement, per-frame warps), so each stage is measured on the same regions.

**Measure.** Per palette colour: CIEDE2000 between the *region mean* (the label eroded by one pixel
so anti-aliased edges and chroma-subsampled video edges do not count) and the target hex; plus mean,
p95 and max of the per-pixel CIEDE2000 in the region. And the same on the *stroke interior*: the label
eroded by the anti-aliasing width at the image's resolution (``aa_px``: one pixel of the authored
canvas is ``aa_px`` pixels of a 4x upscale, so its edge band, and what resampling and sharpening do
to it, is that much wider). The brand check is on the interior: its region mean and per-pixel p95
(a light halo and a dark undershoot across a stroke cancel in a region mean; they do not in a p95).
A region too thin to keep :data:`MIN_REGION_PX` interior pixels is measured on the one-pixel erosion
and says so (``interior_fallback``).

**Correct.** In CIE L*a*b*, each region is shifted by ``target - interior mean`` (L*, a* and b*
alike), so its interior mean becomes the brand colour exactly while luminance detail (each pixel's deviation
from the mean) is kept. The shift is feathered one pixel past the region edge. Clipping to the sRGB
gamut can leave a residual, so the shift is repeated up to three times.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

import cv2
import numpy as np
from scipy.ndimage import find_objects

from media_routes.lib.imaging import lab_to_srgb, srgb_to_lab
from media_routes.quality.delta_e import delta_e00, hex_to_lab
from media_routes.quality.gates import image_problems

if TYPE_CHECKING:
    from media_routes.quality.alignment import Verification

LOCATE_DELTA_E = 2.0  # a pixel this close to a palette colour in the authored image is that colour
MIN_REGION_PX = 24  # ignore specks


@dataclass(frozen=True)
class Palette:
    names: tuple[str, ...]
    hexes: tuple[str, ...]
    # per-colour L*a*b* offsets added to the correction targets (not to measurement targets): used to
    # pre-compensate a systematic shift of a later step, e.g. video chroma subsampling
    offsets: tuple[tuple[float, float, float], ...] | None = None

    @classmethod
    def from_dict(cls, palette: dict[str, str]) -> Palette:
        return cls(tuple(palette), tuple(palette.values()))

    def lab(self) -> np.ndarray:
        return _palette_lab(self.hexes)

    def correction_lab(self) -> np.ndarray:
        return self.lab() if self.offsets is None else self.lab() + np.asarray(self.offsets)

    def compensated(self, offsets: dict[str, np.ndarray]) -> Palette:
        """A palette whose correction targets are moved by ``offsets`` (name -> delta L*a*b*)."""
        zero = np.zeros(3)
        return Palette(
            self.names,
            self.hexes,
            tuple(
                cast("tuple[float, float, float]", tuple(float(v) for v in offsets.get(n, zero))) for n in self.names
            ),
        )


@lru_cache(maxsize=64)
def _palette_lab(hexes: tuple[str, ...]) -> np.ndarray:
    lab = np.stack([hex_to_lab(h) for h in hexes])
    lab.flags.writeable = False
    return lab


def locate(
    image: np.ndarray,
    palette: Palette,
    *,
    exact: dict[str, np.ndarray] | None = None,
    by_colour: list[str] | None = None,
    within: np.ndarray | None = None,
) -> np.ndarray:
    """Label map of brand-coloured pixels in an image where the colours were authored exactly.

    ``exact`` maps palette names to masks (uint8 0..255) known to be that colour, e.g. the headline's
    glyph coverage; pixels with coverage >= 250 are labelled without looking at their colour.
    ``by_colour`` names the palette colours also found by proximity (CIEDE2000 <= LOCATE_DELTA_E;
    default: all of them), optionally only ``within`` a boolean mask.
    """
    labels = np.zeros(image.shape[:2], np.uint8)
    names = list(palette.names) if by_colour is None else list(by_colour)
    if names:
        area = np.ones(image.shape[:2], bool) if within is None else within.astype(bool)
        if area.any():
            lab = srgb_to_lab(image[area][None, ...])[0]
            idx = [palette.names.index(n) for n in names]
            targets = palette.lab()[idx]
            de = np.stack([delta_e00(lab, t[None, :]) for t in targets], axis=-1)
            near = de.min(axis=-1) <= LOCATE_DELTA_E
            found = np.zeros(lab.shape[0], np.uint8)
            found[near] = np.array(idx, np.uint8)[de[near].argmin(axis=-1)] + 1
            labels[area] = found
    for name, mask in (exact or {}).items():
        labels[mask >= 250] = palette.names.index(name) + 1
    # drop specks: connected pieces too small to measure
    for i in range(1, len(palette.names) + 1):
        n, comp, stats, _ = cv2.connectedComponentsWithStats((labels == i).astype(np.uint8), connectivity=8)
        for c in range(1, n):
            if stats[c, cv2.CC_STAT_AREA] < MIN_REGION_PX:
                labels[comp == c] = 0
    return labels


def aa_width(content_scale: float) -> int:
    """The anti-aliasing width, in pixels, of an image whose content is ``content_scale`` times the authored canvas
    (1 at the base, 4 after a 4x upscale, 2 for a 1080p frame of a 1K canvas). Never below one pixel."""
    return max(1, math.ceil(content_scale - 1e-6))


def _erode(mask: np.ndarray, px: int) -> np.ndarray:
    return cv2.erode(mask.astype(np.uint8), np.ones((2 * px + 1, 2 * px + 1), np.uint8)) > 0


def connected_pieces(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """``cv2.connectedComponentsWithStats`` (8-connected) numbering the pieces in raster order of their first pixel
    (Wu's scan-order algorithm), so the numbering of a mask does not depend on how much empty margin surrounds it:
    a label's pieces come out the same from its bounding box as from the whole frame."""
    return cv2.connectedComponentsWithStatsWithAlgorithm(mask.astype(np.uint8), 8, cv2.CV_32S, cv2.CCL_WU)


def label_boxes(labels: np.ndarray, *, pad: int) -> list[tuple[int, tuple[slice, slice]]]:
    """``(label, box)`` for every label present in ``labels``, in increasing order: ``box`` is the label's bounding
    box grown by ``pad`` pixels (clipped to the map). A morphology of radius <= ``pad`` on ``labels[box] == label``
    gives exactly what it gives on the whole map (every pixel within reach of the label is inside the box, and
    the box meets the map's border only where the map does), at the cost of the box instead of the frame."""
    h, w = labels.shape[:2]
    out = []
    for index, found in enumerate(find_objects(labels), start=1):
        if found is None:
            continue
        rows, cols = found
        out.append(
            (
                index,
                (
                    slice(max(0, rows.start - pad), min(h, rows.stop + pad)),
                    slice(max(0, cols.start - pad), min(w, cols.stop + pad)),
                ),
            )
        )
    return out


def measure(
    image: np.ndarray, labels: np.ndarray, palette: Palette, *, per_pixel: bool = True, aa_px: int = 1
) -> dict[str, dict[str, Any]]:
    """Per palette colour present: region-mean CIEDE2000 and (``per_pixel``) per-pixel mean / p95 / max on the
    region; and region mean and per-pixel p95 on the stroke interior (eroded by ``aa_px``), always, since the brand
    check is on them. ``lab_mean`` is the interior's mean (what :func:`correct` moves to the target)."""
    out: dict[str, dict[str, Any]] = {}
    if labels.shape != image.shape[:2]:
        raise ValueError(f"label map {labels.shape} does not match image {image.shape[:2]}")
    targets = palette.lab()
    for i, box in label_boxes(labels, pad=max(1, aa_px)):
        own = labels[box] == i
        inside = _erode(own, 1)
        if inside.sum() < MIN_REGION_PX:
            continue
        core = _erode(own, aa_px) if aa_px > 1 else inside
        fallback = int(core.sum()) < MIN_REGION_PX
        if fallback:
            core = inside
        crop = image[box]
        lab = srgb_to_lab(crop[inside][None, ...])[0].astype(np.float64)
        core_lab = lab if core is inside else srgb_to_lab(crop[core][None, ...])[0].astype(np.float64)
        target = targets[i - 1]
        core_px = delta_e00(core_lab, target[None, :])
        entry: dict[str, Any] = {
            "region_mean_delta_e": round(float(delta_e00(lab.mean(axis=0), target)), 4),
            "pixels": int(inside.sum()),
            "hex": palette.hexes[i - 1],
            "interior_mean_delta_e": round(float(delta_e00(core_lab.mean(axis=0), target)), 4),
            "interior_p95": round(float(np.percentile(core_px, 95)), 4),
            "interior_pixels": int(core.sum()),
            "erode_px": 1 if fallback else aa_px,
            "lab_mean": [round(float(v), 3) for v in core_lab.mean(axis=0)],
        }
        if fallback and aa_px > 1:
            entry["interior_fallback"] = True
        if per_pixel:
            per_px = delta_e00(lab, target[None, :])
            entry |= {
                "mean": round(float(per_px.mean()), 4),
                "p95": round(float(np.percentile(per_px, 95)), 4),
                "max": round(float(per_px.max()), 4),
            }
        out[palette.names[i - 1]] = entry
    return out


def worst(report: dict[str, dict[str, Any]]) -> float:
    """The largest stroke-interior region-mean CIEDE2000 in a report (0 when no brand colour is present). A report
    made before interiors were measured gives its region mean."""
    return max((float(v.get("interior_mean_delta_e", v["region_mean_delta_e"])) for v in report.values()), default=0.0)


def worst_p95(report: dict[str, dict[str, Any]]) -> float:
    """The largest stroke-interior per-pixel p95 CIEDE2000 in a report (0 when none was measured)."""
    return max((float(v.get("interior_p95", 0.0)) for v in report.values()), default=0.0)


def correct(
    image: np.ndarray,
    labels: np.ndarray,
    palette: Palette,
    passes: int = 3,
    tolerance: float = 0.05,
    *,
    aa_px: int = 1,
) -> np.ndarray:
    """Restore each brand region's mean colour to the exact target, keeping luminance detail.

    Each connected region gets its own shift (so a letter lit differently from its neighbour is
    still pulled to the brand colour), measured on its stroke interior (eroded by ``aa_px``; by one pixel where
    that leaves too little). Only the region pixels and a one-pixel feather around them are
    converted to L*a*b*, in one batch per pass, so it is cheap enough for every video frame. Regions
    already within ``tolerance`` CIEDE2000 are left as they are.
    """
    x, y, bw, bh = cv2.boundingRect((labels > 0).astype(np.uint8))
    if bw == 0 or bh == 0:
        return image
    y0, y1 = max(0, y - 2), min(labels.shape[0], y + bh + 2)
    x0, x1 = max(0, x - 2), min(labels.shape[1], x + bw + 2)
    out = image.copy()
    out[y0:y1, x0:x1] = _correct_crop(image[y0:y1, x0:x1], labels[y0:y1, x0:x1], palette, passes, tolerance, aa_px)
    return out


def _correct_crop(
    image: np.ndarray, labels: np.ndarray, palette: Palette, passes: int, tolerance: float, aa_px: int = 1
) -> np.ndarray:
    boxes = label_boxes(labels, pad=max(1, aa_px))
    comp = np.zeros(labels.shape, np.int32)  # global connected-component id, 0 = none
    comp_label: list[int] = [0]
    for i, box in boxes:
        n, c, stats, _ = connected_pieces(labels[box] == i)
        keep = np.zeros(n, np.int32)
        for k in range(1, n):
            if stats[k, cv2.CC_STAT_AREA] >= MIN_REGION_PX:
                comp_label.append(i)
                keep[k] = len(comp_label) - 1
        comp[box] = np.where(c > 0, keep[c], comp[box])
    if len(comp_label) == 1:
        return image
    region = (comp > 0).astype(np.uint8)
    # each colour's own interior, as measure() takes it (colours that touch, e.g. product swatches, do not count
    # as one region: a piece between two others keeps its edge pixels out of its mean)
    interior = np.zeros(labels.shape, bool)
    core = np.zeros(labels.shape, bool)
    for i, box in boxes:
        own = labels[box] == i
        interior[box] |= _erode(own, 1)
        if aa_px > 1:
            core[box] |= _erode(own, aa_px)
    if aa_px > 1:  # the mean that is moved to the target is the stroke interior's, where it keeps enough pixels
        n_core = np.bincount(comp[core], minlength=len(comp_label))
        interior = np.where(n_core[comp] >= MIN_REGION_PX // 2, core, interior)
    grown = cv2.dilate(region, np.ones((3, 3), np.uint8))
    weight = np.maximum(cv2.GaussianBlur(grown.astype(np.float32), (3, 3), 0.8), region.astype(np.float32))
    # the feather ring belongs to the nearest region: spread component ids one pixel outward
    owner = np.where(comp > 0, comp, cv2.dilate(comp.astype(np.float32), np.ones((3, 3), np.uint8)).astype(np.int32))
    touched = (weight > 0) & (owner > 0)
    ids = owner[touched]
    w = weight[touched][:, None]
    inner = interior[touched]
    targets = palette.correction_lab()[np.array(comp_label[1:]) - 1]  # per component id 1..K
    n_comp = len(comp_label)
    inner_ids = ids[inner]
    counts = np.bincount(inner_ids, minlength=n_comp)
    valid = counts[1:] >= MIN_REGION_PX // 2
    out = image.copy()
    pixels = image[touched]
    for _ in range(passes):
        lab = srgb_to_lab(pixels)  # float32; the region sums below are taken in float64
        inner_lab = lab[inner].astype(np.float64)
        sums = np.stack([np.bincount(inner_ids, weights=inner_lab[:, ch], minlength=n_comp) for ch in range(3)], axis=1)
        means = sums[1:] / np.maximum(counts[1:], 1)[:, None]
        delta = np.where(valid[:, None], targets - means, 0.0)
        if not valid.any() or float(np.max(delta_e00(means[valid], targets[valid]))) <= tolerance:
            break
        delta_full = np.vstack([np.zeros((1, 3)), delta]).astype(np.float32)
        lab += w * delta_full[ids]
        pixels = lab_to_srgb(lab)
    out[touched] = pixels
    return out


def restore_frames(
    frames: Iterable[np.ndarray],
    labels: Iterable[np.ndarray | None],
    palettes: Sequence[Palette],
    *,
    aa_px: int = 1,
) -> Iterator[np.ndarray]:
    """Brand colours restored in each video frame where its label map places them (frame ``i`` with ``labels[i]``
    and ``palettes[i]``), as the motion stage encodes them. A frame without a map, or with an empty one (a hosted
    frame whose alignment was not verified), and a black or blank frame (so the frame gate still sees it) are
    yielded unchanged. Frames are already corrected stills, so only what resampling moved is touched (2 passes,
    regions already within 0.3 CIEDE2000 left as they are)."""
    for i, (frame, frame_labels) in enumerate(zip(frames, labels, strict=False)):
        if frame_labels is not None and frame_labels.any() and not image_problems(frame):
            frame = correct(frame, frame_labels, palettes[i], passes=2, tolerance=0.3, aa_px=aa_px)
        yield frame


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Carry a label map through a resize (nearest neighbour keeps labels discrete)."""
    return cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)


def relabel_layer(
    labels: np.ndarray, carried: np.ndarray, coverage: np.ndarray, palette: Palette, name: str
) -> np.ndarray:
    """A label map whose ``name`` regions placed by a layer are replaced by that layer set again at this size:
    ``carried`` is the layer's old coverage carried to this size (nearest neighbour), ``coverage`` the new one
    (both uint8); as in :func:`locate`, coverage >= 250 is labelled."""
    index = palette.names.index(name) + 1
    out = labels.copy()
    out[(carried >= 250) & (out == index)] = 0
    out[coverage >= 250] = index
    return out


@dataclass(frozen=True)
class BrandLock:
    """A stage output after the brand lock: the image, the brand report before and after, the blank gate."""

    image: np.ndarray
    before: dict[str, dict[str, float]]  # report of the raw output ({} without a label map)
    after: dict[str, dict[str, float]]  # report of ``image``
    problems: list[str]  # black / blank / uniform problems of the raw output (gates.image_problems)
    # a provider's output: which brand regions were found in its own pixels (only those were restored)
    verification: Verification | None = None


def lock(image: np.ndarray, labels: np.ndarray | None, palette: Palette, *, aa_px: int = 1) -> BrandLock:
    """Gate the raw output, then restore brand colours where the label map places them.

    A black, blank or uniform output is left as it is: painting brand colours onto a refused generation would
    hide it from the ``output_not_blank`` check.
    """
    problems = image_problems(image)
    if labels is None:
        return BrandLock(image, {}, {}, problems)
    before = measure(image, labels, palette, aa_px=aa_px)
    if problems:
        return BrandLock(image, before, before, problems)
    corrected = correct(image, labels, palette, aa_px=aa_px)
    return BrandLock(corrected, before, measure(corrected, labels, palette, aa_px=aa_px), problems)


def precompensated(
    palettes: list[Palette], reports: list[dict[str, dict[str, float]]], target: Palette
) -> list[Palette]:
    """Per-frame palettes whose correction targets are moved by what the decoder showed for that frame.

    H.264 yuv420p halves chroma resolution, so thin brand strokes pick up their surroundings' chroma. The shift
    is systematic per frame: each frame's offset (accumulated over encodes) grows by ``target - measured mean``
    of every colour present in that frame's report.
    """
    return [
        pal.compensated(
            {
                name: np.asarray(pal.offsets[k] if pal.offsets else (0.0, 0.0, 0.0))
                + (goal - np.asarray(rep[name]["lab_mean"]))
                for k, (name, goal) in enumerate(zip(target.names, target.lab(), strict=True))
                if name in rep
            }
        )
        for pal, rep in zip(palettes, reports, strict=False)
    ]
