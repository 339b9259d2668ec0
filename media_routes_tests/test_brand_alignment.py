"""Brand colour is restored only where it is verified in the provider's own pixels (issue #14 item 5).

Pure functions, no Dagster: ``quality.alignment`` on stills (a region the model kept, drifted, moved or dropped) and on
hosted clips made the way the stubs make them (``testing.stubs.base.image_video_frames`` through H.264): a push-in
the ECC warp follows, and a hard cut, a whip pan and a wrap-around scroll it cannot. The clips go through the same
code as the motion stage (``HostedClip.estimate_warps`` with the brand map / ``verified_labels`` and
``brand.restore_frames``); the delivered frames are compared to the provider's: 0 brand-coloured pixels painted
outside verified alignment, and the frames where the brand was lost are named.
"""

from __future__ import annotations

import functools
import io
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from media_routes.engine.base_composition import compose
from media_routes.hosted.motion import HostedClip
from media_routes.lib.imaging import srgb_to_lab
from media_routes.quality import alignment, brand
from media_routes.quality.delta_e import delta_e00
from media_routes.spec import load_campaign
from media_routes.testing.campaigns import EXAMPLES
from media_routes.testing.stubs.kling_stub import render_mp4, video_size_for

PALETTE = brand.Palette.from_dict(
    {"deep_blue": "#0B1F4B", "midnight": "#040A1C", "electric_yellow": "#F5D90A", "cream": "#F0EEE8"}
)
YELLOW, CREAM = 3, 4  # label values (palette index + 1)
SIZE = (540, 675)  # the delivered video size of these tests (4:5)


