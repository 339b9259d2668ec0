"""The float32 colour paths the brand measure and lock run on every frame, against colour-science's reference
implementations, and the brand measure and lock on label boxes against the same code on whole maps."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from media_routes.lib import imaging
from media_routes.lib.imaging import lab_to_srgb, linear_to_srgb_u8, srgb_to_lab
from media_routes.quality import brand
from media_routes.quality.delta_e import delta_e00

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import colour


def _all_colours(chunk: int) -> list[np.ndarray]:
    """Every 8-bit sRGB colour, in chunks of ``chunk`` (16.7 million in all)."""
    codes = np.arange(1 << 24, dtype=np.uint32)
    rgb = np.stack([(codes >> 16) & 255, (codes >> 8) & 255, codes & 255], axis=-1).astype(np.uint8)
    return [rgb[i : i + chunk] for i in range(0, len(rgb), chunk)]


def test_srgb_to_lab_matches_colour_science() -> None:
    rng = np.random.default_rng(3)
    grid = np.stack(np.meshgrid(*[np.arange(0, 256, 5)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    rgb = np.concatenate([grid, rng.integers(0, 256, (200_000, 3))]).astype(np.uint8)
    reference = colour.XYZ_to_Lab(colour.RGB_to_XYZ(rgb / 255.0, "sRGB", apply_cctf_decoding=True))
    got = srgb_to_lab(rgb)
    assert got.dtype == np.float32
    assert np.abs(got - reference).max() < 1e-3
    # the general path (code values as floats) is colour-science's own
    np.testing.assert_allclose(srgb_to_lab(rgb[:1000].astype(np.float32)), reference[:1000], atol=1e-3)


def test_linear_to_srgb_codes_are_the_rounded_encoding() -> None:
    """The 8-bit code of a linear value is colour-science's sRGB encoding rounded, including the values right at
    a step between two codes and out-of-gamut values, which clip."""
    rng = np.random.default_rng(5)
    bounds = imaging._srgb_code_bounds()[1:-1]
    near = np.concatenate([bounds, np.nextafter(bounds, -1), np.nextafter(bounds, 2)]).astype(np.float32)
    linear = np.concatenate([rng.random(1_000_000, np.float32), near, np.float32([-0.2, -1e-6, 0.0, 1.0, 1.3])])
    encoded = np.asarray(colour.models.eotf_inverse_sRGB(linear.astype(np.float64))) * 255.0
    expected = np.clip(np.floor(encoded + 0.5), 0, 255).astype(np.uint8)  # half rounds up, as the bounds do
    got = linear_to_srgb_u8(linear)
    # the float32 value right at a bound can round to either side of it in float64 arithmetic; nowhere else
    differ = np.flatnonzero(got != expected)
    assert np.all(np.isin(linear[differ], near)), linear[differ][:10]
    assert len(differ) <= 3 * len(bounds) // 10
    assert np.all(np.abs(got.astype(int) - expected) <= 1)


def test_every_8_bit_colour_round_trips_through_lab() -> None:
    """sRGB -> L*a*b* -> sRGB gives back every one of the 16.7 million 8-bit colours exactly (the brand lock
    converts the pixels it corrects both ways; a pixel it does not move must come back as it was)."""
    for rgb in _all_colours(1 << 21):
        back = lab_to_srgb(srgb_to_lab(rgb))
        assert np.array_equal(back, rgb), rgb[np.any(back != rgb, axis=-1)][:5]


def test_lab_to_srgb_matches_colour_science_within_one_code() -> None:
    rng = np.random.default_rng(6)
    lab = np.column_stack([rng.random(300_000) * 100, rng.normal(0, 40, 300_000), rng.normal(0, 40, 300_000)])
    reference = colour.XYZ_to_RGB(colour.Lab_to_XYZ(lab), "sRGB", apply_cctf_encoding=True)
    expected = np.clip(np.rint(reference * 255.0), 0, 255).astype(np.uint8)
    got = lab_to_srgb(lab)
    assert np.abs(got.astype(int) - expected).max() <= 1
    assert np.mean(got != expected) < 1e-4  # float32 against float64: a handful of codes at a step


def test_delta_e00_matches_colour_science_on_random_pairs() -> None:
    rng = np.random.default_rng(8)
    for spread in (128.0, 20.0, 2.0):  # vivid, muted, near-neutral (where the hue terms are least stable)
        lab1 = np.column_stack([rng.random(200_000) * 100, rng.normal(0, spread, (200_000, 2))])
        lab2 = lab1 + rng.normal(0, 3, lab1.shape) * rng.random((200_000, 1)) * 4
        reference = colour.delta_E(lab1, lab2, method="CIE 2000")
        got = delta_e00(lab1, lab2)
        assert got.dtype == np.float32
        assert np.abs(got - reference).max() < 1e-3, spread
    # one target against many pixels (how the brand measure calls it) broadcasts the same way
    target = np.array([52.0, -10.0, 40.0])
    np.testing.assert_allclose(
        delta_e00(lab1, target[None, :]), colour.delta_E(lab1, target[None, :], method="CIE 2000"), atol=1e-3
    )


def _random_label_map(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, brand.Palette]:
    """A noisy picture with blobs and thin strokes of up to four palette colours, some touching each other and
    some at the map's border, and the label map that places them."""
    h, w = (int(v) for v in rng.integers(60, 400, 2))
    palette = brand.Palette.from_dict({"yellow": "#F5D90A", "blue": "#0B1F4B", "red": "#C8102E", "slate": "#2F3E46"})
    labels = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(1, 9))):
        value = int(rng.integers(1, 5))
        y, x = int(rng.integers(-10, h)), int(rng.integers(-10, w))
        bh, bw = int(rng.integers(2, 60)), int(rng.integers(2, 90))
        block = rng.random((bh, bw)) < rng.uniform(0.5, 1.0)
        ys, xs = slice(max(0, y), min(h, y + bh)), slice(max(0, x), min(w, x + bw))
        labels[ys, xs][block[: ys.stop - ys.start, : xs.stop - xs.start]] = value
    lab = palette.lab()
    target = lab[np.maximum(labels.astype(int) - 1, 0)] + rng.normal(0, 4, (h, w, 3))
    image = lab_to_srgb(np.where(labels[..., None] > 0, target, rng.uniform([10, -20, -20], [90, 20, 20], (h, w, 3))))
    return image, labels, palette


