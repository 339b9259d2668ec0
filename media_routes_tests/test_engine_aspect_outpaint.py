"""Tests for aspect-ratio outpainting."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from media_routes.engine.aspect_outpaint import estimate_noise_sigma, outpaint
from media_routes.formats import canvas_size

ASPECTS = [1.0, 4 / 5, 9 / 16, 16 / 9]
METRIC_KEYS = {"expanded_px", "seam_delta_e", "grain_sigma", "fill_fraction"}


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([40 + 160 * xx / w, 60 + 120 * yy / h, 180 - 100 * xx / w], axis=-1)
    cv2.circle(img, (w // 2, h // 2), min(h, w) // 4, (210, 160, 130), -1)
    cv2.rectangle(img, (w // 10, h // 10), (w // 3, h // 4), (30, 30, 30), 3)
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _gradient(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([60 + 140 * xx / w, 80 + 100 * yy / h, 200 - 120 * (xx + yy) / (w + h)], axis=-1)
    return np.rint(img).astype(np.uint8)


@pytest.mark.parametrize("src", [(256, 256), (320, 256)], ids=["square", "4x5"])
@pytest.mark.parametrize("aspect", ASPECTS, ids=["1x1", "4x5", "9x16", "16x9"])
def test_original_preserved_and_canvas_aspect(src: tuple[int, int], aspect: float) -> None:
    h, w = src
    img = _photo(h, w)
    res = outpaint(img, aspect, (216, round(216 / aspect)))
    x, y, pw, ph = res.placement
    assert (pw, ph) == (w, h)
    assert np.array_equal(res.canvas[y : y + h, x : x + w], img)
    ch, cw = res.canvas.shape[:2]
    assert cw >= w and ch >= h  # only grows
    assert abs(cw - ch * aspect) <= 1 or abs(ch - cw / aspect) <= 1
    assert METRIC_KEYS <= res.metrics.keys()
    assert res.metrics["expanded_px"] == cw * ch - w * h
    if res.metrics["expanded_px"] == 0:
        assert np.array_equal(res.canvas, img)
        assert res.metrics["seam_delta_e"] == 0.0
    else:
        assert res.metrics["fill_fraction"] == pytest.approx(res.metrics["expanded_px"] / (cw * ch))


def test_matching_aspect_returns_original() -> None:
    img = _photo(256, 256)
    res = outpaint(img, 1.0, (128, 128))
    assert res.placement == (0, 0, 256, 256)
    assert np.array_equal(res.canvas, img)
    assert res.metrics["expanded_px"] == 0


@pytest.mark.parametrize(
    ("anchor", "expected_xy"),
    [((0.5, 0.5), (0, 96)), ((0.0, 0.0), (0, 0)), ((1.0, 1.0), (0, 192)), ((0.25, 0.25), (0, 48))],
)
def test_anchor_placement_vertical(anchor: tuple[float, float], expected_xy: tuple[int, int]) -> None:
    img = _photo(256, 256)
    res = outpaint(img, 4 / 7, (128, 224), anchor=anchor)  # canvas 256 x 448
    assert res.canvas.shape[:2] == (448, 256)
    assert res.placement[:2] == expected_xy
    x, y = expected_xy
    assert np.array_equal(res.canvas[y : y + 256, x : x + 256], img)


def test_anchor_placement_horizontal() -> None:
    img = _photo(256, 256)
    res = outpaint(img, 2.0, (256, 128), anchor=(0.0, 0.5))
    assert res.canvas.shape[:2] == (256, 512)
    assert res.placement == (0, 0, 256, 256)
    res = outpaint(img, 2.0, (256, 128), anchor=(1.0, 0.5))
    assert res.placement == (256, 0, 256, 256)
    assert np.array_equal(res.canvas[:, 256:], img)


@pytest.mark.parametrize("delivery", [(108, 192), (1080, 1920), (333, 600)])
def test_delivery_size_exact(delivery: tuple[int, int]) -> None:
    img = _photo(256, 256)
    mask = np.zeros((256, 256), np.uint8)
    mask[64:192, 64:192] = 255
    res = outpaint(img, 9 / 16, delivery, subject_mask=mask)
    assert res.delivery.shape == (delivery[1], delivery[0], 3)
    assert res.subject_mask is not None
    assert res.subject_mask.shape == (delivery[1], delivery[0])
    # The mask's centre lands at the delivery centre (the original is centred).
    ys, xs = np.nonzero(res.subject_mask > 127)
    assert abs(xs.mean() - delivery[0] / 2) < delivery[0] * 0.03
    assert abs(ys.mean() - delivery[1] / 2) < delivery[1] * 0.03


def test_deterministic_per_seed() -> None:
    img = _photo(256, 256)
    a = outpaint(img, 9 / 16, (144, 256), seed=3)
    b = outpaint(img, 9 / 16, (144, 256), seed=3)
    c = outpaint(img, 9 / 16, (144, 256), seed=4)
    assert np.array_equal(a.canvas, b.canvas)
    assert np.array_equal(a.delivery, b.delivery)
    assert a.metrics == b.metrics
    x, y, w, h = a.placement
    assert not np.array_equal(a.canvas[:y], c.canvas[:y])  # different grain in the fill
    assert np.array_equal(a.canvas[y : y + h], c.canvas[y : y + h])


@pytest.mark.parametrize("aspect", [9 / 16, 16 / 9, 1.0])
def test_seam_small_on_smooth_gradient(aspect: float) -> None:
    img = _gradient(320, 256)
    res = outpaint(img, aspect, (256, round(256 / aspect)))
    assert res.metrics["expanded_px"] > 0
    assert res.metrics["seam_delta_e"] < 3.0


def test_fill_does_not_copy_subject() -> None:
    """A dark disc near the top edge must not reappear as a sharp copy in the new area."""
    img = np.full((256, 256, 3), 200, np.uint8)
    cv2.circle(img, (128, 40), 30, (20, 20, 20), -1)
    res = outpaint(img, 9 / 16, (144, 256), anchor=(0.5, 1.0))
    x, y, w, h = res.placement
    fill = res.canvas[: y - 40].astype(np.float32)  # away from the seam
    assert fill.min() > 60  # no black disc copied
    assert np.abs(cv2.Laplacian(fill, cv2.CV_32F)).mean() < 12


def test_subject_mask_keeps_subject_out_of_fill() -> None:
    """A red subject touching the edge smears into the fill unless its mask is given."""
    img = np.full((256, 256, 3), (120, 160, 220), np.uint8)
    cv2.circle(img, (250, 128), 60, (220, 30, 30), -1)
    mask = np.zeros((256, 256), np.uint8)
    cv2.circle(mask, (250, 128), 60, 255, -1)

    def red_in_fill(res) -> int:
        x, y, w, h = res.placement
        fill = res.canvas[:, x + w :].astype(np.int16)
        return int(((fill[..., 0] - fill[..., 2]) > 60).sum())

    plain = outpaint(img, 16 / 9, (320, 180), anchor=(0.0, 0.5))
    masked = outpaint(img, 16 / 9, (320, 180), anchor=(0.0, 0.5), subject_mask=mask)
    assert red_in_fill(plain) > 1000
    assert red_in_fill(masked) == 0


def test_grain_matches_noise_level() -> None:
    rng = np.random.default_rng(9)
    img = np.clip(128 + rng.normal(0, 5, (256, 256, 1)).repeat(3, axis=2), 0, 255).astype(np.uint8)
    assert estimate_noise_sigma(img[..., 0].astype(np.float32)) == pytest.approx(5, rel=0.15)
    res = outpaint(img, 9 / 16, (144, 256), seed=1)
    assert res.metrics["grain_sigma"] == pytest.approx(5, rel=0.15)
    x, y, w, h = res.placement
    fill = res.canvas[: y - 8, :, 0].astype(np.float32)
    assert estimate_noise_sigma(fill) == pytest.approx(res.metrics["grain_sigma"], rel=0.25)


def test_canvas_size_and_validation() -> None:
    assert canvas_size(1024, 1024, 9 / 16) == (1024, 1820)
    assert canvas_size(4096, 4096, 9 / 16) == (4096, 7282)
    assert canvas_size(1024, 1024, 16 / 9) == (1820, 1024)
    with pytest.raises(ValueError):
        canvas_size(10, 10, 0.0)
    with pytest.raises(ValueError):
        outpaint(_photo(64, 64), 1.0, (0, 10))
    with pytest.raises(ValueError):
        outpaint(_photo(64, 64), 1.0, (10, 10), anchor=(1.5, 0.0))


def test_foreground_in_the_subject_mask_is_not_mirrored_into_the_fill() -> None:
    """Thin dark strokes near the seam (a headline) leave no ghost when they are in the subject mask."""
    img = np.full((1024, 1024, 3), 160, np.uint8)
    mask = np.zeros((1024, 1024), np.uint8)
    for x0 in range(300, 700, 40):  # "letters": thin vertical strokes 24..64 px below the top seam
        img[24:64, x0 : x0 + 6] = 20
        mask[24:64, x0 : x0 + 6] = 255
    with_mask = outpaint(img, 9 / 16, (576, 1024), seed=1, subject_mask=mask)
    without = outpaint(img, 9 / 16, (576, 1024), seed=1)
    _, y, _, _ = with_mask.placement
    band = slice(y - 64, y - 24)  # where a mirror image of the strokes would land

    def darkest(res: object) -> float:
        region = res.canvas[band, 300:700].astype(np.float32).mean(axis=2)  # type: ignore[attr-defined]
        return float(region.min())

    assert darkest(without) < 150  # the reflection does carry the strokes when nothing protects them
    assert darkest(with_mask) > 150  # masked foreground: no ghost (grey is 160, grain sigma ~0.5)


def test_seam_gradient_ratio_separates_a_clean_fill_from_a_hard_edge() -> None:
    from media_routes.engine.aspect_outpaint import seam_gradient_ratio

    rng = np.random.default_rng(3)
    img = np.clip(rng.normal(128, 6, (512, 512, 3)), 0, 255).astype(np.uint8)
    res = outpaint(img, 9 / 16, (288, 512), seed=1)
    x, y, w, h = res.placement
    assert res.metrics["seam_gradient_ratio"] < 3.0
    hard = res.canvas.copy()
    hard[:y] = np.clip(hard[:y].astype(int) + 50, 0, 255).astype(np.uint8)
    assert seam_gradient_ratio(hard, x, y, w, h) > 5.0
