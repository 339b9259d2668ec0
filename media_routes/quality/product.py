"""Protected product colours: a product layer's colours, as its source asset has them, held at every stage.

A layer marked ``protect: true`` (the sneaker of the noir example) is split into *swatches*: its visible pixels
grouped by their colour in the source asset around its most frequent colours that are at least
:data:`SEPARATION` apart in CIE L*a*b* (deterministic; at most :data:`MAX_SWATCHES` per layer, each pixel to the
nearest centre; a swatch under :data:`MIN_SHARE` of the layer, or under
:data:`~media_routes.quality.brand.MIN_REGION_PX` pixels, is dropped: such rare colours are the asset's own edge
blends between two swatches, too thin to measure as a region).
Each swatch's reference is the mean CIE L*a*b* of its source pixels, written as a hex code. The swatches then ride
the brand colour machinery: they are extra entries of the stage's palette (named ``product:<layer>:<n>``) and
extra values of the ``brand_labels`` map after the brand colours, so they are carried through every resize,
placement and frame warp, measured, and restored (region mean moved to the reference, shading kept) exactly as
brand colours are. Their check is separate (``product_colours_held``, ``quality.product_delta_e_max``, default 2.0
CIEDE2000 region mean): a product photographed under the scene's light varies more than flat brand type does.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from media_routes.lib.imaging import lab_to_srgb, srgb_to_lab
from media_routes.quality.brand import MIN_REGION_PX, Palette

PREFIX = "product:"
MAX_SWATCHES = 8
SEPARATION = 12.0  # CIE L*a*b* distance between two swatch centres
MIN_SHARE = 0.01  # a swatch covers at least this share of its layer: rarer colours are the asset's edge blends
PIECE_ERODE_PX = 2
COVERED = 250  # coverage (0..255) from which a pixel is the layer's own


def _centres(lab: np.ndarray, counts: np.ndarray, limit: int) -> list[int]:
    """Swatch centres among a layer's distinct source colours: the most frequent colour first, then each next most
    frequent one at least :data:`SEPARATION` (CIE L*a*b* distance) from every centre so far, up to ``limit``.
    Deterministic, and it keeps a small accent (a stripe) apart from a large neighbour of another hue."""
    centres: list[int] = []
    for i in np.argsort(-counts, kind="stable"):
        if len(centres) >= limit:
            break
        if not centres or float(np.min(np.linalg.norm(lab[centres] - lab[i], axis=1))) >= SEPARATION:
            centres.append(int(i))
    return centres


def is_product(name: str) -> bool:
    """Whether a palette name is a product swatch (brand palette names are snake_case: they never hold ':')."""
    return name.startswith(PREFIX)


def swatches(
    sources: dict[str, tuple[np.ndarray, np.ndarray]], *, max_swatches: int = MAX_SWATCHES
) -> tuple[np.ndarray, Palette]:
    """Label map (uint8, 0 = none, ``i + 1`` = swatch ``i``) and palette of the protected layers' swatches.

    ``sources`` maps a layer name to its source colours placed on the canvas and its visible coverage
    (``engine.base_composition.protected_sources``)."""
    shape = next(iter(sources.values()))[1].shape if sources else (0, 0)
    labels = np.zeros(shape, np.uint8)
    names: list[str] = []
    hexes: list[str] = []
    for layer, (rgb, cover) in sources.items():
        inside = cover >= COVERED
        if int(inside.sum()) < MIN_REGION_PX:
            continue
        px = np.ascontiguousarray(rgb[inside])
        colours, inverse, counts = np.unique(px, axis=0, return_inverse=True, return_counts=True)
        lab = srgb_to_lab(colours[None, ...])[0].astype(np.float64)
        centres = _centres(lab, counts, max_swatches)
        nearest = np.argmin(((lab[:, None, :] - lab[centres][None, :, :]) ** 2).sum(axis=-1), axis=1)
        index = nearest[inverse.ravel()]
        assigned = np.zeros(len(px), np.uint8)
        for k in range(len(centres)):
            chosen = index == k
            if int(chosen.sum()) < max(MIN_REGION_PX, MIN_SHARE * len(px)) or len(names) >= 254:
                continue
            members = nearest == k
            mean = np.average(lab[members], axis=0, weights=counts[members])
            rgb8 = lab_to_srgb(mean[None, :].astype(np.float32))[0]
            names.append(f"{PREFIX}{layer}:{len(names) + 1}")
            hexes.append("#{:02X}{:02X}{:02X}".format(*(int(v) for v in rgb8)))
            assigned[chosen] = len(names)
        labels[inside] = assigned
    # keep only pieces that are areas of colour: at least MIN_REGION_PX pixels, and half that once eroded by
    # PIECE_ERODE_PX (a 4:2:0 video's chroma sample spans two pixels: a band thinner than about five pixels, such as
    # an edge blend between two swatches, takes its neighbours' chroma in every frame and cannot be held as a region)
    kernel = np.ones((2 * PIECE_ERODE_PX + 1, 2 * PIECE_ERODE_PX + 1), np.uint8)
    for i in range(1, len(names) + 1):
        piece = (labels == i).astype(np.uint8)
        n, comp, stats, _ = cv2.connectedComponentsWithStats(piece, connectivity=8)
        interior = np.bincount(comp[cv2.erode(piece, kernel) > 0], minlength=n)
        for c in range(1, n):
            if stats[c, cv2.CC_STAT_AREA] < MIN_REGION_PX or interior[c] < MIN_REGION_PX // 2:
                labels[comp == c] = 0
    # a swatch left with no piece leaves the palette; the others keep their order
    kept = [i for i in range(1, len(names) + 1) if (labels == i).any()]
    remap = np.zeros(256, np.uint8)
    for new, old in enumerate(kept, start=1):
        remap[old] = new
    renamed = tuple(f"{names[old - 1].rsplit(':', 1)[0]}:{new}" for new, old in enumerate(kept, start=1))
    return remap[labels], Palette(renamed, tuple(hexes[old - 1] for old in kept))


def merge(
    brand_labels: np.ndarray, brand_palette: Palette, product_labels: np.ndarray, product_palette: Palette
) -> tuple[np.ndarray, Palette]:
    """One label map and palette: the brand colours first, then the swatches where no brand colour is."""
    if not product_palette.names:
        return brand_labels, brand_palette
    offset = len(brand_palette.names)
    if offset + len(product_palette.names) > 255:
        raise ValueError("too many brand colours and product swatches for a uint8 label map")
    out = brand_labels.copy()
    free = (brand_labels == 0) & (product_labels > 0)
    out[free] = product_labels[free] + offset
    return out, combine(brand_palette, product_palette)


def combine(brand_palette: Palette, product_palette: Palette) -> Palette:
    """The brand colours, then the product swatches: the palette of a merged label map."""
    return Palette(brand_palette.names + product_palette.names, brand_palette.hexes + product_palette.hexes)


def split(report: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A colour report split into (brand colours, product swatches)."""
    return (
        {k: v for k, v in report.items() if not is_product(k)},
        {k: v for k, v in report.items() if is_product(k)},
    )