def _whole_map_boxes(labels: np.ndarray, *, pad: int) -> list[tuple[int, tuple[slice, slice]]]:
    """Every present label with the whole map as its box: the morphology on the whole frame."""
    present = [int(i) for i in np.flatnonzero(np.bincount(labels.ravel())) if i > 0]
    return [(i, (slice(0, labels.shape[0]), slice(0, labels.shape[1]))) for i in present]


@pytest.mark.parametrize("aa_px", [1, 2])
def test_measure_and_correct_on_label_boxes_equal_the_whole_map(aa_px: int, monkeypatch) -> None:
    rng = np.random.default_rng(11 + aa_px)
    cases = [_random_label_map(rng) for _ in range(30)]
    on_boxes = [
        (brand.measure(img, lab, pal, aa_px=aa_px), brand.correct(img, lab, pal, aa_px=aa_px))
        for img, lab, pal in cases
    ]
    monkeypatch.setattr(brand, "label_boxes", _whole_map_boxes)
    for (img, lab, pal), (report, corrected) in zip(cases, on_boxes, strict=True):
        assert report == brand.measure(img, lab, pal, aa_px=aa_px)
        assert np.array_equal(corrected, brand.correct(img, lab, pal, aa_px=aa_px))
    assert sum(bool(r) for r, _ in on_boxes) >= 20  # the maps do place measurable brand regions
    assert sum(not np.array_equal(c, img) for (img, _, _), (_, c) in zip(cases, on_boxes, strict=True)) >= 20


def test_pieces_are_numbered_in_raster_order_whatever_the_margin() -> None:
    """``connected_pieces`` numbers a mask's pieces by their first pixel in raster order, so a label's pieces get
    the same numbers from its bounding box as from the whole frame (the lock gives a feather pixel between two
    pieces to the higher number)."""
    rng = np.random.default_rng(12)
    for _ in range(50):
        h, w = (int(v) for v in rng.integers(20, 300, 2))
        mask = rng.random((h, w)) < rng.uniform(0.05, 0.5)
        n, pieces, _, _ = brand.connected_pieces(mask)
        flat = pieces.ravel()
        first = np.full(n, -1)
        nonzero = np.flatnonzero(flat)
        _, at = np.unique(flat[nonzero], return_index=True)
        first[1:] = nonzero[at]
        assert np.all(np.diff(first[1:]) > 0)
        oy, ox = (int(v) for v in rng.integers(1, 9, 2))
        framed = np.zeros((h + oy + 3, w + ox + 5), bool)
        framed[oy : oy + h, ox : ox + w] = mask
        n2, pieces2, _, _ = brand.connected_pieces(framed)
        assert n2 == n and np.array_equal(pieces2[oy : oy + h, ox : ox + w], pieces)