@functools.lru_cache(maxsize=1)
def _composed() -> tuple[np.ndarray, np.ndarray]:
    campaign = load_campaign(EXAMPLES / "noir-sneaker" / "campaign.yaml")
    base = compose(campaign, seed=campaign.spec.seed)
    assert base.headline_alpha is not None
    image = cv2.resize(base.image, SIZE, interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(base.headline_alpha, SIZE, interpolation=cv2.INTER_AREA)
    return image, alpha


def _still() -> tuple[np.ndarray, np.ndarray]:
    """noir-sneaker's base composition (local engine) at SIZE with a cream badge painted on, as a corrected logo
    patch would be; and its label map: the headline's glyphs (as the base stage locates them) and the badge."""
    image, alpha = (a.copy() for a in _composed())
    w, h = SIZE
    x0, y0 = int(w * 0.70), int(h * 0.25)
    image[y0 : y0 + 30, x0 : x0 + 90] = (240, 238, 232)
    labels = brand.locate(image, PALETTE, exact={"electric_yellow": alpha}, by_colour=["cream"])
    assert set(np.unique(labels)) == {0, YELLOW, CREAM}
    return image, labels


def _brand_coloured(pixels: np.ndarray) -> np.ndarray:
    """Which of these RGB pixels (N x 3) are within brand.LOCATE_DELTA_E (2.0) CIEDE2000 of a colour the label map
    restores (yellow, cream)."""
    lab = srgb_to_lab(pixels[None, ...])[0].astype(np.float64)
    near = np.zeros(len(pixels), bool)
    for target in PALETTE.lab()[[YELLOW - 1, CREAM - 1]]:
        near |= delta_e00(lab, target[None, :]) <= brand.LOCATE_DELTA_E
    return near


def _painted(provider: np.ndarray, delivered: np.ndarray) -> np.ndarray:
    """Brand-coloured pixels of the delivered frame that the provider's frame did not have (changed by us)."""
    changed = np.any(provider != delivered, axis=-1)
    out = np.zeros(changed.shape, bool)
    out[changed] = _brand_coloured(delivered[changed]) & ~_brand_coloured(provider[changed])
    return out


# -- stills -------------------------------------------------------------------------------------------------


def test_regions_group_a_headline_and_a_badge_and_are_found_again() -> None:
    _, labels = _still()
    regions = alignment.brand_regions(labels)
    assert {r.label for r in regions} == {YELLOW, CREAM}
    assert len([r for r in regions if r.label == CREAM]) == 1
    again = alignment.brand_regions(labels)
    assert [(r.label, r.box) for r in again] == [(r.label, r.box) for r in regions]
    painted = np.zeros_like(labels)
    for r in regions:
        r.paint(painted)
    assert np.array_equal(painted, labels)  # the regions cover the map exactly


def test_a_provider_still_that_kept_and_drifted_the_brand_is_verified_and_restored() -> None:
    image, labels = _still()
    drifted = image.copy()
    drifted[labels == YELLOW] = (225, 205, 40)  # the model shifted yellow and cream a little
    drifted[labels == CREAM] = (228, 226, 214)
    locked = alignment.lock_verified(drifted, labels, PALETTE)
    assert locked.verification is not None and locked.verification.verified and not locked.verification.lost
    assert brand.worst(locked.before) > 3  # the provider's own pixels, before correction
    assert brand.worst(locked.after) <= 1.0  # restored
    outside = cv2.dilate((labels > 0).astype(np.uint8), np.ones((5, 5), np.uint8)) == 0
    assert np.array_equal(locked.image[outside], drifted[outside])


def test_a_headline_the_model_moved_or_dropped_is_not_painted_back() -> None:
    image, labels = _still()
    moved = image.copy()
    moved[labels == YELLOW] = image[0, 0]  # the headline is gone where the map says (blue there now) ...
    shifted = np.roll(labels == YELLOW, 120, axis=0)
    moved[shifted] = (245, 217, 10)  # ... and the model drew it 120 px lower
    locked = alignment.lock_verified(moved, labels, PALETTE)
    v = locked.verification
    assert v is not None and not v.verified
    assert {r.colour for r in v.lost} == {"electric_yellow"}  # the badge is still there: verified and restored
    assert all(r.present < 0.05 for r in v.lost)
    assert int(_painted(moved, locked.image).sum()) == 0  # no ghost headline
    headline_zone = cv2.dilate((labels == YELLOW).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert np.array_equal(locked.image[headline_zone], moved[headline_zone])
    line = alignment.describe_lost_regions(v)
    assert f"{len(v.lost)} brand region(s) not found in the provider's own pixels" in line
    assert "electric_yellow at (" in line and "not painted" in line


def test_a_blank_provider_output_is_left_alone_and_judged() -> None:
    _, labels = _still()
    black = np.zeros((*labels.shape, 3), np.uint8)
    locked = alignment.lock_verified(black, labels, PALETTE)
    assert locked.problems and np.array_equal(locked.image, black)
    assert locked.verification is not None and not locked.verification.verified


def test_frame_ranges() -> None:
    assert alignment.frame_ranges([9, 3, 4, 5, 12, 11]) == "3-5, 9, 11-12"
    assert alignment.frame_ranges([]) == ""


# -- hosted clips -------------------------------------------------------------------------------------------

DURATION_S, FPS = 5, 4  # a 5 s provider clip at 24 fps, delivered at 4 fps: 20 frames (native frame = 6 x j)
N = DURATION_S * FPS


@functools.lru_cache(maxsize=4)
def _hosted(motion: str) -> tuple[HostedClip, np.ndarray, np.ndarray, list, list, alignment.ClipAlignment]:
    """The provider's clip of ``motion`` over the still (as the stubs make it), its alignment verified, and the frames
    the motion stage would deliver (before encoding): clip, still, labels, provider frames, delivered, alignment."""
    still, labels = _still()
    buf = io.BytesIO()
    Image.fromarray(still).save(buf, format="PNG")
    video = render_mp4(video_size_for(SIZE, 480), DURATION_S, buf.getvalue(), motion)  # what the stub would send
    path = Path(tempfile.mkdtemp(prefix="brand-alignment-")) / f"{motion}.mp4"
    path.write_bytes(video)
    clip = HostedClip(segments=[path], fps=FPS, n_frames=N, size=SIZE)
    clip.estimate_warps(still, labels, PALETTE)  # as animate_hosted does: warps and per-frame verification
    aligned = clip.alignment
    assert aligned is not None
    provider = list(clip.frames())
    delivered = list(brand.restore_frames(clip.frames(), clip.verified_labels(labels, aligned), [PALETTE] * N))
    assert len(provider) == len(delivered) == len(aligned.frames) == N
    return clip, still, labels, provider, delivered, aligned


def _assert_nothing_painted_outside_verified_alignment(
    clip: HostedClip, labels: np.ndarray, provider: list, delivered: list, aligned: alignment.ClipAlignment
) -> int:
    """Returns how many pixels were corrected in all (inside verified regions)."""
    corrected = 0
    for i, (p, d, kept) in enumerate(zip(provider, delivered, clip.verified_labels(labels, aligned), strict=True), 1):
        if i in aligned.lost_frames:
            assert np.array_equal(p, d), f"frame {i} is not verified but was changed"
        allowed = cv2.dilate((kept > 0).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0  # regions + feather
        changed = np.any(p != d, axis=-1)
        assert not (changed & ~allowed).any(), f"frame {i}: pixels changed outside the verified regions"
        assert int((_painted(p, d) & ~allowed).sum()) == 0
        corrected += int(changed.sum())
    return corrected


def test_a_push_in_is_verified_in_every_frame_and_its_brand_restored() -> None:
    clip, still, labels, provider, delivered, aligned = _hosted("push_in")
    assert aligned.lost_frames == [] and aligned.describe_lost() == ""
    assert min(c for c in clip.correlations if c is not None) >= 0.95
    assert _assert_nothing_painted_outside_verified_alignment(clip, labels, provider, delivered, aligned) > 0
    before = after = 0.0
    for p, d, kept in zip(provider, delivered, clip.verified_labels(labels, aligned), strict=True):
        before = max(before, brand.worst(brand.measure(p, kept, PALETTE, per_pixel=False)))
        after = max(after, brand.worst(brand.measure(d, kept, PALETTE, per_pixel=False)))
    assert after < before and after <= 1.0, (before, after)  # the correction still happens where it is verified


def test_a_hard_cut_loses_the_brand_from_the_cut_on_and_nothing_is_painted() -> None:
    clip, still, labels, provider, delivered, aligned = _hosted("hard_cut")
    # the cut is at native frame 60 of 120 = delivered frame 11 (1-based): every frame from there is lost, none before
    # (the shot after it is mirrored and keystoned: no affine warp of the still matches it)
    assert aligned.lost_frames == list(range(11, N + 1))
    _assert_nothing_painted_outside_verified_alignment(clip, labels, provider, delivered, aligned)
    line = aligned.describe_lost()
    assert f"at frame(s) 11-{N} of {N}" in line and "not painted" in line


def test_a_whip_pan_loses_the_brand_once_the_pan_starts_moving_it() -> None:
    clip, still, labels, provider, delivered, aligned = _hosted("whip_pan")
    lost = aligned.lost_frames
    # still for the first 30 % (native frames 0-35: delivered 1-6), the pan over the next 30 %, held after it
    assert not set(lost) & set(range(1, 7))
    assert set(range(13, N + 1)) <= set(lost)  # from native frame 72 (t >= 0.6) on: the far side, no brand
    _assert_nothing_painted_outside_verified_alignment(clip, labels, provider, delivered, aligned)
    assert alignment.frame_ranges(lost) in aligned.describe_lost()


def test_a_wrap_around_scroll_is_lost_once_the_brand_wraps() -> None:
    clip, still, labels, provider, delivered, aligned = _hosted("wrap_scroll")
    lost = aligned.lost_frames
    assert 1 not in lost and N in lost  # the first frame is the still; by the end it has wrapped a whole width
    assert alignment.frame_ranges(lost) in aligned.describe_lost()
    _assert_nothing_painted_outside_verified_alignment(clip, labels, provider, delivered, aligned)


@pytest.mark.parametrize("motion", ["hard_cut", "whip_pan", "wrap_scroll"])
def test_trusting_the_warp_would_have_painted_ghosts_in_the_lost_frames(motion: str) -> None:
    """The issue's measure, brand-coloured pixels the delivered frames have and the provider's do not: 0 in the frames
    whose alignment is not verified (they are delivered as the provider made them, asserted above), where restoring
    on the unverified warp, as before, paints them by the thousand."""
    clip, still, labels, provider, delivered, aligned = _hosted(motion)
    lost = aligned.lost_frames
    assert lost
    assert sum(int(_painted(provider[i - 1], delivered[i - 1]).sum()) for i in lost) == 0
    naive = list(brand.restore_frames(clip.frames(), clip.labels(labels), [PALETTE] * N))  # the warp trusted
    ghost = sum(int(_painted(provider[i - 1], naive[i - 1]).sum()) for i in lost)
    assert ghost > 1000, ghost


def _regions_over_the_whole_window(labels: np.ndarray, link_px: int) -> list[tuple[int, int, int, bytes]]:
    """The reference: every label dilated over the whole brand window (what brand_regions did before it cropped
    each label to its own box), as (label, x0, y0, piece bytes + shape)."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * link_px + 1, 2 * link_px + 1))
    x, y, bw, bh = cv2.boundingRect((labels > 0).astype(np.uint8))
    x0, y0 = max(0, x - link_px), max(0, y - link_px)
    window = labels[y0 : y + bh + link_px, x0 : x + bw + link_px]
    out = []
    for value in (int(v) for v in np.flatnonzero(np.bincount(window.ravel())) if v > 0):
        mask = window == value
        n, comp, stats, _ = cv2.connectedComponentsWithStats(cv2.dilate(mask.astype(np.uint8), kernel), connectivity=8)
        for c in range(1, n):
            cx, cy, cw, ch = (int(v) for v in stats[c, :4])
            piece = mask[cy : cy + ch, cx : cx + cw] & (comp[cy : cy + ch, cx : cx + cw] == c)
            if piece.any():
                out.append((value, x0 + cx, y0 + cy, piece.tobytes() + bytes(piece.shape)))
    return out


def test_regions_are_those_of_a_dilation_over_the_whole_window() -> None:
    """Cropping each label to its own box before the link dilation changes nothing: same regions, same order."""
    rng = np.random.default_rng(7)
    for _ in range(25):
        h, w = (int(v) for v in rng.integers(120, 700, 2))
        labels = np.zeros((h, w), np.uint8)
        for _ in range(int(rng.integers(1, 6))):
            value, y, x = int(rng.integers(1, 5)), int(rng.integers(0, h - 40)), int(rng.integers(0, w - 120))
            block = rng.random((int(rng.integers(3, 40)), int(rng.integers(3, 120)))) < 0.4
            labels[y : y + block.shape[0], x : x + block.shape[1]][block] = value
        link = int(rng.integers(1, 12))
        got = [
            (r.label, r.x0, r.y0, r.piece.tobytes() + bytes(r.piece.shape))
            for r in alignment.brand_regions(labels, link_px=link)
        ]
        assert got == _regions_over_the_whole_window(labels, link)
