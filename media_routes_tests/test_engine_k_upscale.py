"""Tests for the tiled Lanczos + guarded detail upscaler."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from media_routes.engine.k_upscale import integer_factor, upscale

METRIC_KEYS = {
    "factor",
    "tiles",
    "skin_fraction",
    "skin_hf_ratio_before",
    "skin_hf_ratio_after",
    "halo_overshoot_before",
    "halo_overshoot_after",
    "softened_fraction",
}


def _scene(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = np.linspace(20, 230, w, dtype=np.float32)[None, :, None].astype(np.uint8)
    img[..., 1] = np.linspace(200, 60, h, dtype=np.float32)[:, None].astype(np.uint8)
    cv2.rectangle(img, (w // 8, h // 8), (w // 2, h // 2), (240, 240, 240), 2)
    cv2.circle(img, (3 * w // 4, 3 * h // 4), min(h, w) // 6, (10, 20, 30), -1)
    noise = rng.normal(0, 4, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def _skin_patch(n: int = 192, seed: int = 1) -> np.ndarray:
    """Skin-coloured patch (YCrCb rule holds) with pore-like texture and a few wrinkles."""
    rng = np.random.default_rng(seed)
    base = np.array([205, 150, 125], np.float32)
    texture = cv2.GaussianBlur(rng.normal(0, 1, (n, n)).astype(np.float32), (0, 0), 1.2)
    texture *= 12.0 / texture.std()
    img = base + texture[..., None] * np.array([1.0, 0.8, 0.7], np.float32)
    for i in range(4):
        y = n // 5 * (i + 1)
        cv2.line(img, (n // 8, y), (7 * n // 8, y + 6), (165, 115, 95), 2)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("shape", "target", "expected"),
    [
        ((256, 256), 512, (512, 512)),
        ((256, 256), 1024, (1024, 1024)),
        ((256, 144), 1024, (1024, 576)),  # portrait, 4x
        ((144, 256), 512, (288, 512)),  # landscape, 2x
    ],
)
def test_output_sizes(shape: tuple[int, int], target: int, expected: tuple[int, int]) -> None:
    img = _scene(*shape)
    mask = np.zeros(shape, np.uint8)
    mask[10:50, 20:90] = 255
    res = upscale(img, target, subject_mask=mask, tile=128)
    assert res.image.shape == (*expected, 3)
    assert res.image.dtype == np.uint8
    assert res.subject_mask is not None and res.subject_mask.shape == expected
    assert res.metrics["factor"] == target // max(shape)
    assert METRIC_KEYS <= res.metrics.keys()
    assert all(isinstance(v, (int, float)) and np.isfinite(v) for v in res.metrics.values())


@pytest.mark.parametrize("factor", [2, 4])
@pytest.mark.parametrize("shape", [(256, 256), (200, 256)])
def test_tiled_detail0_equals_whole_image_lanczos(factor: int, shape: tuple[int, int]) -> None:
    img = _scene(*shape, seed=3)
    res = upscale(img, max(shape) * factor, detail=0.0, tile=96)
    assert res.metrics["tiles"] > 4
    ref = cv2.resize(img, (shape[1] * factor, shape[0] * factor), interpolation=cv2.INTER_LANCZOS4)
    assert np.abs(res.image.astype(np.int16) - ref).max() <= 1


def test_tiling_is_seamless_with_detail() -> None:
    img = _scene(256, 256, seed=4)
    a = upscale(img, 1024, detail=0.8, tile=128)
    b = upscale(img, 1024, detail=0.8, tile=1024)
    assert a.metrics["tiles"] > b.metrics["tiles"] == 1
    assert np.abs(a.image.astype(np.int16) - b.image).max() <= 1


@pytest.mark.parametrize("target", [1000, 300, 2048 + 1])
def test_non_integer_factor_raises(target: int) -> None:
    with pytest.raises(ValueError, match="integer"):
        upscale(_scene(256, 256), target)
    with pytest.raises(ValueError, match="integer"):
        integer_factor((256, 256), target)


def test_detail_sharpens_edges() -> None:
    img = _scene(256, 256, seed=5)
    plain = upscale(img, 1024, detail=0.0).image.astype(np.float32)
    sharp = upscale(img, 1024, detail=1.0, skin_guard=False).image.astype(np.float32)

    def hf(x: np.ndarray) -> float:
        return float(np.abs(cv2.Laplacian(x, cv2.CV_32F)).mean())

    assert hf(sharp) > 1.1 * hf(plain)


def test_skin_guard_reduces_skin_hf_ratio() -> None:
    patch = _skin_patch()
    unguarded = upscale(patch, 768, detail=1.0, skin_guard=False)
    guarded = upscale(patch, 768, detail=1.0, skin_guard=True)
    mu, mg = unguarded.metrics, guarded.metrics
    assert METRIC_KEYS <= mg.keys()
    assert mg["skin_fraction"] > 0.8
    assert mu["skin_hf_ratio_before"] > 1.25
    assert mu["skin_hf_ratio_after"] == pytest.approx(mu["skin_hf_ratio_before"])
    assert mg["skin_hf_ratio_after"] < mg["skin_hf_ratio_before"]
    assert mg["skin_hf_ratio_after"] <= 1.3
    assert mg["softened_fraction"] > 0.05
    assert mu["softened_fraction"] == 0
    assert mg["halo_overshoot_after"] <= mg["halo_overshoot_before"]
    # Guarded output sits between plain Lanczos and the unguarded enhancement on skin.
    plain = upscale(patch, 768, detail=0.0).image.astype(np.float32)
    d_guarded = np.abs(guarded.image - plain).mean()
    d_unguarded = np.abs(unguarded.image - plain).mean()
    assert d_guarded < d_unguarded


def test_guard_leaves_non_skin_alone() -> None:
    img = np.zeros((128, 128, 3), np.uint8)
    img[:, :, 2] = 200  # saturated blue: not skin
    img[::8] = 40
    a = upscale(img, 256, detail=0.6, skin_guard=True)
    assert a.metrics["skin_fraction"] == 0
    assert a.metrics["skin_hf_ratio_before"] == 1.0


def test_deterministic() -> None:
    img = _scene(256, 192, seed=7)
    a = upscale(img, 1024)
    b = upscale(img, 1024)
    assert np.array_equal(a.image, b.image)
    assert a.metrics == b.metrics


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        upscale(np.zeros((64, 64), np.uint8), 128)
    with pytest.raises(ValueError):
        upscale(_scene(64, 64), 128, subject_mask=np.zeros((32, 32), np.uint8))
