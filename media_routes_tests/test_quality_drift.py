"""Hand-off drift measures and the bridge pass, on pictures with drift injected on purpose."""

from __future__ import annotations

import numpy as np
import pytest

from media_routes.lib.imaging import hex_to_rgb, lab_to_srgb, srgb_to_lab
from media_routes.quality import drift, gates


def _scene() -> np.ndarray:
    """Deep-blue shadows at the bottom, a lit beige wall at the top, some texture."""
    rng = np.random.default_rng(1)
    img = np.zeros((256, 256, 3), np.float32)
    img[:128] = hex_to_rgb("#D8C8B0")
    img[128:] = hex_to_rgb("#0B1F4B")
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def crush_shadows(img: np.ndarray) -> np.ndarray:
    """A secondary model reading deep blue shadows as flat black."""
    lab = srgb_to_lab(img)
    dark = lab[..., 0] < 40
    lab[..., 1:][dark] *= 0.15
    lab[..., 0][dark] *= 0.6
    return lab_to_srgb(lab)


def hue_shift(img: np.ndarray, degrees: float) -> np.ndarray:
    lab = srgb_to_lab(img)
    t = np.deg2rad(degrees)
    a, b = lab[..., 1].copy(), lab[..., 2].copy()
    lab[..., 1], lab[..., 2] = a * np.cos(t) - b * np.sin(t), a * np.sin(t) + b * np.cos(t)
    return lab_to_srgb(lab)


def test_identical_images_have_no_drift() -> None:
    img = _scene()
    rep = drift.measure(img, img).summary()
    assert rep["grid_delta_e_max"] == 0 and rep["ssim_outside"] == pytest.approx(1.0)
    assert rep["shadow_chroma_retention"] == pytest.approx(1.0)


def test_crushed_blue_shadows_are_detected() -> None:
    img = _scene()
    rep = drift.measure(img, crush_shadows(img)).summary()
    assert rep["shadow_chroma_retention"] is not None and rep["shadow_chroma_retention"] < 0.3
    assert rep["grid_delta_e_max"] > 10


def test_hue_shift_is_detected_in_the_grid() -> None:
    img = _scene()
    rep = drift.measure(img, hue_shift(img, 8)).summary()
    assert rep["grid_delta_e_mean"] > 1.5
    assert rep["shadow_chroma_retention"] == pytest.approx(1.0, abs=0.05)  # chroma kept, hue moved


def test_ssim_ignores_the_allowed_region() -> None:
    img = _scene()
    out = img.copy()
    out[10:60, 10:60] = 255  # a fix inside its mask
    allowed = np.zeros(img.shape[:2], bool)
    allowed[5:65, 5:65] = True
    assert drift.measure(img, out).ssim_outside < 0.99  # type: ignore[operator]
    assert drift.measure(img, out, allowed=allowed).ssim_outside == pytest.approx(1.0, abs=1e-3)


def test_bridge_pass_pulls_crushed_shadows_back() -> None:
    img = _scene()
    bad = crush_shadows(img)
    fixed = drift.bridge(bad, img, strength=1.0)
    before, after = drift.measure(img, bad).summary(), drift.measure(img, fixed).summary()
    assert after["shadow_chroma_retention"] > 0.8 > before["shadow_chroma_retention"]  # type: ignore[operator]
    assert after["grid_delta_e_mean"] < before["grid_delta_e_mean"] / 3  # type: ignore[operator]


def test_align_reduces_an_upscale_and_crops_a_placement() -> None:
    img = _scene()
    big = np.kron(img, np.ones((4, 4, 1), np.uint8))  # a 4x nearest "upscale"
    ref, out = drift.align(img, big)
    assert ref.shape == out.shape
    assert drift.measure(ref, out).summary()["grid_delta_e_max"] < 0.5
    canvas = np.zeros((512, 256, 3), np.uint8)
    canvas[128:384] = img
    ref, out = drift.align(img, canvas, placement=(0, 128, 256, 256))
    assert drift.measure(ref, out).summary()["grid_delta_e_max"] < 0.5


def test_heatmap_is_an_rgb_image() -> None:
    grid = np.linspace(0, 12, drift.GRID * drift.GRID).reshape(drift.GRID, drift.GRID)
    hm = drift.heatmap(grid, (128, 128))
    assert hm.shape == (128, 128, 3) and hm[0, 0].sum() < hm[-1, -1].sum()


@pytest.mark.parametrize(
    ("image", "word"),
    [
        (np.zeros((64, 64, 3), np.uint8), "black"),
        (np.full((64, 64, 3), 255, np.uint8), "white"),
        (np.full((64, 64, 3), 128, np.uint8), "uniform"),
    ],
)
def test_bad_images_are_flagged(image: np.ndarray, word: str) -> None:
    assert any(word in p for p in gates.image_problems(image))


def test_a_real_picture_is_not_flagged() -> None:
    assert gates.image_problems(_scene()) == []


def _black_with_a_headline() -> np.ndarray:
    """A failed render under an intact headline layer: black but for a white band of text (mean luma > 4)."""
    img = np.zeros_like(_scene())
    h, w = img.shape[:2]
    img[h // 10 : h // 10 + h // 32, w // 16 : w - w // 16] = 255  # about 3% of the pixels
    return img


def test_a_black_frame_with_only_a_headline_on_it_is_flagged() -> None:
    img = _black_with_a_headline()
    assert float(img.mean()) > gates.BLACK_MEAN  # the mean alone would pass it
    assert any("of the pixels are black" in p for p in gates.image_problems(img))
    stats = gates.FrameStats(fps=12)
    for i in range(12):
        stats.add(np.roll(_scene(), i, axis=1) if i != 5 else img)
    assert "1 black frame(s), first at frame 6" in " ".join(stats.problems())


def test_a_dark_but_real_picture_is_not_flagged() -> None:
    # the noir example's base: shadows at luma 8-20, none of it pure black
    dark = (_scene().astype(np.float32) * 0.12 + 8).astype(np.uint8)
    assert gates.image_problems(dark) == []


def test_non_finite_pixels_are_flagged() -> None:
    img = _scene().astype(np.float32) / 255
    img[10:20, 10:20] = np.nan
    assert gates.image_problems(img) == [
        "100 pixel(s) are not finite numbers (NaN or infinity): nothing valid rendered"
    ]


def test_black_and_frozen_frames_are_flagged() -> None:
    stats = gates.FrameStats(fps=12)
    moving = [np.roll(_scene(), i, axis=1) for i in range(12)]
    for f in moving:
        stats.add(f)
    assert stats.problems() == []
    frozen = gates.FrameStats(fps=12)
    for f in moving[:3] + [moving[3]] * 14 + [np.zeros_like(moving[0])]:
        frozen.add(f)
    problems = " ".join(frozen.problems())
    assert "frozen" in problems and "black frame" in problems
